// MAST's memory: long-term references (positions {0, 5} of the segment; 0 is the anchor) and
// short-term ones ({p-1, p-3, p-5}); each offers the keys of a (2r+1)^2 square window around the
// query, a reference more than roi_gap frames away around the query's ROI offset instead. One
// softmax over every offered key (topk 0), or over the top-k of them.
//
// Costs: near references are scored tile by tile (WindowedAffinity, one matrix product per tile);
// a far reference's offset comes from a dilated correlation, computed as d^2 ordinary windowed
// correlations of the cells with equal (y mod d, x mod d) (those are d cells apart), and its
// windows are read tile by tile from one product with the box that holds them all.
#include "propagation_memory.h"

#include <algorithm>
#include <cmath>

namespace corrtrack::detail {

namespace {

// Cell coordinates [2, h, w] (y, x) in the dtype of `opts`.
torch::Tensor cell_coordinates(int64_t h, int64_t w, const torch::TensorOptions& opts) {
  auto ys = torch::arange(h, opts).view({h, 1}).expand({h, w});
  auto xs = torch::arange(w, opts).view({1, w}).expand({h, w});
  return torch::stack({ys, xs});
}

// Every d-th cell from (ry, rx): [C, h, w] -> [C, ceil((h - ry) / d), ceil((w - rx) / d)].
torch::Tensor residue_grid(const torch::Tensor& x, int64_t d, int64_t ry, int64_t rx) {
  return x.slice(1, ry, x.size(1), d).slice(2, rx, x.size(2), d);
}

}  // namespace

MastMemory::MastMemory(const PropagationConfig& config, StageTimer* stages, torch::ScalarType products)
    : m_config(config), m_stages(stages),
      m_reach(config.short_term.empty() ? 0 : *std::max_element(config.short_term.begin(), config.short_term.end())),
      m_dtype(products) {}

void MastMemory::reset(const torch::Tensor& features, const torch::Tensor& labels) {
  m_frames.clear();
  m_geometries.clear();
  m_C = features.size(0);
  m_h = features.size(1);
  m_w = features.size(2);
  m_device = features.device();
  m_pos = -1;
  remember(features, labels);
}

const WindowedAffinity& MastMemory::geometry(int64_t h, int64_t w) const {
  auto& g = m_geometries[{h, w}];
  if (!g) {
    g = std::make_unique<WindowedAffinity>(m_C, h, w, m_config.tile, m_config.radius, m_device, WindowShape::Square, m_dtype);
  }
  return *g;
}

// Positions of the references of the next frame, p = m_pos + 1: long-term, then short-term.
std::vector<int64_t> MastMemory::references() const {
  const int64_t p = m_pos + 1;
  std::vector<int64_t> refs;
  auto add = [&](int64_t r) {
    if (r >= 0 && r < p && m_frames.count(r) && std::find(refs.begin(), refs.end(), r) == refs.end()) refs.push_back(r);
  };
  for (int r : m_config.long_term) add(r);
  for (int g : m_config.short_term) add(p - g);
  return refs;
}

// Expected offset (cells) of every query in `ref`, under a softmax over the (2r+1)^2 keys at
// offsets d * (dy, dx) (MAST's dilated correlation), rounded: [2, h, w] int64 (y, x).
torch::Tensor MastMemory::roi_offsets(const torch::Tensor& qs, const Frame& ref, int64_t d) const {
  auto offsets = torch::zeros({2, m_h, m_w}, qs.options());
  const auto coords = cell_coordinates(m_h, m_w, qs.options());
  for (int64_t ry = 0; ry < std::min(d, m_h); ++ry) {
    for (int64_t rx = 0; rx < std::min(d, m_w); ++rx) {
      auto q = residue_grid(qs, d, ry, rx), k = residue_grid(ref.features, d, ry, rx);
      auto c = residue_grid(coords, d, ry, rx);
      const int64_t h = q.size(1), w = q.size(2);
      const auto& g = geometry(h, w);
      RunningSoftmax acc(h * w, 2, qs.device());
      g.accumulate(g.query_tiles(q.contiguous()), g.key_layout(k.contiguous()), g.label_layout(c.contiguous()), acc);
      // The expected key position minus the query's own is the expected offset.
      residue_grid(offsets, d, ry, rx).copy_(acc.result().t().reshape({2, h, w}) - c);
    }
  }
  return offsets.round().to(torch::kLong);
}

// Offers the (2r+1)^2 keys of `ref` around each query's position plus its ROI offset. Tile by
// tile: the tile's queries against the bounding box of all their windows (one matrix product),
// then each query's own window picked from it.
void MastMemory::offer_roi(const torch::Tensor& qs, const Frame& ref, int64_t gap, int64_t reference,
                           Accumulators& acc) const {
  const int64_t d = std::min<int64_t>(4, gap / m_config.roi_gap + 1);
  const auto offsets = roi_offsets(qs, ref, d);
  const auto centres = offsets + cell_coordinates(m_h, m_w, offsets.options());        // [2, h, w] (y, x)
  const auto host = centres.cpu();                                                     // for the boxes
  const auto ca = host.accessor<int64_t, 3>();
  const int R = static_cast<int>(m_config.radius), k = 2 * R + 1, T = m_config.tile;
  const int TW = 4 * T;   // tiles T x 4T: fewer, larger products (each op has a fixed cost)
  const int64_t C = qs.size(0), K2 = int64_t(k) * k;
  const auto lopts = centres.options();
  const auto window = torch::arange(-R, R + 1, lopts);
  const auto wy = window.view({k, 1}), wx = window.view({1, k});                       // dy, dx
  const auto frame_offsets = (wy * m_w + wx).reshape({1, K2});                          // key index steps
  const auto qhw = qs.permute({1, 2, 0}), khw = ref.features.permute({1, 2, 0}).contiguous();   // [h, w, C]
  const auto key_base = (centres[0] * m_w + centres[1]).reshape({-1, 1});              // [Q, 1]
  const int64_t last_key = m_h * m_w - 1;
  for (int64_t y0 = 0; y0 < m_h; y0 += T) {
    for (int64_t x0 = 0; x0 < m_w; x0 += TW) {
      const int64_t y1 = std::min(m_h, y0 + T), x1 = std::min(m_w, x0 + TW), nq = (y1 - y0) * (x1 - x0);
      int64_t ymin = m_h, ymax = -1, xmin = m_w, xmax = -1;
      for (int64_t y = y0; y < y1; ++y) {
        for (int64_t x = x0; x < x1; ++x) {
          ymin = std::min(ymin, ca[0][y][x]);
          ymax = std::max(ymax, ca[0][y][x]);
          xmin = std::min(xmin, ca[1][y][x]);
          xmax = std::max(xmax, ca[1][y][x]);
        }
      }
      // The box holds every in-frame key of every window of the tile.
      const int64_t by0 = std::max<int64_t>(0, ymin - R), by1 = std::min(m_h, ymax + R + 1);
      const int64_t bx0 = std::max<int64_t>(0, xmin - R), bx1 = std::min(m_w, xmax + R + 1), bw = bx1 - bx0;
      if (by0 >= by1 || bx0 >= bx1) continue;
      auto box = torch::mm(qhw.slice(0, y0, y1).slice(1, x0, x1).reshape({nq, C}),
                           khw.slice(0, by0, by1).slice(1, bx0, bx1).reshape({-1, C}).t());   // [nq, box]
      auto cy = centres[0].slice(0, y0, y1).slice(1, x0, x1).reshape({nq, 1});
      auto cx = centres[1].slice(0, y0, y1).slice(1, x0, x1).reshape({nq, 1});
      // In the frame: a row test [nq, k] and a column test [nq, k], combined per window cell.
      auto rows_in = (cy + wy.view({1, k}) >= 0) & (cy + wy.view({1, k}) < m_h);
      auto cols_in = (cx + wx >= 0) & (cx + wx < m_w);
      auto outside = (rows_in.unsqueeze(2) & cols_in.unsqueeze(1)).reshape({nq, K2}).logical_not_();
      auto local = ((cy - by0) * bw + (cx - bx0)) + (wy * bw + wx).reshape({1, K2});
      auto scores = box.gather(1, local.clamp_(0, box.size(1) - 1)).masked_fill_(outside, kNegInf);
      const int64_t q0 = y0 * m_w + x0;
      auto ids = (torch::arange(y1 - y0, lopts).view({-1, 1}) * m_w + torch::arange(x1 - x0, lopts).view({1, -1})).reshape({nq}) + q0;
      // Keys of excluded cells are clamped into range: their score is -inf, so they never count.
      auto keys = (key_base.index_select(0, ids) + frame_offsets).clamp_(0, last_key);
      if (acc.topk) acc.topk->add_indexed(scores, keys, ids, reference);
      else acc.softmax->add_rows(scores, ref.labels_t.index_select(0, keys.reshape({-1})).view({nq, K2, -1}), ids);
    }
  }
}

torch::Tensor MastMemory::predict(const torch::Tensor& query) {
  StageScope s(m_stages, "affinity");
  const int64_t Q = m_h * m_w, L = m_frames.begin()->second.labels_t.size(1);
  const auto qs = query / m_config.temperature;     // the temperature folded into the queries
  const auto refs = references();
  Accumulators acc;
  std::optional<RunningTopK> topk;
  std::optional<RunningSoftmax> softmax;
  if (m_config.topk > 0) acc.topk = &topk.emplace(Q, m_config.topk, Q, m_device);
  else acc.softmax = &softmax.emplace(Q, L, m_device);
  const auto& g = geometry(m_h, m_w);
  const auto qt = g.query_tiles(qs);
  std::vector<torch::Tensor> tables;
  for (int64_t r : refs) {
    const Frame& f = m_frames.at(r);
    const int64_t gap = m_pos + 1 - r, reference = static_cast<int64_t>(tables.size());
    tables.push_back(f.labels_t);
    if (gap > m_config.roi_gap) offer_roi(qs, f, gap, reference, acc);
    else if (acc.topk) g.accumulate(qt, f.key_layout, *acc.topk, reference);
    else g.accumulate(qt, f.key_layout, f.label_layout, *acc.softmax);
  }
  torch::Tensor labels;   // [Q, L]
  if (acc.softmax) {
    labels = acc.softmax->result();
  } else {
    auto weights = torch::softmax(acc.topk->values(), 1);     // values already divided by T
    labels = (weights.unsqueeze(-1) * topk_labels(*acc.topk, tables)).sum(1);
  }
  return labels.t().reshape({L, m_h, m_w});
}

void MastMemory::remember(const torch::Tensor& features, const torch::Tensor& labels) {
  const int64_t L = labels.size(0);
  Frame f;
  f.features = features;
  f.key_layout = geometry(m_h, m_w).key_layout(features);
  f.labels_t = labels.reshape({L, -1}).t().contiguous();
  if (m_config.topk == 0) f.label_layout = geometry(m_h, m_w).label_layout(labels);
  m_frames[++m_pos] = std::move(f);
  // Keep the long-term references and the frames a short-term reference can still reach.
  for (auto it = m_frames.begin(); it != m_frames.end();) {
    const int64_t r = it->first;
    if (contains(m_config.long_term, r) || r > m_pos - m_reach) ++it;
    else it = m_frames.erase(it);
  }
}

}  // namespace corrtrack::detail
