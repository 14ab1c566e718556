// Label propagation engine (CRW protocol by default): the anchor frame and N recent frames as
// context, top-k affinities (recent frames inside a circular window), softmax with
// temperature, soft labels fed back, bilinear upsampling and argmax. Only the context's
// features are held, so memory does not grow with the length of the video.
#include "corrtrack/tracking.h"

#include <algorithm>
#include <cmath>
#include <deque>
#include <limits>

namespace F = torch::nn::functional;

namespace corrtrack {

namespace {

// Bytes one chunk of the affinity computation may use for its score and key blocks.
constexpr int64_t kChunkBytes = 48ll << 20;
constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// Largest integer offset strictly inside the radius.
int window_pad(double radius) { return std::max(0, static_cast<int>(std::ceil(radius)) - 1); }

// [T*T, W*W]: key offset within the window is at distance < radius from the query in the tile.
torch::Tensor window_mask(int tile, int pad, double radius) {
  const int win = tile + 2 * pad;
  auto m = torch::zeros({tile * tile, win * win}, torch::kBool);
  auto a = m.accessor<bool, 2>();
  const double r2 = radius * radius;
  for (int qy = 0; qy < tile; ++qy)
    for (int qx = 0; qx < tile; ++qx)
      for (int ky = 0; ky < win; ++ky)
        for (int kx = 0; kx < win; ++kx) {
          const double dy = ky - pad - qy, dx = kx - pad - qx;
          a[qy * tile + qx][ky * win + kx] = dy * dy + dx * dx < r2;
        }
  return m;
}

std::pair<torch::Tensor, torch::Tensor> local_topk(const torch::Tensor& query, const torch::Tensor& key, int k,
                                                   double radius, int tile) {
  const int64_t C = query.size(0), h = query.size(1), w = query.size(2);
  const int pad = window_pad(radius), win = tile + 2 * pad, win2 = win * win;
  const int64_t ht = (h + tile - 1) / tile, wt = (w + tile - 1) / tile, hp = ht * tile, wp = wt * tile;
  const int kk = std::min<int>(k, win2);
  // Queries grouped by tile: [tiles, T*T, C].
  auto qt = F::pad(query.unsqueeze(0), F::PadFuncOptions({0, wp - w, 0, hp - h}))
                .view({C, ht, tile, wt, tile}).permute({1, 3, 2, 4, 0}).reshape({ht * wt, tile * tile, C});
  auto kpad = F::pad(key.unsqueeze(0), F::PadFuncOptions({pad, pad + wp - w, pad, pad + hp - h}));
  // Flat key index at every padded position, -1 outside the frame.
  auto idx_map = F::pad(torch::arange(h * w, torch::kFloat).view({1, 1, h, w}),
                        F::PadFuncOptions({pad, pad + wp - w, pad, pad + hp - h}).value(-1.0));
  const auto inside = window_mask(tile, pad, radius).unsqueeze(0);
  auto out_v = torch::empty({ht * wt, tile * tile, kk});
  auto out_i = torch::empty({ht * wt, tile * tile, kk}, torch::kLong);
  const int64_t bytes_per_row = wt * (C * win2 + tile * tile * win2) * 4;
  const int64_t rows_per_chunk = std::max<int64_t>(1, kChunkBytes / std::max<int64_t>(1, bytes_per_row));
  for (int64_t r0 = 0; r0 < ht; r0 += rows_per_chunk) {
    const int64_t r1 = std::min(ht, r0 + rows_per_chunk), n = (r1 - r0) * wt;
    const auto rows = torch::indexing::Slice(r0 * tile, r1 * tile + 2 * pad);
    auto kc = F::unfold(kpad.index({torch::indexing::Slice(), torch::indexing::Slice(), rows}),
                        F::UnfoldFuncOptions({win, win}).stride(tile))
                  .view({C, win2, n}).permute({2, 0, 1});
    auto ic = F::unfold(idx_map.index({torch::indexing::Slice(), torch::indexing::Slice(), rows}),
                        F::UnfoldFuncOptions({win, win}).stride(tile))
                  .view({win2, n}).t().unsqueeze(1);                       // [n, 1, W*W]
    auto scores = torch::bmm(qt.narrow(0, r0 * wt, n), kc);               // [n, T*T, W*W]
    scores.masked_fill_(inside.logical_and(ic >= 0).logical_not(), kNegInf);
    auto top = scores.topk(kk, -1);
    out_v.narrow(0, r0 * wt, n).copy_(std::get<0>(top));
    out_i.narrow(0, r0 * wt, n).copy_(ic.expand({n, tile * tile, win2}).gather(-1, std::get<1>(top)).clamp_min(0).to(torch::kLong));
  }
  auto back = [&](const torch::Tensor& t) {
    return t.view({ht, wt, tile, tile, kk}).permute({0, 2, 1, 3, 4}).reshape({hp, wp, kk})
        .narrow(0, 0, h).narrow(1, 0, w).reshape({h * w, kk});
  };
  return {back(out_v), back(out_i)};
}

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

// One reference in the context: features [C,h,w] and soft labels [L, h*w] (transposed [h*w, L]).
struct Reference {
  torch::Tensor features;
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
  if (radius > 0 && local_window) return local_topk(query.contiguous(), key.contiguous(), k, radius, std::max(1, tile));
  return dense_topk(query.contiguous(), key.contiguous(), k, radius);
}

LabelPropagator::LabelPropagator(FeatureExtractor& features, PropagationConfig config)
    : m_features(features), m_config(config) {
  if (m_config.context < 0) throw Error("--context must be >= 0");
  if (m_config.topk < 1) throw Error("--topk must be >= 1");
  if (!(m_config.temperature > 0)) throw Error("--temperature must be > 0");
  if (m_config.tile < 1) throw Error("--tile must be >= 1");
  if (!(m_config.scale > 0) || m_config.scale > 4) throw Error("--scale must be in (0, 4]");
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
    // Recent frames; at the start the context is padded with copies of the anchor.
    std::deque<Reference> recent;
    for (int i = 0; i < m_config.context; ++i) recent.push_back(ref);
    for (int64_t t : frames) {
      if (cancelled()) return;
      const Image frame = read_frame(t);
      if (frame.width != g.W || frame.height != g.H) throw Error("frame " + std::to_string(t) + " of '" + source.path() + "' changes size");
      auto q = features_of(frame);
      Candidates cand;
      {
        StageScope s(&result.stages, "affinity");
        auto [v, i] = affinity_topk(q, ref.features, k, 0.0, false);
        cand.merge(v, ref.labels_t.index_select(0, i.reshape({-1})).view({i.size(0), i.size(1), L}), k);
        // Identical references (the padding copies) are scored once and counted m times.
        for (size_t r = 0; r < recent.size();) {
          size_t m = 1;
          while (r + m < recent.size() && recent[r + m].features.is_same(recent[r].features)) ++m;
          auto [rv, ri] = affinity_topk(q, recent[r].features, k, m_config.radius, m_config.local_window, m_config.tile);
          auto rl = recent[r].labels_t.index_select(0, ri.reshape({-1})).view({ri.size(0), ri.size(1), L});
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
        recent.push_back(Reference{q, labels.contiguous()});
        if (static_cast<int>(recent.size()) > m_config.context) recent.pop_front();
      }
    }
  };

  auto clean = [](Image m) {
    for (auto& v : m.data) if (v == 255) v = 0;
    return m;
  };

  // Backward from the first anchor to frame 0.
  {
    std::vector<int64_t> back;
    for (int64_t t = anchors.front().frame - 1; t >= 0; --t) back.push_back(t);
    propagate_segment(anchors.front(), first, back);
  }
  for (size_t i = 0; i < anchors.size() && !result.cancelled; ++i) {
    const Image anchor_frame = i == 0 ? first : read_frame(anchors[i].frame);
    emit(anchors[i].frame, clean(anchors[i].mask), anchor_frame);
    const int64_t end = i + 1 < anchors.size() ? anchors[i + 1].frame : n;
    std::vector<int64_t> fwd;
    for (int64_t t = anchors[i].frame + 1; t < end; ++t) fwd.push_back(t);
    propagate_segment(anchors[i], anchor_frame, fwd);
  }
  result.seconds = time_now_s() - t0;
  return result;
}

}  // namespace corrtrack
