// The embedding pictures of `corrtrack inspect embeddings`: retrieval grid and PCA projection.
#include "corrtrack/embedding_inspection.h"

#include "corrtrack/contrastive.h"
#include "corrtrack/core.h"
#include "corrtrack/drawing.h"
#include "corrtrack/image_eval.h"

#include <algorithm>
#include <filesystem>
#include <set>

namespace corrtrack {

using nlohmann::json;
namespace fs = std::filesystem;

namespace {

const Rgb kRight{44, 160, 44}, kWrong{214, 39, 40}, kInk{30, 30, 30};

// One dataset image (uint8 [C, H, W], grey or RGB) as an RGB thumbnail of side x side.
Image thumbnail(const torch::Tensor& img, int side) {
  auto rgb = img.size(0) == 1 ? img.expand({3, img.size(1), img.size(2)}) : img.slice(0, 0, 3);
  Image out(int(img.size(2)), int(img.size(1)), 3);
  auto hwc = rgb.permute({1, 2, 0}).contiguous();
  std::copy_n(hwc.data_ptr<uint8_t>(), out.data.size(), out.data.data());
  return image_resize(out, side, side);
}

std::string class_name(const ImageDataset& d, int64_t label) {
  return label >= 0 && label < int64_t(d.classes.size()) ? d.classes[size_t(label)] : std::to_string(label);
}

// The first test image of each class, then the following ones, `n` in all.
std::vector<int64_t> pick_queries(const torch::Tensor& labels, int n) {
  auto l = labels.to(torch::kLong).contiguous();
  auto acc = l.accessor<int64_t, 1>();
  std::vector<int64_t> out;
  std::set<int64_t> seen;
  for (int64_t i = 0; i < l.size(0) && int(out.size()) < n; ++i)
    if (seen.insert(acc[i]).second) out.push_back(i);
  for (int64_t i = 0; i < l.size(0) && int(out.size()) < n; ++i)
    if (std::find(out.begin(), out.end(), i) == out.end()) out.push_back(i);
  return out;
}

void draw_projection(Painter& p, const torch::Tensor& xy, const torch::Tensor& labels, const ImageDataset& d,
                     const std::string& title) {
  const double legend_w = 150, margin = 30;
  const double left = margin, top = margin + 10, right = p.width() - legend_w, bottom = p.height() - margin;
  p.text((left + right) / 2, 24, title, kInk, 12.0, TextAlign::Center);
  p.rect(left, top, right - left, bottom - top, Rgb{160, 160, 160}, 1.0);
  auto lo = std::get<0>(xy.min(0)), hi = std::get<0>(xy.max(0));
  auto span = (hi - lo).clamp_min(1e-9);
  auto pts = ((xy - lo) / span).contiguous();
  auto a = pts.accessor<float, 2>();
  auto l = labels.to(torch::kLong).contiguous();
  auto la = l.accessor<int64_t, 1>();
  const double pad = 8;
  for (int64_t i = 0; i < pts.size(0); ++i) {
    const double x = left + pad + a[i][0] * (right - left - 2 * pad), y = bottom - pad - a[i][1] * (bottom - top - 2 * pad);
    p.circle(x, y, 2.2, chart_color(size_t(la[i])), 0.0);
  }
  for (size_t c = 0; c < d.classes.size(); ++c) {
    const double y = top + 14 + 18.0 * c;
    p.circle(right + 16, y - 4, 5, chart_color(c), 0.0);
    p.text(right + 28, y, class_name(d, int64_t(c)), kInk, 11.0);
  }
}

}  // namespace

json embeddings_inspect(const EmbeddingInspection& in, const std::string& out_dir) {
  if (in.queries < 1 || in.neighbours < 1 || in.projected < 2 || in.cell < 8) {
    throw Error("inspect embeddings needs --queries >= 1, --neighbours >= 1, --projected >= 2 and --cell >= 8");
  }
  if (in.train.images.size(0) == 0 || in.test.images.size(0) < 2) throw Error("the data set has no images to inspect");
  dir_ensure_writable(out_dir);
  torch::NoGradGuard ng;
  const ImageEvalOptions o;
  const auto [ftr, fte] = image_embed(in.checkpoint, in.features, in.random_encoder, in.train.images, in.test.images, o);
  const int64_t classes = std::max<int64_t>(int64_t(in.train.classes.size()), in.train.labels.max().item<int64_t>() + 1);
  json report = {{"data", in.train.name},
                 {"features", in.checkpoint.empty() ? in.features : in.checkpoint},
                 {"train_images", ftr.size(0)},
                 {"test_images", fte.size(0)},
                 {"knn_top1_k20", knn_top1(ftr, in.train.labels, fte, in.test.labels, 20, 0.07, classes)}};

  // Retrieval grid.
  const auto queries = pick_queries(in.test.labels, in.queries);
  auto qidx = torch::tensor(queries, torch::kLong);
  const auto [sims, idx] = knn_neighbours(ftr, fte.index_select(0, qidx), in.neighbours);
  const int k = int(idx.size(1)), side = in.cell, gap = 6, label_w = 120, head = 26;
  Image grid(label_w + (side + gap) * (k + 1) + gap, head + int(queries.size()) * (side + gap), 3, 255);
  auto p = painter_raster(grid);
  p->text(label_w + gap, 18, "query", kInk, 11.0);
  p->text(label_w + 2 * gap + side, 18, "nearest training images, best first (green: same class, red: another)", kInk, 11.0);
  auto tl = in.train.labels.to(torch::kLong).contiguous();
  auto sa = sims.accessor<float, 2>();
  auto ia = idx.accessor<int64_t, 2>();
  int64_t same = 0;
  for (size_t r = 0; r < queries.size(); ++r) {
    const int y = head + int(r) * (side + gap);
    const int64_t qlabel = in.test.labels[queries[r]].item<int64_t>();
    p->text(4, y + side / 2 + 5, class_name(in.test, qlabel), kInk, 11.0);
    image_paste(grid, thumbnail(in.test.images[queries[r]], side), label_w + gap, y);
    json row = {{"test_index", queries[r]}, {"label", qlabel}, {"class", class_name(in.test, qlabel)}, {"neighbours", json::array()}};
    for (int j = 0; j < k; ++j) {
      const int64_t t = ia[r][j], label = tl[t].item<int64_t>();
      const int x = label_w + gap + (j + 1) * (side + gap);
      image_paste(grid, thumbnail(in.train.images[t], side), x, y);
      p->rect(x - 1.5, y - 1.5, side + 3, side + 3, label == qlabel ? kRight : kWrong, label == qlabel ? 1.5 : 3.0);
      same += label == qlabel;
      row["neighbours"].push_back({{"train_index", t}, {"label", label}, {"similarity", sa[r][j]}});
    }
    report["rows"].push_back(row);
  }
  report["neighbours_same_class"] = double(same) / double(queries.size() * size_t(k));
  image_write_png((fs::path(out_dir) / "retrieval.png").string(), grid);

  // PCA projection of the first `projected` test images.
  const int64_t n = std::min<int64_t>(in.projected, fte.size(0));
  auto x = fte.slice(0, 0, n).to(torch::kFloat);
  x = x / x.norm(2, 1, true).clamp_min(1e-12);
  x = x - x.mean(0, true);
  auto eig = torch::linalg_eigh(torch::matmul(x.t(), x) / double(n));
  auto vals = std::get<0>(eig).flip({0}), vecs = std::get<1>(eig).flip({1});
  auto xy = torch::matmul(x, vecs.slice(1, 0, 2));
  const double total = vals.clamp_min(0).sum().item<double>();
  report["projection"] = {{"method", "pca"}, {"points", n},
                          {"explained_variance", {vals[0].item<double>() / total, vals[1].item<double>() / total}}};
  const std::string title = "PCA of " + std::to_string(n) + " test embeddings (" + std::string(report["features"]) + ")";
  auto labels = in.test.labels.slice(0, 0, n);
  Image canvas(760, 600, 3, 255);
  draw_projection(*painter_raster(canvas), xy, labels, in.test, title);
  image_write_png((fs::path(out_dir) / "projection.png").string(), canvas);
  SvgPainter svg(760, 600);
  draw_projection(svg, xy, labels, in.test, title);
  file_write_atomic((fs::path(out_dir) / "projection.svg").string(), svg.str());
  file_write_atomic((fs::path(out_dir) / "embeddings.json").string(), report.dump(2) + "\n");
  return report;
}

}  // namespace corrtrack
