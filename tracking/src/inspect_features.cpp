// Similarity maps, PCA colourings and grid correspondences of two frames' features, and the
// pictures of `corrtrack inspect features`.
#include "corrtrack/core.h"
#include "corrtrack/inspection.h"
#include "corrtrack/tracking.h"

#include "label_grid.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>

namespace corrtrack {

namespace F = torch::nn::functional;
using nlohmann::json;

namespace {

// Pixel -> feature cell index along one axis.
int64_t cell_of(double px, const FeaturePair& f, int64_t cells) {
  return std::clamp<int64_t>(int64_t(std::floor(px * f.scale / f.stride)), 0, cells - 1);
}
// Feature cell -> its centre in frame pixels.
double centre_of(int64_t cell, const FeaturePair& f) { return (cell + 0.5) * f.stride / f.scale; }

std::string fmt(const char* pattern, double a, double b) {
  char buf[96];
  std::snprintf(buf, sizeof buf, pattern, a, b);
  return buf;
}

Image darken(const Image& img, float keep) {
  Image out = img;
  for (auto& v : out.data) v = uint8_t(std::lround(v * keep));
  return out;
}

const Rgb kWhite{255, 255, 255}, kBlack{0, 0, 0};

// A ring with a number beside it, in white on a black outline (readable on any colour).
void mark_match(Painter& p, double x, double y, int rank, double r) {
  p.circle(x, y, r, kBlack, 3.0);
  p.circle(x, y, r, kWhite, 1.5);
  const std::string s = std::to_string(rank);
  p.text(x + r + 2, y - r, s, kBlack, 12.0);
  p.text(x + r + 1, y - r - 1, s, kWhite, 12.0);
}
void mark_query(Painter& p, double x, double y) {
  for (auto [c, t] : {std::pair{kBlack, 3.0}, std::pair{kWhite, 1.5}}) {
    p.line(x - 7, y, x + 7, y, c, t);
    p.line(x, y - 7, x, y + 7, c, t);
  }
}

// Principal axes [C, 3] (fewer columns are zero-padded) of the rows of x [N, C] after centring.
torch::Tensor principal_axes(const torch::Tensor& x) {
  auto cov = torch::matmul(x.t(), x);
  auto eig = torch::linalg_eigh(cov);   // ascending eigenvalues
  auto vecs = std::get<1>(eig).flip({1});
  const int64_t k = std::min<int64_t>(3, vecs.size(1));
  auto axes = vecs.slice(1, 0, k);
  if (k < 3) axes = F::pad(axes, F::PadFuncOptions({0, 3 - k}));
  return axes;
}

}  // namespace

FeaturePair feature_pair_compute(FeatureExtractor& features, const Image& frame_a, int64_t a, const Image& frame_b,
                                 int64_t b, double scale) {
  torch::NoGradGuard ng;
  FeaturePair pair;
  pair.frame_a = a;
  pair.frame_b = b;
  pair.stride = features.stride();
  pair.scale = scale;
  auto at_scale = [&](const Image& f) {
    detail::LabelGrid g;
    g.set_frame(f.width, f.height, scale);
    return g.internal(f);
  };
  pair.a = features.extract(at_scale(frame_a)).to(torch::kCPU);
  pair.b = a == b ? pair.a : features.extract(at_scale(frame_b)).to(torch::kCPU);
  return pair;
}

torch::Tensor similarity_map(const FeaturePair& f, bool on_b, double x, double y, int width, int height) {
  const int64_t h = f.a.size(1), w = f.a.size(2);
  auto q = f.a.index({torch::indexing::Slice(), cell_of(y, f, h), cell_of(x, f, w)});   // [C]
  const auto& dst = on_b ? f.b : f.a;
  auto sim = torch::einsum("c,chw->hw", {q, dst}).unsqueeze(0).unsqueeze(0);       // [1, 1, h', w']
  // Nearest upsampling keeps each cell's value on all its pixels (the query's cell holds the maximum).
  auto up = F::interpolate(sim, F::InterpolateFuncOptions()
                                    .size(std::vector<int64_t>{int64_t(std::lround(dst.size(1) * f.stride / f.scale)),
                                                               int64_t(std::lround(dst.size(2) * f.stride / f.scale))})
                                    .mode(torch::kNearest))
                .squeeze(0)
                .squeeze(0);
  // Features cover whole cells (ceil(size / stride)): crop, or pad the last row/column out.
  up = up.slice(0, 0, height).slice(1, 0, width);
  if (up.size(0) < height || up.size(1) < width) {
    up = F::pad(up.unsqueeze(0).unsqueeze(0), F::PadFuncOptions({0, width - up.size(1), 0, height - up.size(0)}).mode(torch::kReplicate))
             .squeeze(0)
             .squeeze(0);
  }
  return up.contiguous();
}

std::vector<std::pair<int, int>> best_matches(const torch::Tensor& map, int n, int min_distance) {
  std::vector<std::pair<int, int>> out;
  auto order = std::get<1>(map.reshape({-1}).sort(/*dim=*/0, /*descending=*/true));
  const int64_t w = map.size(1);
  auto idx = order.accessor<int64_t, 1>();
  for (int64_t i = 0; i < idx.size(0) && int(out.size()) < n; ++i) {
    const int x = int(idx[i] % w), y = int(idx[i] / w);
    bool far = true;
    for (auto [px, py] : out) far = far && std::hypot(px - x, py - y) >= min_distance;
    if (far) out.emplace_back(x, y);
  }
  return out;
}

Image heat_overlay(const Image& frame, const torch::Tensor& map, float alpha) {
  Image out = frame;
  auto m = map.to(torch::kFloat).contiguous();
  const float lo = m.min().item<float>(), hi = m.max().item<float>();
  const float span = std::max(hi - lo, 1e-6f);
  auto acc = m.accessor<float, 2>();
  for (int y = 0; y < out.height; ++y)
    for (int x = 0; x < out.width; ++x) {
      const Rgb c = colormap_viridis((acc[y][x] - lo) / span);
      uint8_t* p = out.px(x, y);
      p[0] = uint8_t(std::lround((1.0f - alpha) * p[0] + alpha * c.r));
      p[1] = uint8_t(std::lround((1.0f - alpha) * p[1] + alpha * c.g));
      p[2] = uint8_t(std::lround((1.0f - alpha) * p[2] + alpha * c.b));
    }
  return out;
}

void colour_bar_draw(Painter& p, double x, double y, double w, double h, double lo, double hi) {
  const int steps = std::max(2, int(h));
  for (int i = 0; i < steps; ++i) {
    const double v = 1.0 - double(i) / (steps - 1);
    p.rect(x, y + h * i / steps, w, h / steps + 1, colormap_viridis(v), 0.0);
  }
  p.rect(x, y, w, h, Rgb{90, 90, 90}, 1.0);
  char buf[32];
  for (auto [v, at] : {std::pair{hi, y + 4}, std::pair{(lo + hi) / 2, y + h / 2 + 4}, std::pair{lo, y + h + 4}}) {
    std::snprintf(buf, sizeof buf, "%.2f", v);
    p.text(x + w + 4, at, buf, Rgb{30, 30, 30}, 10.0);
  }
}

Image pca_image(const torch::Tensor& features, int width, int height, const torch::Tensor& basis_of) {
  const int64_t h = features.size(1), w = features.size(2);
  auto rows = [](const torch::Tensor& f) { return f.reshape({f.size(0), -1}).t().to(torch::kFloat); };   // [hw, C]
  auto x = rows(features);
  auto all = basis_of.defined() ? torch::cat({x, rows(basis_of)}, 0) : x;
  auto mean = all.mean(0, true);
  auto axes = principal_axes(all - mean);                 // [C, 3]
  auto proj_all = torch::matmul(all - mean, axes);
  auto lo = std::get<0>(proj_all.min(0, true)), hi = std::get<0>(proj_all.max(0, true));
  auto proj = (torch::matmul(x - mean, axes) - lo) / (hi - lo).clamp_min(1e-6);
  auto img = proj.t().reshape({1, 3, h, w});
  img = F::interpolate(img, F::InterpolateFuncOptions().size(std::vector<int64_t>{height, width}).mode(torch::kBilinear).align_corners(false));
  return tensor_to_image(img.squeeze(0).clamp(0, 1));
}

std::vector<Correspondence> correspondences_grid(const FeaturePair& f, int step) {
  step = std::max(1, step);
  const int64_t C = f.a.size(0), ha = f.a.size(1), wa = f.a.size(2), wb = f.b.size(2);
  std::vector<int64_t> cells;
  for (int64_t y = step / 2; y < ha; y += step)
    for (int64_t x = step / 2; x < wa; x += step) cells.push_back(y * wa + x);
  if (cells.empty()) return {};
  auto A = f.a.reshape({C, -1}), B = f.b.reshape({C, -1});
  auto idx = torch::tensor(cells, torch::kLong);
  auto sim = torch::matmul(A.index_select(1, idx).t(), B);          // [n, hb*wb]
  auto [best, to] = sim.max(1);
  auto back = std::get<1>(torch::matmul(B.index_select(1, to).t(), A).max(1));   // B's match's best cell on A
  auto best_a = best.accessor<float, 1>();
  auto to_a = to.accessor<int64_t, 1>();
  auto back_a = back.accessor<int64_t, 1>();
  std::vector<Correspondence> out;
  for (size_t i = 0; i < cells.size(); ++i) {
    Correspondence c;
    c.ax = centre_of(cells[i] % wa, f);
    c.ay = centre_of(cells[i] / wa, f);
    c.bx = centre_of(to_a[i] % wb, f);
    c.by = centre_of(to_a[i] / wb, f);
    c.similarity = best_a[i];
    c.mutual = back_a[i] == cells[i];
    out.push_back(c);
  }
  return out;
}

std::string features_inspect(const FeaturePair& f, const FeatureInspection& in, const std::string& out_dir) {
  dir_ensure_writable(out_dir);
  const auto dir = std::filesystem::path(out_dir);
  const int W = in.frame_a.width, H = in.frame_a.height, Wb = in.frame_b.width, Hb = in.frame_b.height;
  const int top = 28, bar = 72;   // title band; colour bar and its labels
  const double ring = std::max(6.0, 0.6 * f.stride / f.scale);
  json report = {{"frame", in.a}, {"other", in.b}, {"stride", f.stride}, {"scale", f.scale}};
  auto matches_json = [&](const torch::Tensor& map, const std::vector<std::pair<int, int>>& best) {
    json out = json::array();
    auto acc = map.accessor<float, 2>();
    for (auto [x, y] : best) out.push_back({{"x", x}, {"y", y}, {"similarity", acc[y][x]}});
    return out;
  };
  for (size_t i = 0; i < in.points.size(); ++i) {
    const auto [qx, qy] = in.points[i];
    if (!(qx >= 0 && qy >= 0 && qx < W && qy < H)) {
      throw Error("--point " + fmt("%g,%g", qx, qy) + " lies outside frame " + std::to_string(in.a) + " (" + std::to_string(W) + "x" +
                  std::to_string(H) + ")");
    }
    Image canvas(W + bar + Wb + bar, top + std::max(H, Hb) + 12, 3, 255);   // room for the colour bars' low labels
    auto p = painter_raster(canvas);
    json entry = {{"x", qx}, {"y", qy}};
    for (int side = 0; side < 2; ++side) {
      const bool on_b = side == 1;
      const Image& frame = on_b ? in.frame_b : in.frame_a;
      auto map = similarity_map(f, on_b, qx, qy, frame.width, frame.height);
      const auto best = best_matches(map, in.matches, int(4 * ring));
      const int x0 = on_b ? W + bar : 0;
      image_paste(canvas, heat_overlay(frame, map), x0, top);
      for (size_t r = best.size(); r-- > 0;) mark_match(*p, x0 + best[r].first + 0.5, top + best[r].second + 0.5, int(r + 1), ring);
      if (!on_b) mark_query(*p, qx, top + qy);
      colour_bar_draw(*p, x0 + frame.width + 8, top, 14, frame.height, map.min().item<double>(), map.max().item<double>());
      const std::string title = "frame " + std::to_string(on_b ? in.b : in.a) +
                                (on_b ? ": best matches of the point" : ": point " + std::to_string(i + 1) + fmt(" (%g, %g)", qx, qy));
      p->text(x0 + 4, 19, title, Rgb{20, 20, 20}, 12.0);
      entry[on_b ? "other" : "frame"] = matches_json(map, best);
    }
    image_write_png((dir / ("similarity_" + std::to_string(i + 1) + ".png")).string(), canvas);
    report["points"].push_back(entry);
  }
  {
    Image canvas(W + Wb, 2 * std::max(H, Hb), 3, 255);
    image_paste(canvas, in.frame_a, 0, 0);
    image_paste(canvas, in.frame_b, W, 0);
    image_paste(canvas, pca_image(f.a, W, H, f.b), 0, std::max(H, Hb));
    image_paste(canvas, pca_image(f.b, Wb, Hb, f.a), W, std::max(H, Hb));
    image_write_png((dir / "pca.png").string(), canvas);
  }
  const int step = in.grid_step > 0 ? in.grid_step : std::max<int>(1, int(std::lround(f.a.size(2) / 10.0)));
  const auto corr = correspondences_grid(f, step);
  {
    Image canvas(W + Wb, std::max(H, Hb), 3, 255);
    image_paste(canvas, darken(in.frame_a, 0.7f), 0, 0);
    image_paste(canvas, darken(in.frame_b, 0.7f), W, 0);
    auto p = painter_raster(canvas);
    for (const auto& c : corr)
      if (!c.mutual) p->line(c.ax, c.ay, W + c.bx, c.by, Rgb{150, 150, 150}, 1.0);
    size_t k = 0;
    for (const auto& c : corr) {
      if (!c.mutual) continue;
      const Rgb col = chart_color(k++);
      p->line(c.ax, c.ay, W + c.bx, c.by, col, 1.5);
      p->circle(c.ax, c.ay, 2.5, col, 0.0);
      p->circle(W + c.bx, c.by, 2.5, col, 0.0);
    }
    image_write_png((dir / "correspondences.png").string(), canvas);
  }
  size_t mutual = 0;
  double mean_sim = 0;
  for (const auto& c : corr) mutual += c.mutual, mean_sim += c.similarity;
  report["correspondences"] = {{"points", corr.size()}, {"mutual", mutual},
                               {"mean_similarity", corr.empty() ? 0.0 : mean_sim / corr.size()}};
  const std::string text = report.dump(2) + "\n";
  file_write_atomic((dir / "inspect.json").string(), text);
  return text;
}

}  // namespace corrtrack
