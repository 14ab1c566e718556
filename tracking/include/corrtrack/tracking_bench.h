// Benchmarks of the tracking module (what `corrtrack bench affinity|propagate` print): each runs
// the real code path and returns its figures as JSON.
#pragma once

#include "corrtrack/propagation.h"
#include "corrtrack/tracking.h"

#include <nlohmann/json.hpp>

namespace corrtrack {

// Top-k affinity of one frame pair of random L2-normalised features: local window vs dense.
struct AffinityBenchConfig {
  int channels = 256, height = 60, width = 107, topk = 10, tile = 8, repeats = 3;
  double radius = 12;
  bool dense = true;   // also time the dense all-pairs version and report the largest difference
};
nlohmann::json bench_affinity(const AffinityBenchConfig& config);

// Propagation of `anchors` over `source` into a temporary folder (removed afterwards): fps, peak
// RSS and time per stage.
nlohmann::json bench_propagate(FrameSource& source, const std::vector<Anchor>& anchors, FeatureExtractor& features,
                               const PropagationConfig& config);

}  // namespace corrtrack
