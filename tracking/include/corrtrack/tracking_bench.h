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

// A synthetic pan: a width x height window sliding over a random texture (smooth colour fields and
// small discs) by (dx, dy) whole pixels per frame, so that pixel (x, y) of frame 0 is pixel
// (x - dx*k, y - dy*k) of frame k. The same seed gives the same clip.
std::unique_ptr<FrameSource> pan_clip_create(int width, int height, int frames, int dx, int dy, uint64_t seed = 0);

// Point tracking on a pan clip: a grid x grid lattice of points of frame 0 (those that stay in
// view) tracked with points_track, against the true positions: mean end-point error (pixels and
// feature cells) over all frames after the first, on the last frame, and the largest; the
// fraction of points within one feature cell of the truth on the last frame.
struct TrackBenchConfig {
  int width = 320, height = 240, frames = 20, dx = 2, dy = 1, grid = 5;
  double search_radius = 3.0;   // feature cells (points_track)
  uint64_t seed = 0;
};
nlohmann::json bench_tracks(FeatureExtractor& features, const PropagationConfig& config, const TrackBenchConfig& bench);

}  // namespace corrtrack
