// The label propagation engine: validates the anchors, walks the segments (backward before the
// first anchor, forward from each anchor to the next) and their frames, computes features and
// hands them to the mode's memory (propagation_memory.h), which predicts the soft labels.
#include "corrtrack/propagation.h"

#include "corrtrack/tracking.h"

#include "frame_pipeline.h"
#include "guided_filter.h"
#include "label_grid.h"
#include "propagation_memory.h"

#include <algorithm>
#include <cmath>

namespace corrtrack {

namespace {
constexpr int kMaxContext = 1000;  // frames held in memory by the CRW context
constexpr int kMaxTopK = 10000;
}  // namespace

PropagationMode propagation_mode_parse(const std::string& name) {
  if (name == "crw") return PropagationMode::Crw;
  if (name == "mast") return PropagationMode::Mast;
  throw SettingError("mode", "must be crw or mast, got '" + name + "'");
}

std::string propagation_mode_name(PropagationMode mode) { return mode == PropagationMode::Mast ? "mast" : "crw"; }

LabelFeedback label_feedback_parse(const std::string& name) {
  if (name == "auto") return LabelFeedback::Auto;
  if (name == "soft") return LabelFeedback::Soft;
  if (name == "hard") return LabelFeedback::Hard;
  throw SettingError("feedback", "must be auto, soft or hard, got '" + name + "'");
}

std::string label_feedback_name(LabelFeedback feedback) {
  switch (feedback) {
    case LabelFeedback::Soft: return "soft";
    case LabelFeedback::Hard: return "hard";
    case LabelFeedback::Auto: break;
  }
  return "auto";
}

LabelFeedback label_feedback_effective(const PropagationConfig& config) {
  if (config.feedback != LabelFeedback::Auto) return config.feedback;
  return config.mode == PropagationMode::Mast ? LabelFeedback::Hard : LabelFeedback::Soft;
}

void propagation_config_validate(const PropagationConfig& c) {
  if (c.context < 0 || c.context > kMaxContext) throw Error("context must be in [0, " + std::to_string(kMaxContext) + "] frames");
  const int min_topk = c.mode == PropagationMode::Mast ? 0 : 1;
  if (c.topk < min_topk || c.topk > kMaxTopK) {
    throw Error("top-k must be >= " + std::to_string(min_topk) + " and at most " + std::to_string(kMaxTopK) +
                (min_topk == 0 ? " (0 = every key)" : ""));
  }
  if (!(c.temperature > 0) || !std::isfinite(c.temperature)) throw Error("temperature must be a positive number");
  if (!(c.radius >= 0) || !std::isfinite(c.radius)) throw Error("radius must be >= 0 cells (0 = no window)");
  if (c.tile < 1 || c.tile > 64) throw Error("tile must be in [1, 64]");
  // Below 0.05 a 480p frame shrinks to a few feature cells and every pixel gets one label.
  if (!(c.scale >= 0.05) || c.scale > 4) throw Error("scale must be in [0.05, 4]");
  if (c.mode == PropagationMode::Mast && (c.radius < 1 || c.radius > 64)) throw Error("radius must be in [1, 64] in mast mode");
  if (c.roi_gap < 1) throw Error("ROI gap must be >= 1 frame");
  if (c.refine_radius < 0 || c.refine_radius > 64) throw Error("refine radius must be in [0, 64] pixels (0 = off)");
  if (!(c.refine_eps > 0) || !std::isfinite(c.refine_eps)) throw Error("refine eps must be a positive number");
  if (!(c.feedback_power > 0) || !(c.feedback_power <= 16)) throw Error("feedback power must be in (0, 16] (1 = soft labels as predicted)");
  const std::string most = std::to_string(kMaxContext);
  for (int p : c.long_term) {
    if (p < 0 || p > kMaxContext) throw Error("long-term references must be positions in [0, " + most + "]");
  }
  for (int g : c.short_term) {
    if (g < 1 || g > kMaxContext) throw Error("short-term references must be frames back in [1, " + most + "]");
  }
  if (c.mode == PropagationMode::Mast && !detail::contains(c.long_term, 0) && !detail::contains(c.short_term, 1)) {
    throw Error("the memory needs the anchor (long-term 0) or the previous frame (short-term 1): "
                "otherwise the first frame has no reference");
  }
}

std::pair<torch::Tensor, torch::Tensor> affinity_topk(const torch::Tensor& query, const torch::Tensor& key, int k,
                                                      double radius, bool local_window, int tile) {
  TORCH_CHECK(query.dim() == 3 && key.sizes() == query.sizes(), "affinity_topk: query and key must be [C,h,w] of equal size");
  if (k < 1) throw Error("top-k must be at least 1");
  torch::NoGradGuard ng;
  if (radius > 0 && local_window) {
    detail::WindowedAffinity wa(query.size(0), query.size(1), query.size(2), std::max(1, tile), radius);
    return wa.topk(wa.query_tiles(query.contiguous()), wa.key_layout(key.contiguous()), k);
  }
  return detail::dense_topk(query.contiguous(), key.contiguous(), k, radius);
}


namespace detail {

std::unique_ptr<PropagationMemory> propagation_memory_create(const PropagationConfig& config, StageTimer* stages,
                                                             torch::ScalarType products) {
  switch (config.mode) {
    case PropagationMode::Mast: return std::make_unique<MastMemory>(config, stages, products);
    case PropagationMode::Crw: break;
  }
  return std::make_unique<CrwContextMemory>(config, stages, products);
}

namespace {

// Sorts the anchors and checks them against the source: inside it, annotated once, index masks.
// Returns the number of labels (background + objects).
int64_t anchors_check(std::vector<Anchor>& anchors, FrameSource& source) {
  const int64_t n = source.size();
  if (anchors.empty()) throw Error("propagation needs at least one annotated frame");
  std::sort(anchors.begin(), anchors.end(), [](const Anchor& a, const Anchor& b) { return a.frame < b.frame; });
  int64_t L = 1;
  for (size_t i = 0; i < anchors.size(); ++i) {
    const auto& a = anchors[i];
    const std::string f = std::to_string(a.frame);
    if (a.frame < 0 || a.frame >= n) {
      throw Error("annotated frame " + f + " is past the end of '" + source.path() + "' (" + std::to_string(n) + " frames)");
    }
    if (i > 0 && anchors[i - 1].frame == a.frame) throw Error("frame " + f + " is annotated twice");
    if (a.mask.channels != 1) throw Error("the mask of frame " + f + " is not an index mask");
    L = std::max<int64_t>(L, mask_num_objects(a.mask) + 1);
  }
  if (L < 2) throw Error("the annotation has no objects: every pixel is background (0) or void (255)");
  return L;
}

void anchor_sizes_check(const std::vector<Anchor>& anchors, const Image& frame) {
  for (const auto& a : anchors) {
    if (a.mask.width != frame.width || a.mask.height != frame.height) {
      throw Error("the mask of frame " + std::to_string(a.frame) + " is " + std::to_string(a.mask.width) + "x" +
                  std::to_string(a.mask.height) + " but the frames are " + std::to_string(frame.width) + "x" +
                  std::to_string(frame.height));
    }
  }
}

Image without_void(Image m) {
  for (auto& v : m.data) if (v == 255) v = 0;
  return m;
}

// One-hot [L, h, w] of the argmax over labels [L, h, w] (ties: the lowest label).
torch::Tensor one_hot_argmax(const torch::Tensor& labels) {
  return torch::zeros_like(labels).scatter_(0, label_argmax(labels).unsqueeze(0), 1.0);
}

// The dtype of the memory's feature products: the encoder's.
torch::ScalarType products_dtype(const FeatureExtractor& features) {
  return features.precision() == Precision::BFloat16 ? torch::kBFloat16 : torch::kFloat;
}

// from, from + step, ... up to `stop` (exclusive).
std::vector<int64_t> frame_steps(int64_t from, int64_t stop, int step) {
  std::vector<int64_t> out;
  for (int64_t t = from; step > 0 ? t < stop : t > stop; t += step) out.push_back(t);
  return out;
}

// The segments of a run over `n` frames with sorted anchors: backward from the first anchor to
// frame 0, then forward from each anchor up to the next one (the last: to the end).
struct Segment {
  size_t anchor;                  // index into the anchors
  std::vector<int64_t> frames;    // in propagation order
};
std::vector<Segment> run_segments(const std::vector<Anchor>& anchors, int64_t n) {
  std::vector<Segment> out{{0, frame_steps(anchors.front().frame - 1, -1, -1)}};
  for (size_t i = 0; i < anchors.size(); ++i) {
    const int64_t end = i + 1 < anchors.size() ? anchors[i + 1].frame : n;
    out.push_back({i, frame_steps(anchors[i].frame + 1, end, 1)});
  }
  return out;
}

// Every frame a run reads, in the order it reads them: the first anchor, the backward segment,
// then each later anchor followed by its forward segment (the first anchor's follows it directly).
std::vector<int64_t> run_read_order(const std::vector<Anchor>& anchors, const std::vector<Segment>& segments) {
  std::vector<int64_t> order{anchors.front().frame};
  for (size_t s = 0; s < segments.size(); ++s) {
    if (s >= 2) order.push_back(anchors[segments[s].anchor].frame);
    order.insert(order.end(), segments[s].frames.begin(), segments[s].frames.end());
  }
  return order;
}

}  // namespace

// State of one run: the source, where masks go, the label grid and the mode's memory.
class PropagationRun {
 public:
  PropagationRun(FeatureExtractor& features, const PropagationConfig& config, FrameSource& source, const MaskSink& sink,
                 const SoftSink& soft, const ProgressCallback& progress, const CancelCallback& cancel)
      : m_features(features), m_config(config), m_source(source), m_sink(sink), m_soft(soft), m_cancel(cancel),
        m_meter(source.size(), "frames", progress),
        m_memory(propagation_memory_create(config, &m_result.stages, products_dtype(features))),
        m_feedback(label_feedback_effective(config)) {}

  void start(const Image& first, int64_t labels) {
    m_grid.set_frame(first.width, first.height, m_config.scale);
    m_grid.stride = m_features.stride();
    m_grid.area = m_config.area_labels;
    m_labels = labels;
  }

  // From here on, frames of `order` (after the first, already read) are decoded ahead and the
  // sinks run behind, on threads of their own.
  void pipeline(std::vector<int64_t> order) {
    order.erase(order.begin());
    m_ahead = std::make_unique<FrameReadAhead>(m_source, std::move(order), 4);
    m_writer = std::make_unique<SerialWorker>(8);
  }
  // Waits for the sinks to finish (rethrows their error).
  void finish() {
    StageScope s(&m_result.stages, "write");
    if (m_writer) m_writer->finish();
  }

  // Propagates from `anchor` over `frames` (in the given order), emitting each mask.
  void segment(const Anchor& anchor, const Image& anchor_frame, const std::vector<int64_t>& frames) {
    if (frames.empty()) return;
    auto f = features_of(anchor_frame);
    m_memory->reset(f, m_grid.labels_from_mask(anchor.mask, m_labels, f.device()));
    for (int64_t t : frames) {
      if (cancelled()) return;
      const Image frame = read(t);
      if (frame.width != m_grid.W || frame.height != m_grid.H) {
        throw Error("frame " + std::to_string(t) + " of '" + m_source.path() + "' changes size");
      }
      auto q = features_of(frame);
      auto labels = m_memory->predict(q);
      Image mask;
      std::vector<Image> soft;
      {
        StageScope s(&m_result.stages, "labels");
        const auto up = refined(m_grid.frame_labels(labels), frame);   // once for the mask and the soft masks
        mask = m_grid.mask_from_frame_labels(up);
        if (m_soft) soft = m_grid.probabilities_from_frame_labels(up);
      }
      if (m_soft) deliver([this, t, soft = std::move(soft)] { m_soft(t, soft); });
      emit(t, mask, frame);
      m_memory->remember(q, m_feedback == LabelFeedback::Hard ? one_hot_argmax(labels)
                                                              : labels_sharpened(labels, m_config.feedback_power));
    }
  }

  void emit_anchor(const Anchor& a, const Image& frame) {
    const Image mask = without_void(a.mask);
    if (m_soft) {
      std::vector<Image> soft;
      for (int64_t l = 1; l < m_labels; ++l) {
        Image m(mask.width, mask.height, 1, 0);
        for (size_t i = 0; i < m.data.size(); ++i) m.data[i] = mask.data[i] == l ? 255 : 0;
        soft.push_back(std::move(m));
      }
      deliver([this, t = a.frame, soft = std::move(soft)] { m_soft(t, soft); });
    }
    emit(a.frame, mask, frame);
  }

  Image read(int64_t k) {
    StageScope s(&m_result.stages, "decode");
    return m_ahead ? m_ahead->frame(k) : m_source.frame(k);
  }
  bool cancelled() {
    if (m_cancel && m_cancel()) m_result.cancelled = true;
    return m_result.cancelled;
  }
  PropagationResult& result() { return m_result; }

 private:
  torch::Tensor features_of(const Image& frame) {
    StageScope s(&m_result.stages, "features");
    const Image in = m_grid.internal(frame);
    auto f = m_config.flip ? features_flip_averaged(m_features, in) : m_features.extract(in);
    m_grid.h = f.size(1);
    m_grid.w = f.size(2);
    return f;
  }
  // Frame-size labels after the configured edge refinement (unchanged when it is off). The
  // filter's values may leave [0, 1] near edges: negative ones become 0 and each pixel's labels
  // are renormalised to sum to 1 (the argmax is unchanged; soft masks stay probabilities).
  torch::Tensor refined(const torch::Tensor& up, const Image& frame) const {
    if (m_config.refine_radius <= 0) return up;
    const GuidedFilterParams gf{m_config.refine_radius, m_config.refine_eps, std::max(1, m_config.refine_radius / 2)};
    auto q = guided_filter(image_to_tensor(frame).to(up.device()), up, gf).clamp_min_(0);
    return q.div_(q.sum(0, true).clamp_min_(1e-6));
  }
  void emit(int64_t k, const Image& mask, const Image& rgb) {
    StageScope s(&m_result.stages, "write");
    if (m_writer) m_writer->post([this, k, mask, rgb] { m_sink(k, mask, rgb); });
    else m_sink(k, mask, rgb);
    ++m_result.frames;
    m_meter.step();
  }
  // Runs a sink call now, or posts it to the writing thread (the call owns what it reads).
  void deliver(std::function<void()> call) {
    if (m_writer) m_writer->post(std::move(call));
    else call();
  }

  FeatureExtractor& m_features;
  const PropagationConfig& m_config;
  FrameSource& m_source;
  const MaskSink& m_sink;
  const SoftSink& m_soft;
  const CancelCallback& m_cancel;
  PropagationResult m_result;
  ProgressMeter m_meter;
  LabelGrid m_grid;
  int64_t m_labels = 0;
  std::unique_ptr<PropagationMemory> m_memory;
  LabelFeedback m_feedback;
  // Pipelined runs: declared last so that they stop first (the writer's tasks use the members above).
  std::unique_ptr<FrameReadAhead> m_ahead;
  std::unique_ptr<SerialWorker> m_writer;
};

}  // namespace detail

LabelPropagator::LabelPropagator(FeatureExtractor& features, PropagationConfig config)
    : m_features(features), m_config(config) {
  propagation_config_validate(m_config);
}

PropagationResult LabelPropagator::run(FrameSource& source, std::vector<Anchor> anchors, const MaskSink& sink,
                                       const ProgressCallback& progress, const CancelCallback& cancel) {
  torch::NoGradGuard ng;
  const double t0 = time_now_s();
  const int64_t L = detail::anchors_check(anchors, source);
  const Image first = source.frame(anchors.front().frame);
  detail::anchor_sizes_check(anchors, first);
  detail::PropagationRun run(m_features, m_config, source, sink, m_soft, progress, cancel);
  run.start(first, L);
  const auto segments = detail::run_segments(anchors, source.size());
  if (m_pipelined) run.pipeline(detail::run_read_order(anchors, segments));
  // Backward from the first anchor to frame 0, then forward from each anchor to the next.
  run.segment(anchors.front(), first, segments.front().frames);
  for (size_t s = 1; s < segments.size() && !run.result().cancelled; ++s) {
    const Anchor& a = anchors[segments[s].anchor];
    const Image frame = s == 1 ? first : run.read(a.frame);
    run.emit_anchor(a, frame);
    run.segment(a, frame, segments[s].frames);
  }
  run.finish();
  run.result().seconds = time_now_s() - t0;
  return run.result();
}

}  // namespace corrtrack
