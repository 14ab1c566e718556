// Point tracks by label propagation: each point is a label on the feature grid, carried from
// frame to frame by the propagation mode's memory, and read back as a sub-cell position.
#include "corrtrack/core.h"
#include "corrtrack/inspection.h"
#include "corrtrack/tracking.h"

#include "label_grid.h"
#include "propagation_memory.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace corrtrack {

namespace {

// Frame pixels <-> feature-cell coordinates (cell centres at integers), the geometry the mask
// labels use: cell i covers internal pixels stride*i .. stride*(i+1)-1.
struct CellMapping {
  double sx = 1, sy = 1;   // internal size / frame size
  int stride = 8;
  int64_t h = 0, w = 0;

  double to_u(double x) const { return (x + 0.5) * sx / stride - 0.5; }
  double to_v(double y) const { return (y + 0.5) * sy / stride - 0.5; }
  double to_x(double u) const { return (u + 0.5) * stride / sx - 0.5; }
  double to_y(double v) const { return (v + 0.5) * stride / sy - 0.5; }

  // Labels [P, h, w]: each point spread bilinearly over its four nearest cells (sum 1).
  torch::Tensor splat(const std::vector<std::pair<double, double>>& xy) const {
    auto labels = torch::zeros({int64_t(xy.size()), h, w});
    auto acc = labels.accessor<float, 3>();
    for (size_t p = 0; p < xy.size(); ++p) {
      const double u = std::clamp(to_u(xy[p].first), 0.0, double(w - 1)), v = std::clamp(to_v(xy[p].second), 0.0, double(h - 1));
      const int64_t u0 = int64_t(u), v0 = int64_t(v), u1 = std::min(u0 + 1, w - 1), v1 = std::min(v0 + 1, h - 1);
      const float fu = float(u - u0), fv = float(v - v0);
      acc[p][v0][u0] += (1 - fu) * (1 - fv);
      acc[p][v0][u1] += fu * (1 - fv);
      acc[p][v1][u0] += (1 - fu) * fv;
      acc[p][v1][u1] += fu * fv;
    }
    return labels;
  }

  // Each point's position: the label-weighted centre of the 3x3 cells around its peak within
  // `radius` cells of where it was (<= 0: anywhere); the confidence is the label mass there.
  std::vector<TrackPoint> locate(const torch::Tensor& labels, const std::vector<TrackPoint>& before, double radius) const {
    auto l = labels.to(torch::kCPU).to(torch::kFloat).clamp_min(0).contiguous();
    auto acc = l.accessor<float, 3>();
    std::vector<TrackPoint> out;
    for (int64_t p = 0; p < l.size(0); ++p) {
      const double bu = to_u(before[size_t(p)].x), bv = to_v(before[size_t(p)].y);
      int64_t pu = 0, pv = 0;
      float peak = -1;
      for (int64_t v = 0; v < h; ++v)
        for (int64_t u = 0; u < w; ++u) {
          const bool near = radius <= 0 || (u - bu) * (u - bu) + (v - bv) * (v - bv) < radius * radius;
          if (near && acc[p][v][u] > peak) peak = acc[p][v][u], pu = u, pv = v;
        }
      double sum = 0, su = 0, sv = 0;
      for (int64_t v = std::max<int64_t>(0, pv - 1); v <= std::min(h - 1, pv + 1); ++v)
        for (int64_t u = std::max<int64_t>(0, pu - 1); u <= std::min(w - 1, pu + 1); ++u) {
          const double m = acc[p][v][u];
          sum += m, su += m * u, sv += m * v;
        }
      const double u = sum > 0 ? su / sum : double(pu), v = sum > 0 ? sv / sum : double(pv);
      out.push_back(TrackPoint{to_x(u), to_y(v), float(sum)});
    }
    return out;
  }
};

}  // namespace

std::vector<std::vector<TrackPoint>> points_track(FrameSource& source, FeatureExtractor& features,
                                                  const PropagationConfig& config,
                                                  const std::vector<std::pair<double, double>>& points, int64_t first,
                                                  int64_t count, double search_radius, const TrackSink& sink) {
  propagation_config_validate(config);
  if (points.empty()) throw Error("give at least one point to track");
  const int64_t n = source.size();
  if (first < 0 || first >= n) {
    throw Error("the first frame " + std::to_string(first) + " is outside '" + source.path() + "' (" + std::to_string(n) + " frames)");
  }
  if (count < 0) throw Error("the number of frames to track must be >= 0 (0 = to the end)");
  const int64_t last = count > 0 ? std::min(n, first + count) : n;
  torch::NoGradGuard ng;
  const Image f0 = source.frame(first);
  for (const auto& [x, y] : points) {
    if (!(x >= 0 && y >= 0 && x < f0.width && y < f0.height)) {
      char at[64];
      std::snprintf(at, sizeof at, "point %g,%g", x, y);
      throw Error(std::string(at) + " lies outside the frames of '" + source.path() +
                  "' (" + std::to_string(f0.width) + "x" + std::to_string(f0.height) + ")");
    }
  }
  detail::LabelGrid grid;
  grid.set_frame(f0.width, f0.height, config.scale);
  auto q = features.extract(grid.internal(f0));
  CellMapping cells{double(grid.Ws) / grid.W, double(grid.Hs) / grid.H, features.stride(), q.size(1), q.size(2)};
  auto memory = detail::propagation_memory_create(config, nullptr);
  memory->reset(q, cells.splat(points).to(q.device()));
  std::vector<std::vector<TrackPoint>> tracks;
  std::vector<TrackPoint> start;
  for (const auto& [x, y] : points) start.push_back(TrackPoint{x, y, 1.0f});
  tracks.push_back(start);
  if (sink) sink(first, f0, start);
  for (int64_t t = first + 1; t < last; ++t) {
    const Image frame = source.frame(t);
    if (frame.width != f0.width || frame.height != f0.height) {
      throw Error("frame " + std::to_string(t) + " of '" + source.path() + "' changes size");
    }
    q = features.extract(grid.internal(frame));
    auto predicted = memory->predict(q);
    auto located = cells.locate(predicted, tracks.back(), search_radius);
    std::vector<std::pair<double, double>> xy;
    for (const auto& p : located) xy.emplace_back(p.x, p.y);
    memory->remember(q, cells.splat(xy).to(q.device()));
    tracks.push_back(located);
    if (sink) sink(t, frame, located);
  }
  return tracks;
}

Image tracks_draw(const Image& frame, const std::vector<std::vector<TrackPoint>>& tracks, size_t upto) {
  Image out = frame;
  auto p = painter_raster(out);
  if (tracks.empty()) return out;
  upto = std::min(upto, tracks.size() - 1);
  for (size_t i = 0; i < tracks[0].size(); ++i) {
    std::vector<std::pair<double, double>> path;
    for (size_t t = 0; t <= upto; ++t) path.emplace_back(tracks[t][i].x + 0.5, tracks[t][i].y + 0.5);
    const Rgb c = chart_color(i);
    if (path.size() > 1) {
      p->polyline(path, Rgb{0, 0, 0}, 3.0);
      p->polyline(path, c, 1.5);
    }
    p->circle(path.back().first, path.back().second, 4.0, Rgb{0, 0, 0}, 0.0);
    p->circle(path.back().first, path.back().second, 3.0, c, 0.0);
  }
  return out;
}

}  // namespace corrtrack
