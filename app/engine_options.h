// Options of the commands that run a model's features through the propagation engine
// (propagate, bench propagate, inspect features/tracks, bench tracks): the model, the device and
// the engine settings, resolved against the model's recommendation and a protocol preset.
#pragma once

#include <CLI/CLI.hpp>

#include "corrtrack/tracking.h"

#include <map>
#include <memory>
#include <string>
#include <vector>

namespace corrtrack::cli {

struct PropagateArgs {
  std::string video, frames, mask, davis, out, overlay, overlay_frames, overlay_mode = "blend", json, coco, soft;
  std::string sequences, size, protocol, mode = "crw", device = "auto", feedback = "auto";
  std::string precision = "auto", label_resize = "bilinear";
  std::string long_term = "0,5", short_term = "1,3,5";
  ModelSpec model;
  // Engine options as parsed, to tell given values from defaults (a model's recommended settings
  // and a protocol preset fill in the ones not given).
  std::map<PropagationSetting, CLI::Option*> engine_opts;
  std::vector<std::string> anchors;
  PropagationConfig cfg;
  bool dense = false;
  int64_t max_frames = 0;
  int objects = 1;   // bench propagate without --mask
  double adapt = 0.0;        // propagate --adapt: seconds of fine-tuning on each video first (0 = off)
  double adapt_lr = 1e-4;
  std::string adapt_bn = "train";   // --adapt-bn: train (statistics follow the video) | frozen
  double adapt_anchor = 1.0;        // --adapt-anchor: weight of the anchor term (0 = the objective alone)
};

// --features/--checkpoint/--seed/--device/--precision and the engine settings (--mode, --topk, --scale, ...).
void add_engine_options(CLI::App* c, PropagateArgs& a);
// "1,3,5" -> {1, 3, 5}; "none" or "" -> {}; throws SettingError naming the option otherwise.
std::vector<int> int_list_parse(const std::string& text, const std::string& option);
// The feature extractor, with a.cfg resolved (model hints, --protocol, the options given) and validated.
std::unique_ptr<FeatureExtractor> make_features(PropagateArgs& a);
// Frame source options from --size.
FrameSourceOptions source_options(const PropagateArgs& a);
// The frames of --video FILE or --frames DIR (exactly one of them), with source_options.
std::unique_ptr<FrameSource> source_open(const PropagateArgs& a);
// "a,b,,c" -> {"a", "b", "c"}.
std::vector<std::string> split_list(const std::string& s);

}  // namespace corrtrack::cli
