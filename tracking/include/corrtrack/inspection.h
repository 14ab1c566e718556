// Seeing what a model learned, as pictures and numbers: similarity maps of a pixel's feature,
// PCA colourings, grid correspondences between two frames, point tracks through a video, and
// training curves from a run's metrics.jsonl. The Studio and `corrtrack inspect` / `plot` share
// these (one implementation); pictures are drawn with drawing.h.
//
//   auto features = feature_extractor_open(ModelSpec{"pixels"});
//   FeaturePair pair = feature_pair_compute(*features, frame_a, 0, frame_b, 10, /*scale=*/1.0);
//   torch::Tensor sim = similarity_map(pair, /*on_b=*/true, 120, 80, frame_b.width, frame_b.height);
//   Image picture = heat_overlay(frame_b, sim);
#pragma once

#include "corrtrack/drawing.h"
#include "corrtrack/propagation.h"
#include "corrtrack/video.h"

#include <functional>
#include <map>
#include <string>
#include <vector>

namespace corrtrack {

class FeatureExtractor;

// ---------------------------------------------------------------------------------------------
// Features of two frames
// ---------------------------------------------------------------------------------------------

// Feature maps of two frames of one model. Pixel (x, y) of a frame lies in feature cell
// (floor(x * scale / stride), floor(y * scale / stride)).
struct FeaturePair {
  int64_t frame_a = 0, frame_b = 0;
  torch::Tensor a, b;   // [C, h, w], L2-normalised, on the CPU
  int stride = 8;
  double scale = 1.0;   // internal resolution the features were computed at
};
// Features of frames a and b at `scale` (b's are a's when the indices are equal).
FeaturePair feature_pair_compute(FeatureExtractor& features, const Image& frame_a, int64_t a, const Image& frame_b,
                                 int64_t b, double scale);

// Cosine similarity of the feature under pixel (x, y) of frame A with every cell of frame A
// (on_b false) or B, at width x height pixels [height, width] in [-1, 1]: each pixel carries its
// cell's value (nearest), so the query's own cell holds the maximum 1 on frame A.
torch::Tensor similarity_map(const FeaturePair& f, bool on_b, double x, double y, int width, int height);
// The `n` best pixels of a map [H, W], best first, at least `min_distance` pixels apart.
std::vector<std::pair<int, int>> best_matches(const torch::Tensor& map, int n, int min_distance);
// The map coloured with viridis scaled to its own range [min, max], blended over the frame
// (alpha = weight of the colour).
Image heat_overlay(const Image& frame, const torch::Tensor& map, float alpha = 0.6f);
// A vertical colour bar for the range [lo, hi] at (x, y, w, h), labelled at both ends and the middle.
void colour_bar_draw(Painter& p, double x, double y, double w, double h, double lo, double hi);

// The first three principal components of the features, scaled to RGB, at width x height.
// With `basis_of` (features [C, h', w'] of another frame) the components are those of both
// maps together, so that one colour means one feature in both pictures.
Image pca_image(const torch::Tensor& features, int width, int height, const torch::Tensor& basis_of = {});

// A grid point of frame A and its nearest neighbour (cosine) on frame B, in pixels of the frames.
struct Correspondence {
  double ax = 0, ay = 0, bx = 0, by = 0;
  float similarity = 0;
  bool mutual = false;   // B's point has A's point as its own nearest neighbour on A
};
// Every `step`-th feature cell of A (cell centres) matched to B over all of B's cells.
std::vector<Correspondence> correspondences_grid(const FeaturePair& f, int step);

// The pictures of `corrtrack inspect features`, written into `out_dir`:
//   similarity_<i>.png   frame K and frame K2 with point i's similarity map, best matches
//                        ringed (best first), colour bar of each map's range
//   pca.png              the frames above their first three principal components (joint basis)
//   correspondences.png  K and K2 side by side, a grid of points joined to their best matches
//                        (mutual nearest neighbours bright, the others faint)
// and inspect.json: for each point its best matches and scores on both frames, and the number
// of grid correspondences and mutual ones. Returns that JSON's text.
struct FeatureInspection {
  Image frame_a, frame_b;
  int64_t a = 0, b = 0;
  std::vector<std::pair<double, double>> points;   // pixels of frame A
  int matches = 5;                                 // best matches ringed per map
  int grid_step = 0;                               // feature cells between correspondence points
                                                   // (0: ~10 points across the width)
};
std::string features_inspect(const FeaturePair& f, const FeatureInspection& in, const std::string& out_dir);

// ---------------------------------------------------------------------------------------------
// Point tracks
// ---------------------------------------------------------------------------------------------

// Where a point is on one frame: pixels, and the peak value of its propagated label (confidence;
// 1 on the first frame, lower as the label spreads).
struct TrackPoint {
  double x = 0, y = 0;
  float confidence = 0;
};
// Receives each frame's positions (one per point) with the RGB frame.
using TrackSink = std::function<void(int64_t frame, const Image& rgb, const std::vector<TrackPoint>& positions)>;

// Follows pixels of frame `first` through frames first .. first+count-1 (count 0: to the end) by
// label propagation: each point is a label splatted bilinearly onto its four nearest feature cells;
// the mode's memory (config.mode, context, top-k, radius, temperature, as for masks) propagates
// the labels; a point's position is the label-weighted centre of the 3x3 cells around its label's
// peak within `search_radius` feature cells of its last position (<= 0: anywhere), and the label
// fed back is a fresh splat there (the track stays sharp instead of blurring).
// Returns the positions, [frame][point].
std::vector<std::vector<TrackPoint>> points_track(FrameSource& source, FeatureExtractor& features,
                                                  const PropagationConfig& config,
                                                  const std::vector<std::pair<double, double>>& points, int64_t first,
                                                  int64_t count, double search_radius = 3.0,
                                                  const TrackSink& sink = nullptr);
// Draws each point's path up to frame `upto` (an index into `tracks`) on the frame, a dot at its
// position, in chart colours.
Image tracks_draw(const Image& frame, const std::vector<std::vector<TrackPoint>>& tracks, size_t upto);

// ---------------------------------------------------------------------------------------------
// Training curves
// ---------------------------------------------------------------------------------------------

// The numeric values of a metrics.jsonl, one map per readable line. Unreadable lines (a line cut
// short by a killed run) and non-numeric values are skipped; `skipped` counts those lines.
struct MetricsLog {
  std::string run;   // the run folder's name (legend label)
  std::vector<std::map<std::string, double>> rows;
  int skipped = 0;
};
// Reads RUN/metrics.jsonl (or a .jsonl file given directly). Throws Error naming the file when it
// cannot be opened or holds no readable line.
MetricsLog metrics_read(const std::string& run_or_file);
// One panel per metric against step (loss first, every run overlaid), then loss against wall time.
// With `against_time`, every metric against the run's wall time in minutes (its elapsed_s; lines
// without one are left out) and no separate wall-time panel: runs of different speeds compared
// at equal cost, e.g. kNN accuracy of checkpoints against training time.
std::vector<ChartPanel> training_curves(const std::vector<MetricsLog>& runs, bool against_time = false);
// metrics_read + training_curves + chart_write (PNG or SVG by extension).
void training_curves_write(const std::vector<std::string>& runs, const std::string& out, bool against_time = false);

}  // namespace corrtrack
