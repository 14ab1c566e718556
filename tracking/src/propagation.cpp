// Label propagation engine (CRW protocol by default): the anchor frame and N recent frames as
// context, top-k affinities (recent frames inside a circular window), softmax with
// temperature, soft labels fed back, bilinear upsampling and argmax. Only the context's
// features are held, so memory does not grow with the length of the video.
#include "corrtrack/tracking.h"
#include "corrtrack/train.h"

#include <algorithm>
#include <cmath>
#include <deque>
#include <limits>
#include <map>

namespace F = torch::nn::functional;

namespace corrtrack {

namespace {

// Bytes one chunk of the affinity computation may use for its score and key blocks.
constexpr int64_t kChunkBytes = 48ll << 20;
constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// Largest integer offset strictly inside the radius.
int window_pad(double radius) { return std::max(0, static_cast<int>(std::ceil(radius)) - 1); }

// Top-k affinities inside a circular window, computed tile by tile: the queries of a T x T tile
// share one (T+2P)^2 key window, so each tile is one matrix product. Geometry-only tensors are
// built once; a query frame is laid out once (tiles) and a key frame once (channels last, padded)
// however many frames they are compared with.
class WindowedAffinity {
 public:
  WindowedAffinity(int64_t C, int64_t h, int64_t w, int tile, double radius)
      : m_C(C), m_h(h), m_w(w), m_tile(tile), m_pad(window_pad(radius)) {
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
    m_key_index = ic.to(torch::kLong).contiguous();                                   // [n, 1, W*W]
    // Outside the circle, or outside the frame.
    auto inside = torch::zeros({tile * tile, win2}, torch::kBool);
    auto a = inside.accessor<bool, 2>();
    const double r2 = radius * radius;
    for (int qy = 0; qy < tile; ++qy)
      for (int qx = 0; qx < tile; ++qx)
        for (int ky = 0; ky < m_win; ++ky)
          for (int kx = 0; kx < m_win; ++kx) {
            const double dy = ky - m_pad - qy, dx = kx - m_pad - qx;
            a[qy * tile + qx][ky * m_win + kx] = dy * dy + dx * dx < r2;
          }
    // Additive bias, 0 inside and -inf outside: the product is written once with the mask applied.
    auto excluded = inside.unsqueeze(0).logical_and(m_key_index >= 0).logical_not();
    m_bias = torch::zeros(excluded.sizes()).masked_fill_(excluded, kNegInf).contiguous();   // [n, T*T, W*W]
  }

  // [C, h, w] -> [tiles, T*T, C].
  torch::Tensor query_tiles(const torch::Tensor& q) const {
    return F::pad(q.unsqueeze(0), F::PadFuncOptions({0, m_wp - m_w, 0, m_hp - m_h}))
        .view({m_C, m_ht, m_tile, m_wt, m_tile}).permute({1, 3, 2, 4, 0}).reshape({m_ht * m_wt, m_tile * m_tile, m_C})
        .contiguous();
  }

  // [C, h, w] -> zero-padded channels-last [hp + 2P, wp + 2P, C].
  torch::Tensor key_layout(const torch::Tensor& k) const {
    return F::pad(k.unsqueeze(0), F::PadFuncOptions({m_pad, m_pad + m_wp - m_w, m_pad, m_pad + m_hp - m_h}))
        .squeeze(0).permute({1, 2, 0}).contiguous();
  }

  // Values [h*w, min(k, h*w)] and key indices of the top-k dot products inside the window.
  std::pair<torch::Tensor, torch::Tensor> topk(const torch::Tensor& qt, const torch::Tensor& kl, int k) const {
    const int64_t n = m_ht * m_wt, win2 = int64_t(m_win) * m_win, T2 = int64_t(m_tile) * m_tile;
    const int64_t Wk = kl.size(1);
    const int kk = static_cast<int>(std::min<int64_t>(k, win2));
    // Every tile's window as a [W*W, C] matrix without copying the padded map.
    auto windows = kl.as_strided({m_ht, m_wt, m_win, m_win, m_C}, {m_tile * Wk * m_C, m_tile * m_C, Wk * m_C, m_C, 1});
    auto out_v = torch::empty({n, T2, kk});
    auto out_i = torch::empty({n, T2, kk}, torch::kLong);
    const int64_t bytes_per_row = m_wt * (m_C * win2 + T2 * win2) * 4;
    const int64_t rows_per_chunk = std::max<int64_t>(1, kChunkBytes / std::max<int64_t>(1, bytes_per_row));
    for (int64_t r0 = 0; r0 < m_ht; r0 += rows_per_chunk) {
      const int64_t r1 = std::min(m_ht, r0 + rows_per_chunk), nc = (r1 - r0) * m_wt, t0 = r0 * m_wt;
      auto keys = windows.narrow(0, r0, r1 - r0).reshape({nc, win2, m_C});          // one gather copy
      auto scores = torch::baddbmm(m_bias.narrow(0, t0, nc), qt.narrow(0, t0, nc), keys.transpose(1, 2));  // [nc, T*T, W*W]
      auto top = scores.topk(kk, -1);
      out_v.narrow(0, t0, nc).copy_(std::get<0>(top));
      out_i.narrow(0, t0, nc).copy_(m_key_index.narrow(0, t0, nc).expand({nc, T2, win2}).gather(-1, std::get<1>(top)));
    }
    auto back = [&](const torch::Tensor& t) {
      return t.view({m_ht, m_wt, m_tile, m_tile, kk}).permute({0, 2, 1, 3, 4}).reshape({m_hp, m_wp, kk})
          .narrow(0, 0, m_h).narrow(1, 0, m_w).reshape({m_h * m_w, kk});
    };
    auto values = back(out_v), indices = back(out_i).clamp_min(0);
    // Same width as the dense version, min(k, keys): a window smaller than k pads with -inf.
    const int64_t want = std::min<int64_t>(k, m_h * m_w);
    if (want > kk) {
      values = torch::cat({values, torch::full({m_h * m_w, want - kk}, kNegInf)}, 1);
      indices = torch::cat({indices, torch::zeros({m_h * m_w, want - kk}, torch::kLong)}, 1);
    }
    return {values, indices};
  }

 private:
  int64_t m_C, m_h, m_w;
  int m_tile, m_pad, m_win = 0;
  int64_t m_ht = 0, m_wt = 0, m_hp = 0, m_wp = 0;
  torch::Tensor m_key_index, m_bias;
};

std::pair<torch::Tensor, torch::Tensor> dense_topk(const torch::Tensor& query, const torch::Tensor& key, int k,
                                                   double radius) {
  const int64_t C = query.size(0), h = query.size(1), w = query.size(2), Q = h * w;
  const int kk = static_cast<int>(std::min<int64_t>(k, Q));
  auto qf = query.reshape({C, Q}).t();
  auto kf = key.reshape({C, Q});
  auto ys = torch::arange(h, torch::kFloat).view({h, 1}).expand({h, w}).reshape({Q});
  auto xs = torch::arange(w, torch::kFloat).view({1, w}).expand({h, w}).reshape({Q});
  auto out_v = torch::empty({Q, kk});
  auto out_i = torch::empty({Q, kk}, torch::kLong);
  const int64_t chunk = std::max<int64_t>(1, kChunkBytes / (Q * 4 * 2));
  for (int64_t q0 = 0; q0 < Q; q0 += chunk) {
    const int64_t n = std::min(chunk, Q - q0);
    auto s = torch::mm(qf.narrow(0, q0, n), kf);
    if (radius > 0) {
      auto dy = ys.narrow(0, q0, n).unsqueeze(1) - ys.unsqueeze(0);
      auto dx = xs.narrow(0, q0, n).unsqueeze(1) - xs.unsqueeze(0);
      s.masked_fill_((dy * dy + dx * dx) >= radius * radius, kNegInf);
    }
    auto top = s.topk(kk, 1);
    out_v.narrow(0, q0, n).copy_(std::get<0>(top));
    out_i.narrow(0, q0, n).copy_(std::get<1>(top));
  }
  return {out_v, out_i};
}

// One reference in the context: features [C,h,w] (the anchor) or their windowed key layout
// (recent frames), and soft labels as [h*w, L].
struct Reference {
  torch::Tensor features;
  torch::Tensor key_layout;
  torch::Tensor labels_t;
};

// Candidates of the running top-k over the context: values [Q, k], labels [Q, k, L].
struct Candidates {
  torch::Tensor values, labels;

  void merge(const torch::Tensor& v, const torch::Tensor& lab, int k) {
    if (!values.defined()) {
      values = v;
      labels = lab;
    } else {
      values = torch::cat({values, v}, 1);
      labels = torch::cat({labels, lab}, 1);
    }
    if (values.size(1) > k) {
      auto top = values.topk(k, 1);
      values = std::get<0>(top);
      labels = labels.gather(1, std::get<1>(top).unsqueeze(-1).expand({-1, -1, labels.size(2)}));
    }
  }
};

// Geometry shared by one propagation run: frame size, internal size, feature size.
struct Geometry {
  int64_t H = 0, W = 0;     // output (frame) size
  int64_t Hs = 0, Ws = 0;   // internal size after scaling
  int64_t h = 0, w = 0;     // feature map size
  int stride = 8;

  // Object-index mask -> soft labels [L, h, w]: one-hot, resized to the internal size, padded to
  // whole feature cells, then bilinearly resized to the feature grid (cell centres).
  torch::Tensor labels_from_mask(const Image& mask, int64_t L) const {
    auto idx = torch::from_blob(const_cast<uint8_t*>(mask.data.data()), {H, W}, torch::kUInt8).to(torch::kLong);
    idx = torch::where(idx == 255, torch::zeros_like(idx), idx);
    auto onehot = F::one_hot(idx, L).permute({2, 0, 1}).to(torch::kFloat).unsqueeze(0);
    if (Hs != H || Ws != W) onehot = resize(onehot, Hs, Ws);
    onehot = F::pad(onehot, F::PadFuncOptions({0, w * stride - Ws, 0, h * stride - Hs}).mode(torch::kReplicate));
    return resize(onehot, h, w).squeeze(0);
  }

  // Soft labels [L, h, w] -> object-index mask at frame size.
  Image mask_from_labels(const torch::Tensor& labels) const {
    auto up = resize(labels.unsqueeze(0), h * stride, w * stride).narrow(2, 0, Hs).narrow(3, 0, Ws);
    if (Hs != H || Ws != W) up = resize(up, H, W);
    auto arg = up.squeeze(0).argmax(0).to(torch::kUInt8).contiguous();
    Image m(static_cast<int>(W), static_cast<int>(H), 1);
    std::memcpy(m.data.data(), arg.data_ptr<uint8_t>(), m.data.size());
    return m;
  }

  static torch::Tensor resize(const torch::Tensor& x, int64_t oh, int64_t ow) {
    return F::interpolate(x, F::InterpolateFuncOptions().size(std::vector<int64_t>{oh, ow}).mode(torch::kBilinear).align_corners(false));
  }
};

}  // namespace

std::pair<torch::Tensor, torch::Tensor> affinity_topk(const torch::Tensor& query, const torch::Tensor& key, int k,
                                                      double radius, bool local_window, int tile) {
  TORCH_CHECK(query.dim() == 3 && key.sizes() == query.sizes(), "affinity_topk: query and key must be [C,h,w] of equal size");
  if (k < 1) throw Error("top-k must be at least 1");
  torch::NoGradGuard ng;
  if (radius > 0 && local_window) {
    WindowedAffinity wa(query.size(0), query.size(1), query.size(2), std::max(1, tile), radius);
    return wa.topk(wa.query_tiles(query.contiguous()), wa.key_layout(key.contiguous()), k);
  }
  return dense_topk(query.contiguous(), key.contiguous(), k, radius);
}

LabelPropagator::LabelPropagator(FeatureExtractor& features, PropagationConfig config)
    : m_features(features), m_config(config) {
  if (m_config.context < 0) throw Error("--context must be >= 0");
  if (m_config.topk < 1) throw Error("--topk must be >= 1");
  if (!(m_config.temperature > 0)) throw Error("--temperature must be > 0");
  if (m_config.tile < 1) throw Error("--tile must be >= 1");
  if (!(m_config.scale > 0) || m_config.scale > 4) throw Error("--scale must be in (0, 4]");
  if (m_config.mode != "crw" && m_config.mode != "mast") throw Error("--mode must be crw or mast, got '" + m_config.mode + "'");
  if (m_config.mode == "mast" && (m_config.radius < 1 || m_config.radius > 64)) throw Error("--radius must be in [1, 64] in mast mode");
}

PropagationResult LabelPropagator::run(FrameSource& source, std::vector<Anchor> anchors, const MaskSink& sink,
                                       const ProgressCallback& progress, const CancelCallback& cancel) {
  torch::NoGradGuard ng;
  PropagationResult result;
  const double t0 = time_now_s();
  const int64_t n = source.size();
  if (anchors.empty()) throw Error("propagation needs at least one annotated frame");
  std::sort(anchors.begin(), anchors.end(), [](const Anchor& a, const Anchor& b) { return a.frame < b.frame; });
  for (size_t i = 0; i < anchors.size(); ++i) {
    const auto& a = anchors[i];
    if (a.frame < 0 || a.frame >= n) {
      throw Error("annotated frame " + std::to_string(a.frame) + " is past the end of '" + source.path() + "' (" + std::to_string(n) + " frames)");
    }
    if (i > 0 && anchors[i - 1].frame == a.frame) throw Error("frame " + std::to_string(a.frame) + " is annotated twice");
    if (a.mask.channels != 1) throw Error("the mask of frame " + std::to_string(a.frame) + " is not an index mask");
  }
  int64_t L = 1;
  for (const auto& a : anchors) L = std::max<int64_t>(L, mask_num_objects(a.mask) + 1);
  if (L < 2) throw Error("the annotation has no objects: every pixel is background (0) or void (255)");

  Image first = source.frame(anchors.front().frame);
  Geometry g;
  g.H = first.height;
  g.W = first.width;
  for (const auto& a : anchors) {
    if (a.mask.width != g.W || a.mask.height != g.H) {
      throw Error("the mask of frame " + std::to_string(a.frame) + " is " + std::to_string(a.mask.width) + "x" +
                  std::to_string(a.mask.height) + " but the frames are " + std::to_string(g.W) + "x" + std::to_string(g.H));
    }
  }
  g.Hs = std::max<int64_t>(1, std::llround(g.H * m_config.scale));
  g.Ws = std::max<int64_t>(1, std::llround(g.W * m_config.scale));
  g.stride = m_features.stride();

  auto features_of = [&](const Image& frame) {
    StageScope s(&result.stages, "features");
    const Image in = (g.Hs != g.H || g.Ws != g.W) ? image_resize(frame, static_cast<int>(g.Ws), static_cast<int>(g.Hs)) : frame;
    auto f = m_features.extract(in);
    g.h = f.size(1);
    g.w = f.size(2);
    return f;
  };
  auto read_frame = [&](int64_t k) {
    StageScope s(&result.stages, "decode");
    return source.frame(k);
  };

  ProgressMeter meter(n, "frames", progress);
  auto emit = [&](int64_t k, const Image& mask, const Image& rgb) {
    StageScope s(&result.stages, "write");
    sink(k, mask, rgb);
    ++result.frames;
    meter.step();
  };
  auto cancelled = [&] {
    if (cancel && cancel()) { result.cancelled = true; return true; }
    return false;
  };

  const int k = m_config.topk;
  // Propagates from `anchor` over `frames` (in the given order), emitting each mask.
  auto propagate_segment = [&](const Anchor& anchor, const Image& anchor_frame, const std::vector<int64_t>& frames) {
    if (frames.empty()) return;
    Reference ref;
    ref.features = features_of(anchor_frame);
    ref.labels_t = g.labels_from_mask(anchor.mask, L).reshape({L, g.h * g.w}).t().contiguous();
    const bool windowed = m_config.local_window && m_config.radius > 0;
    std::unique_ptr<WindowedAffinity> wa;
    if (windowed) {
      wa = std::make_unique<WindowedAffinity>(ref.features.size(0), g.h, g.w, m_config.tile, m_config.radius);
      ref.key_layout = wa->key_layout(ref.features);
    }
    // Recent frames; at the start the context is padded with copies of the anchor.
    std::deque<Reference> recent;
    for (int i = 0; i < m_config.context; ++i) recent.push_back(ref);
    for (int64_t t : frames) {
      if (cancelled()) return;
      const Image frame = read_frame(t);
      if (frame.width != g.W || frame.height != g.H) throw Error("frame " + std::to_string(t) + " of '" + source.path() + "' changes size");
      auto q = features_of(frame);
      Candidates cand;
      torch::Tensor q_tiles;
      {
        StageScope s(&result.stages, "affinity");
        auto gather = [&](const Reference& r, const torch::Tensor& idx) {
          return r.labels_t.index_select(0, idx.reshape({-1})).view({idx.size(0), idx.size(1), L});
        };
        auto [v, i] = affinity_topk(q, ref.features, k, 0.0, false);
        cand.merge(v, gather(ref, i), k);
        if (windowed) q_tiles = wa->query_tiles(q);
        // Identical references (the padding copies) are scored once and counted m times.
        for (size_t r = 0; r < recent.size();) {
          size_t m = 1;
          while (r + m < recent.size() && recent[r + m].labels_t.is_same(recent[r].labels_t)) ++m;
          auto [rv, ri] = windowed ? wa->topk(q_tiles, recent[r].key_layout, k)
                                   : affinity_topk(q, recent[r].features, k, m_config.radius, false);
          auto rl = gather(recent[r], ri);
          const int64_t copies = std::min<int64_t>(static_cast<int64_t>(m), k);
          cand.merge(rv.repeat({1, copies}), rl.repeat({1, copies, 1}), k);
          r += m;
        }
      }
      torch::Tensor labels;
      Image mask;
      {
        StageScope s(&result.stages, "labels");
        auto weights = torch::softmax(cand.values / m_config.temperature, 1);
        labels = (weights.unsqueeze(-1) * cand.labels).sum(1);             // [Q, L]
        mask = g.mask_from_labels(labels.t().reshape({L, g.h, g.w}));
      }
      emit(t, mask, frame);
      if (m_config.context > 0) {
        Reference nr;
        nr.labels_t = labels.contiguous();
        if (windowed) nr.key_layout = wa->key_layout(q);
        else nr.features = q;
        recent.push_back(std::move(nr));
        if (static_cast<int>(recent.size()) > m_config.context) recent.pop_front();
      }
    }
  };

  // MAST memory mode (PROTOCOLS.md): references at segment positions {0, 5} and {p-1, p-3, p-5};
  // each contributes a square window, far ones (gap > roi_gap) around a per-pixel ROI offset.
  struct Memory {
    torch::Tensor feat;    // [1, C, h, w]
    torch::Tensor labels;  // [1, L, h, w]
  };
  auto propagate_segment_mast = [&](const Anchor& anchor, const Image& anchor_frame, const std::vector<int64_t>& frames) {
    if (frames.empty()) return;
    const int R = static_cast<int>(m_config.radius);
    const double inv_t = 1.0 / m_config.temperature;
    std::map<int64_t, Memory> memory;
    memory[0] = {features_of(anchor_frame).unsqueeze(0), g.labels_from_mask(anchor.mask, L).unsqueeze(0)};
    for (size_t j = 0; j < frames.size(); ++j) {
      if (cancelled()) return;
      const int64_t t = frames[j], pos = static_cast<int64_t>(j) + 1;
      const Image frame = read_frame(t);
      if (frame.width != g.W || frame.height != g.H) throw Error("frame " + std::to_string(t) + " of '" + source.path() + "' changes size");
      auto q = features_of(frame).unsqueeze(0);
      torch::Tensor labels;
      {
        StageScope s(&result.stages, "affinity");
        std::vector<int64_t> refs;
        for (int64_t r : {int64_t(0), int64_t(5), pos - 1, pos - 3, pos - 5}) {
          if (r >= 0 && r < pos && memory.count(r) && std::find(refs.begin(), refs.end(), r) == refs.end()) refs.push_back(r);
        }
        std::vector<torch::Tensor> scores, windows;  // per reference: [1, K2, h, w] and, for ROI ones, labels [K2, L, h, w]
        for (int64_t r : refs) {
          const auto& m = memory[r];
          const int64_t gap = pos - r;
          if (gap <= m_config.roi_gap) {
            scores.push_back(local_window_scores(q, m.feat, R, inv_t));
            windows.push_back(torch::Tensor());
            continue;
          }
          // ROI: dilated correlation, softmax, expected offset (in cells) per query pixel.
          const int d = static_cast<int>(std::min<int64_t>(4, gap / m_config.roi_gap + 1));
          auto p = torch::softmax(local_window_scores(q, m.feat, R, inv_t, d), 1);  // [1, K2, h, w]
          auto offs = torch::arange(-R, R + 1, torch::kFloat) * double(d);
          const int64_t k = 2 * R + 1;
          auto oy = offs.view({k, 1}).expand({k, k}).reshape({1, k * k, 1, 1});
          auto ox = offs.view({1, k}).expand({k, k}).reshape({1, k * k, 1, 1});
          auto cy = (p * oy).sum(1).squeeze(0), cx = (p * ox).sum(1).squeeze(0);  // [h, w]
          auto ys = torch::arange(g.h, torch::kFloat).view({g.h, 1}) + cy;
          auto xs = torch::arange(g.w, torch::kFloat).view({1, g.w}) + cx;
          std::vector<torch::Tensor> sc, lw;
          for (int dy = -R; dy <= R; ++dy) {
            for (int dx = -R; dx <= R; ++dx) {
              auto py = ys + dy, px = xs + dx;
              // grid_sample coordinates in [-1, 1] with align_corners=true: cell centres at the ends.
              auto grid = torch::stack({px * (2.0 / std::max<int64_t>(1, g.w - 1)) - 1.0,
                                        py * (2.0 / std::max<int64_t>(1, g.h - 1)) - 1.0}, -1).unsqueeze(0);
              auto opts = F::GridSampleFuncOptions().mode(torch::kBilinear).padding_mode(torch::kZeros).align_corners(true);
              auto kf = F::grid_sample(m.feat, grid, opts);
              auto inside = (py >= 0) & (py <= g.h - 1) & (px >= 0) & (px <= g.w - 1);
              auto sco = ((q * kf).sum(1).squeeze(0) * inv_t).masked_fill(~inside, -std::numeric_limits<float>::infinity());
              sc.push_back(sco);
              lw.push_back(F::grid_sample(m.labels, grid, opts).squeeze(0));
            }
          }
          scores.push_back(torch::stack(sc).unsqueeze(0));
          windows.push_back(torch::stack(lw));
        }
        // One joint softmax over every reference's window.
        auto all = torch::softmax(torch::cat(scores, 1), 1);
        int64_t at = 0;
        for (size_t i = 0; i < refs.size(); ++i) {
          const int64_t kk = scores[i].size(1);
          auto w = all.narrow(1, at, kk);
          at += kk;
          auto part = windows[i].defined() ? (w.squeeze(0).unsqueeze(1) * windows[i]).sum(0).unsqueeze(0)
                                           : local_window_gather(w, memory[refs[i]].labels, R);
          labels = labels.defined() ? labels + part : part;
        }
      }
      Image mask;
      {
        StageScope s(&result.stages, "labels");
        mask = g.mask_from_labels(labels.squeeze(0));
      }
      emit(t, mask, frame);
      memory[pos] = {q, labels};
      // Keep the long-term references and the last five frames only.
      for (auto it = memory.begin(); it != memory.end();) {
        const int64_t r = it->first;
        if (r == 0 || r == 5 || r > pos - 5) ++it;
        else it = memory.erase(it);
      }
    }
  };
  auto segment = [&](const Anchor& anchor, const Image& anchor_frame, const std::vector<int64_t>& frames) {
    if (m_config.mode == "mast") propagate_segment_mast(anchor, anchor_frame, frames);
    else propagate_segment(anchor, anchor_frame, frames);
  };

  auto clean = [](Image m) {
    for (auto& v : m.data) if (v == 255) v = 0;
    return m;
  };

  // Backward from the first anchor to frame 0.
  {
    std::vector<int64_t> back;
    for (int64_t t = anchors.front().frame - 1; t >= 0; --t) back.push_back(t);
    segment(anchors.front(), first, back);
  }
  for (size_t i = 0; i < anchors.size() && !result.cancelled; ++i) {
    const Image anchor_frame = i == 0 ? first : read_frame(anchors[i].frame);
    emit(anchors[i].frame, clean(anchors[i].mask), anchor_frame);
    const int64_t end = i + 1 < anchors.size() ? anchors[i + 1].frame : n;
    std::vector<int64_t> fwd;
    for (int64_t t = anchors[i].frame + 1; t < end; ++t) fwd.push_back(t);
    segment(anchors[i], anchor_frame, fwd);
  }
  result.seconds = time_now_s() - t0;
  return result;
}

}  // namespace corrtrack
