// Affinities between feature maps: inside a window (CRW's circle or MAST's square), tile by tile
// (the queries of a T x T tile share one key window, so each tile is one matrix product), or dense
// all-pairs then masked (kept for comparison). They feed a RunningTopK, which keeps the top-k over
// several reference frames, or (windowed) a RunningSoftmax, which averages labels under a softmax
// over every key offered.
#pragma once

#include "corrtrack/core.h"

#include "running_softmax.h"
#include "running_topk.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>

namespace corrtrack::detail {

namespace F = torch::nn::functional;

// Bytes one chunk of the affinity computation may use for its score and key blocks.
constexpr int64_t kChunkBytes = 48ll << 20;
constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// Circle: keys at distance < radius (CRW). Square: keys with |dy|, |dx| <= radius (MAST).
enum class WindowShape { Circle, Square };

// Largest integer offset inside the window.
inline int window_pad(double radius, WindowShape shape) {
  if (shape == WindowShape::Square) return std::max(0, static_cast<int>(std::floor(radius)));
  return std::max(0, static_cast<int>(std::ceil(radius)) - 1);
}

// Affinities inside a window, computed tile by tile: the queries of a T x T tile
// share one (T+2P)^2 key window, so each tile is one matrix product. Geometry-only tensors are
// built once; a query frame is laid out once (tiles) and a key frame once (channels last, padded)
// however many frames they are compared with.
class WindowedAffinity {
 public:
  // Geometry tensors are built on the CPU and kept on `device` (where the features are).
  // Feature layouts are kept in `dtype` (float32 or bfloat16: the matrix products run in it and
  // their scores are handed on as float32).
  WindowedAffinity(int64_t C, int64_t h, int64_t w, int tile, double radius, torch::Device device = torch::kCPU,
                   WindowShape shape = WindowShape::Circle, torch::ScalarType dtype = torch::kFloat)
      : m_C(C), m_h(h), m_w(w), m_tile(tile), m_pad(window_pad(radius, shape)), m_dtype(dtype) {
    m_win = tile + 2 * m_pad;
    m_ht = (h + tile - 1) / tile;
    m_wt = (w + tile - 1) / tile;
    m_hp = m_ht * tile;
    m_wp = m_wt * tile;
    const int64_t n = m_ht * m_wt, win2 = int64_t(m_win) * m_win;
    // Flat key index at every padded position (-1 outside the frame), cut into windows.
    auto idx_map = F::pad(torch::arange(h * w, torch::kFloat).view({1, 1, h, w}),
                          F::PadFuncOptions({m_pad, m_pad + m_wp - w, m_pad, m_pad + m_hp - h}).value(-1.0));
    auto ic = F::unfold(idx_map, F::UnfoldFuncOptions({m_win, m_win}).stride(tile)).view({win2, n}).t().unsqueeze(1);
    m_key_index = ic.squeeze(1).to(torch::kLong).contiguous();                        // [n, W*W]
    // Flat query index at every tile position (-1 in the padding past the frame).
    auto iq = F::pad(torch::arange(h * w, torch::kFloat).view({1, 1, h, w}),
                     F::PadFuncOptions({0, m_wp - w, 0, m_hp - h}).value(-1.0));
    m_query_index = iq.view({m_ht, tile, m_wt, tile}).permute({0, 2, 1, 3}).reshape({n, tile * tile})
                        .to(torch::kLong).contiguous();                                 // [n, T*T]
    // Outside the window, or outside the frame.
    auto inside = torch::zeros({tile * tile, win2}, torch::kBool);
    auto a = inside.accessor<bool, 2>();
    const double r2 = radius * radius;
    for (int qy = 0; qy < tile; ++qy)
      for (int qx = 0; qx < tile; ++qx)
        for (int ky = 0; ky < m_win; ++ky)
          for (int kx = 0; kx < m_win; ++kx) {
            const double dy = ky - m_pad - qy, dx = kx - m_pad - qx;
            a[qy * tile + qx][ky * m_win + kx] = shape == WindowShape::Square
                                                     ? std::abs(dy) <= radius && std::abs(dx) <= radius
                                                     : dy * dy + dx * dx < r2;
          }
    // Additive bias, 0 inside and -inf outside: the product is written once with the mask applied.
    auto excluded = inside.unsqueeze(0).logical_and(m_key_index.unsqueeze(1) >= 0).logical_not();
    m_bias = torch::zeros(excluded.sizes()).masked_fill_(excluded, kNegInf).to(device, dtype).contiguous();  // [n, T*T, W*W]
    // The CPU scan reads the maps on the CPU; the generic (CUDA) path indexes with them on the device.
    if (!device.is_cpu()) {
      m_key_index = m_key_index.to(device);
      m_query_index = m_query_index.to(device);
    }
  }

  // Features [C, h, w] -> [tiles, T*T, C] in the layout dtype.
  torch::Tensor query_tiles(const torch::Tensor& q) const {
    return F::pad(q.to(m_dtype).unsqueeze(0), F::PadFuncOptions({0, m_wp - m_w, 0, m_hp - m_h}))
        .view({m_C, m_ht, m_tile, m_wt, m_tile}).permute({1, 3, 2, 4, 0}).reshape({m_ht * m_wt, m_tile * m_tile, m_C})
        .contiguous();
  }

  // Features [C, h, w] -> zero-padded channels-last [hp + 2P, wp + 2P, C] in the layout dtype.
  torch::Tensor key_layout(const torch::Tensor& k) const { return label_layout(k.to(m_dtype)); }
  // The same layout of labels (or coordinates) [L, h, w], in their own dtype.
  torch::Tensor label_layout(const torch::Tensor& k) const {
    return F::pad(k.unsqueeze(0), F::PadFuncOptions({m_pad, m_pad + m_wp - m_w, m_pad, m_pad + m_hp - m_h}))
        .squeeze(0).permute({1, 2, 0}).contiguous();
  }

  // Offers the dot products of every query with the keys inside its window to `acc` as
  // `reference` (each counted `copies` times). qt from query_tiles, kl from key_layout.
  void accumulate(const torch::Tensor& qt, const torch::Tensor& kl, RunningTopK& acc, int64_t reference,
                  int copies = 1) const {
    for_each_chunk(qt, kl, 0, [&](const torch::Tensor& scores, int64_t, int64_t, int64_t t0) {
      acc.add_windowed(scores, t0, m_key_index, m_query_index, reference, copies);
    });
  }

  // Offers the same dot products with the keys' labels to `acc`; ll = key_layout(labels [L, h, w]).
  void accumulate(const torch::Tensor& qt, const torch::Tensor& kl, const torch::Tensor& ll, RunningSoftmax& acc) const {
    const auto label_windows = windows(ll);
    const int64_t win2 = int64_t(m_win) * m_win;
    for_each_chunk(qt, kl, ll.size(2), [&](const torch::Tensor& scores, int64_t r0, int64_t r1, int64_t t0) {
      auto labels = label_windows.narrow(0, r0, r1 - r0).reshape({scores.size(0), win2, ll.size(2)});
      acc.add_windowed(scores, labels, t0, m_query_index);
    });
  }

  // Values [h*w, min(k, h*w)] (largest first, -inf where the window holds fewer keys) and key
  // indices of the top-k dot products inside the window.
  std::pair<torch::Tensor, torch::Tensor> topk(const torch::Tensor& qt, const torch::Tensor& kl, int k) const {
    RunningTopK acc(m_h * m_w, static_cast<int>(std::min<int64_t>(k, m_h * m_w)), m_h * m_w, qt.device());
    accumulate(qt, kl, acc, 0);
    return {acc.values(), acc.codes()};
  }

 private:
  // Every tile's window of a layout as [tiles rows, tiles cols, W, W, channels], without a copy.
  torch::Tensor windows(const torch::Tensor& layout) const {
    const int64_t Wk = layout.size(1), ch = layout.size(2);
    return layout.as_strided({m_ht, m_wt, m_win, m_win, ch}, {m_tile * Wk * ch, m_tile * ch, Wk * ch, ch, 1});
  }

  // Scores [tiles, T*T, W*W] (bias applied) of chunks of tile rows, chunked so that the score and
  // key blocks (and `extra` channels per key) stay within kChunkBytes: fn(scores, r0, r1, t0).
  template <class Fn>
  void for_each_chunk(const torch::Tensor& qt, const torch::Tensor& kl, int64_t extra, Fn&& fn) const {
    const int64_t win2 = int64_t(m_win) * m_win, T2 = int64_t(m_tile) * m_tile;
    const auto key_windows = windows(kl);
    const int64_t bytes_per_row = m_wt * ((m_C + extra) * win2 + T2 * win2) * 4;
    const int64_t rows_per_chunk = std::max<int64_t>(1, kChunkBytes / std::max<int64_t>(1, bytes_per_row));
    for (int64_t r0 = 0; r0 < m_ht; r0 += rows_per_chunk) {
      const int64_t r1 = std::min(m_ht, r0 + rows_per_chunk), nc = (r1 - r0) * m_wt, t0 = r0 * m_wt;
      auto keys = key_windows.narrow(0, r0, r1 - r0).reshape({nc, win2, m_C});          // one gather copy
      auto scores = torch::baddbmm(m_bias.narrow(0, t0, nc), qt.narrow(0, t0, nc), keys.transpose(1, 2));
      fn(m_dtype == torch::kFloat ? scores : scores.to(torch::kFloat), r0, r1, t0);
    }
  }

  int64_t m_C, m_h, m_w;
  int m_tile, m_pad, m_win = 0;
  torch::ScalarType m_dtype;
  int64_t m_ht = 0, m_wt = 0, m_hp = 0, m_wp = 0;
  torch::Tensor m_key_index, m_query_index, m_bias;
};

// The dtype in which to compute a dense product of C-channel features when products may be in
// `dtype`. Below 128 channels a dense product is bound by writing its scores, and float32 is faster
// than bfloat16 plus the conversion of the scores (measured for 6420 x 6420 scores on an AMX CPU,
// 2 threads: 64 channels 54 ms in float32 vs 63 + 18 ms; 256 channels 172 ms vs 80 + 18 ms).
inline torch::ScalarType dense_dtype(int64_t C, torch::ScalarType dtype) { return C < 128 ? torch::kFloat : dtype; }

// Offers the dot products of every query with every key (at distance < radius when radius > 0)
// to `acc` as `reference`, in chunks of queries. Query and key share a dtype (float32 or
// bfloat16); scores are handed on as float32.
inline void dense_accumulate(const torch::Tensor& query, const torch::Tensor& key, double radius, RunningTopK& acc,
                             int64_t reference, int copies = 1) {
  const int64_t C = query.size(0), h = query.size(1), w = query.size(2), Q = h * w;
  auto qf = query.reshape({C, Q}).t();
  // oneDNN's bfloat16 product wants a row-major left side (a transposed view took 2.4x as long).
  if (qf.scalar_type() != torch::kFloat) qf = qf.contiguous();
  auto kf = key.reshape({C, Q});
  torch::Tensor ys, xs;   // cell coordinates, needed only to mask by radius
  if (radius > 0) {
    ys = torch::arange(h, query.options()).view({h, 1}).expand({h, w}).reshape({Q});
    xs = torch::arange(w, query.options()).view({1, w}).expand({h, w}).reshape({Q});
  }
  const int64_t chunk = std::max<int64_t>(1, kChunkBytes / (Q * 4 * 2));
  for (int64_t q0 = 0; q0 < Q; q0 += chunk) {
    const int64_t n = std::min(chunk, Q - q0);
    auto s = torch::mm(qf.narrow(0, q0, n), kf);
    if (s.scalar_type() != torch::kFloat) s = s.to(torch::kFloat);
    if (radius > 0) {
      auto dy = ys.narrow(0, q0, n).unsqueeze(1) - ys.unsqueeze(0);
      auto dx = xs.narrow(0, q0, n).unsqueeze(1) - xs.unsqueeze(0);
      s.masked_fill_((dy * dy + dx * dx) >= radius * radius, kNegInf);
    }
    acc.add_dense(s, q0, reference, copies);
  }
}

inline std::pair<torch::Tensor, torch::Tensor> dense_topk(const torch::Tensor& query, const torch::Tensor& key, int k,
                                                          double radius) {
  const int64_t Q = query.size(1) * query.size(2);
  RunningTopK acc(Q, static_cast<int>(std::min<int64_t>(k, Q)), Q, query.device());
  dense_accumulate(query, key, radius, acc, 0);
  return {acc.values(), acc.codes()};
}

}  // namespace corrtrack::detail
