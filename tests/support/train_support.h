// Helpers for tests that train: metrics.jsonl as JSON lines, and a short run's loss per step.
#pragma once

#include "corrtrack/train.h"

#include <nlohmann/json.hpp>

#include <fstream>
#include <string>
#include <vector>

namespace corrtrack::test {

// Every line of a metrics.jsonl file, parsed (a torn line fails the parse: tests want to see it).
inline std::vector<nlohmann::json> metrics_read(const std::string& path) {
  std::vector<nlohmann::json> out;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) out.push_back(nlohmann::json::parse(line));
  return out;
}

// Trains `method` for `steps` steps with Adam at `lr` into `dir`, metrics every step; returns the
// loss of each step. `bf16`: the encoder in bfloat16 (TrainOptions::bf16).
inline std::vector<double> train_losses(TrainableMethod& method, const std::string& dir, int steps, double lr,
                                        bool bf16 = false) {
  TrainOptions o;
  o.bf16 = bf16;
  o.out_dir = dir;
  o.steps = steps;
  o.log_every = 1;
  o.checkpoint_every = steps;
  o.progress = [](const ProgressInfo&) {};
  OptimizerConfig opt;
  opt.lr = lr;
  train_run(method, opt, LrSchedule{}, o);
  std::vector<double> losses;
  for (const auto& j : metrics_read(dir + "/metrics.jsonl")) losses.push_back(j["loss"].get<double>());
  return losses;
}

}  // namespace corrtrack::test
