// Label propagation: the engine that carries annotated masks through a video by feature
// affinity, and its two modes (docs/protocols.md says what each computes).
//
// Usage:
//   auto features = feature_extractor_open(ModelSpec{});          // the bundled model
//   PropagationConfig cfg = propagation_config_resolve(...);       // or PropagationConfig{}
//   LabelPropagator engine(*features, cfg);
//   engine.run(source, {Anchor{0, mask}}, [](int64_t k, const Image& mask, const Image& rgb) { ... });
#pragma once

#include "corrtrack/core.h"
#include "corrtrack/video.h"

#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace corrtrack {

class FeatureExtractor;

// Which references serve frame t, and how their labels are combined.
enum class PropagationMode {
  Crw,   // the anchor and `context` recent frames; top-k affinities over all of them (CRW's protocol)
  Mast,  // MAST's memory: long-term {0, 5} and short-term {t-1, t-3, t-5}, square windows, ROI for
         // far ones; top-k over all windows (or MAST's full softmax), argmax labels fed back
};
// "crw" | "mast" <-> the mode; parse throws SettingError("mode", "must be crw or mast, got 'x'").
PropagationMode propagation_mode_parse(const std::string& name);
std::string propagation_mode_name(PropagationMode mode);

// What a predicted frame leaves in memory for the frames after it.
enum class LabelFeedback {
  Auto,  // the mode's protocol: soft in crw mode, hard in mast mode
  Soft,  // the soft labels as predicted (CRW's protocol), sharpened by feedback_power when it is not 1
  Hard,  // one-hot of their argmax per cell (MAST's code feeds back its argmax masks)
};
// "auto" | "soft" | "hard" <-> the feedback; parse throws SettingError("feedback", "must be auto,
// soft or hard, got 'x'").
LabelFeedback label_feedback_parse(const std::string& name);
std::string label_feedback_name(LabelFeedback feedback);

// Defaults are CRW's protocol.
struct PropagationConfig {
  PropagationMode mode = PropagationMode::Crw;
  int context = 20;            // crw: recent frames in the context, besides the anchor
  int topk = 10;               // affinities kept per query pixel over every reference (mast: 0 =
                               // all keys of all windows, MAST's full softmax)
  double radius = 12.0;        // feature cells; crw: keys of recent frames at distance < radius;
                               // mast: the (2*radius+1)^2 square window of every reference
  double temperature = 0.05;   // softmax temperature on the affinities
  bool local_window = true;    // crw: false computes the dense all-pairs affinity, then masks it (for comparison)
  int tile = 8;                // query tile side of the local-window computation
  double scale = 1.0;          // internal resolution: frames are resized by this before features
  int roi_gap = 15;            // mast: references more than this many frames away are localised first (ROI)
  std::vector<int> long_term{0, 5};      // mast: long-term references, positions in the segment (0 = anchor)
  std::vector<int> short_term{1, 3, 5};  // mast: short-term references, frames back from the predicted one
  LabelFeedback feedback = LabelFeedback::Auto;
  // Soft feedback sharpened before it is remembered: each cell's labels l_i become
  // l_i^p / sum_j l_j^p (p = feedback_power, in (0, 16]). 1 keeps the soft labels as predicted
  // (CRW's protocol); larger p moves them toward hard feedback's one-hot argmax, so a cell the
  // prediction was unsure of passes on less of its doubt. Ignored with hard feedback. The default
  // model recommends 1.5 (README: Sharpened feedback).
  double feedback_power = 1.0;
  // How an anchor's one-hot mask reaches the feature grid: false - bilinear (each cell takes the
  // mean of the 2x2 pixels at its centre, CRW's and MAST's code); true - area (each cell takes the
  // share of each object among all its pixels, so an object thinner than a cell still counts).
  bool area_labels = false;
  // Edge refinement of each predicted frame's labels at frame size, before the argmax: a guided
  // filter with the frame's colours as guide (tracking/src/guided_filter.h) moves the labels'
  // edges, blurred over a feature cell, onto the frame's edges. Window radius in frame pixels
  // (0 = off) and the filter's eps (colours in [0, 1]). The memory keeps the unrefined labels.
  int refine_radius = 0;
  double refine_eps = 1e-3;
  // Test-time flip averaging of every frame's features (features_flip_averaged in tracking.h):
  // 1.4x the propagation time with the default model (README: Edge refinement).
  bool flip = false;
};
// Soft or Hard: what `config.feedback` means in `config.mode`.
LabelFeedback label_feedback_effective(const PropagationConfig& config);
// Throws Error naming the setting ("top-k must be >= 1") when a value is out of range.
void propagation_config_validate(const PropagationConfig& config);

// An annotated frame: its index and its object-index mask (0 background, 1..N, 255 void).
struct Anchor {
  int64_t frame = 0;
  Image mask;
};

// Receives each predicted mask, with the RGB frame it belongs to, as soon as it exists
// (frames arrive segment by segment: backward before the first anchor, then forward).
using MaskSink = std::function<void(int64_t frame, const Image& mask, const Image& rgb)>;

// Optionally receives, just before a frame's mask, each object's probability at every pixel of
// the frame: objects[i] (object i + 1) is an 8-bit image, round(255 × p). p is the soft label the
// mask's argmax is taken from (bilinearly brought to frame size, then edge-refined when
// `refine_radius` is set; the background's share is the rest, so the values of a pixel sum to at
// most 255 + rounding). Anchors give 255 inside the object and 0 elsewhere.
using SoftSink = std::function<void(int64_t frame, const std::vector<Image>& objects)>;

struct PropagationResult {
  int64_t frames = 0;          // masks delivered (anchors included)
  bool cancelled = false;
  double seconds = 0.0;
  StageTimer stages;           // decode, features, affinity, labels, write (the sink's time)
};

// Propagates the anchors' masks to every frame of `source`: backward from the first anchor to
// frame 0, forward from each anchor up to the next one, and forward from the last to the end.
// The engine walks segments and frames; the mode's memory decides which references serve frame
// t. Memory holds the references only, never the whole video.
class LabelPropagator {
 public:
  LabelPropagator(FeatureExtractor& features, PropagationConfig config);  // validates config
  PropagationResult run(FrameSource& source, std::vector<Anchor> anchors, const MaskSink& sink,
                        const ProgressCallback& progress = nullptr, const CancelCallback& cancel = nullptr);
  const PropagationConfig& config() const { return m_config; }
  // Soft masks of the next runs (none when empty): costs one more resize of the labels per frame.
  void set_soft_sink(SoftSink sink) { m_soft = std::move(sink); }
  // Pipelined runs decode frames ahead and call the sinks behind, each on a thread of its own, so
  // that the compute never waits for either (the same masks, in the same order). The source must
  // then not be read by anything else during run(); the sinks are called from the writing thread
  // (one call at a time), and run() returns after the last of them. The stages "decode" and
  // "write" then hold the time the compute waited for them.
  void set_pipelined(bool pipelined) { m_pipelined = pipelined; }

 private:
  FeatureExtractor& m_features;
  PropagationConfig m_config;
  SoftSink m_soft;
  bool m_pipelined = false;
};

// The affinity step on its own, for tests and benchmarks: for each query pixel of `query`
// ([C, h, w]), the top-k dot products over `key` ([C, h, w]) restricted to distance < radius
// (radius <= 0: no restriction), as values [h*w, k] and key indices [h*w, k] (-inf / any
// index where fewer than k keys exist).
std::pair<torch::Tensor, torch::Tensor> affinity_topk(const torch::Tensor& query, const torch::Tensor& key, int k,
                                                      double radius, bool local_window, int tile = 8);

}  // namespace corrtrack
