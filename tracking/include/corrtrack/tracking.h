// CorrTrack tracking: feature extractors, the label propagation engine and DAVIS J&F.
#pragma once

#include "corrtrack/core.h"
#include "corrtrack/video.h"

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace corrtrack {

// ---------------------------------------------------------------------------------------------
// Feature extractors
// ---------------------------------------------------------------------------------------------

// Input convention of the RGB encoders (random baseline, CRW, TimeCycle): ImageNet mean and std.
extern const std::vector<double> kImageNetMean;
extern const std::vector<double> kImageNetStd;

// Turns an RGB frame into an L2-normalised feature map [C, ceil(H/stride), ceil(W/stride)].
class FeatureExtractor {
 public:
  virtual ~FeatureExtractor() = default;
  virtual torch::Tensor extract(const Image& frame) = 0;
  virtual int stride() const = 0;
  virtual std::string name() const = 0;
};

// "pixels": parameter-free Lab baseline; "random": randomly initialised stride-8 ResNet-18
// (res3, seed fixed). Throws Error for another name.
std::unique_ptr<FeatureExtractor> feature_extractor_create(const std::string& kind, uint64_t seed = 0,
                                                           torch::Device device = torch::kCPU);
// A ResNet encoder from a checkpoint written by checkpoint_save (its metadata says how to
// compute features). Throws Error naming the file when it cannot be read.
std::unique_ptr<FeatureExtractor> feature_extractor_load(const std::string& checkpoint,
                                                         torch::Device device = torch::kCPU);
// Writes the encoder of a training checkpoint alone (no optimiser state, no method heads), with
// float16 weights when `half` (loaded back as float32), for bundling and sharing. A non-empty
// `propagation_json` (e.g. {"scale":0.5}) is stored as the engine settings the model recommends.
void feature_encoder_export(const std::string& checkpoint, const std::string& out, bool half,
                            const std::string& propagation_json = "");
// Writes the random baseline encoder as a checkpoint (for tests and as a format example).
void feature_extractor_save_random(const std::string& path, uint64_t seed);

// ---------------------------------------------------------------------------------------------
// Label propagation
// ---------------------------------------------------------------------------------------------

// Defaults are CRW's protocol (see PROTOCOLS.md).
struct PropagationConfig {
  int context = 20;            // recent frames in the context, besides the anchor
  int topk = 10;               // affinities kept per query pixel over the whole context
  double radius = 12.0;        // feature cells; keys of recent frames at distance < radius
  double temperature = 0.05;   // softmax temperature on the top-k dot products
  bool local_window = true;    // false: dense all-pairs affinity then masked (for comparison)
  int tile = 8;                // query tile side for the local-window computation
  double scale = 1.0;          // internal resolution: frames are resized by this before features
  // "crw": the protocol above. "mast": MAST's memory - long-term references {0, 5} of the segment
  // and short-term {t-1, t-3, t-5}, a (2*radius+1)^2 square window in each, ROI localisation for
  // references more than roi_gap frames away, one joint softmax (temperature applies, no top-k).
  std::string mode = "crw";
  int roi_gap = 15;
};

// An annotated frame: its index and its object-index mask (0 background, 1..N, 255 void).
struct Anchor {
  int64_t frame = 0;
  Image mask;
};

// Receives each predicted mask, with the RGB frame it belongs to, as soon as it exists
// (frames arrive segment by segment: backward before the first anchor, then forward).
using MaskSink = std::function<void(int64_t frame, const Image& mask, const Image& rgb)>;

struct PropagationResult {
  int64_t frames = 0;          // masks delivered (anchors included)
  bool cancelled = false;
  double seconds = 0.0;
  StageTimer stages;           // decode, features, affinity, labels, write (write is timed by the sink's caller)
};

// Propagates the anchors' masks to every frame of `source`: backward from the first anchor to
// frame 0, forward from each anchor up to the next one, and forward from the last to the end.
// Memory holds features of the context only, never of the whole video.
class LabelPropagator {
 public:
  LabelPropagator(FeatureExtractor& features, PropagationConfig config);
  PropagationResult run(FrameSource& source, std::vector<Anchor> anchors, const MaskSink& sink,
                        const ProgressCallback& progress = nullptr, const CancelCallback& cancel = nullptr);
  const PropagationConfig& config() const { return m_config; }

 private:
  FeatureExtractor& m_features;
  PropagationConfig m_config;
};

// The affinity step on its own, for tests and benchmarks: for each query pixel of `query`
// ([C, h, w]), the top-k dot products over `key` ([C, h, w]) restricted to distance < radius
// (radius <= 0: no restriction), as values [h*w, k] and key indices [h*w, k] (-inf / any
// index where fewer than k keys exist).
std::pair<torch::Tensor, torch::Tensor> affinity_topk(const torch::Tensor& query, const torch::Tensor& key, int k,
                                                      double radius, bool local_window, int tile = 8);

// ---------------------------------------------------------------------------------------------
// DAVIS J&F (semi-supervised protocol of the official davis2017-evaluation code)
// ---------------------------------------------------------------------------------------------

// Region similarity of two binary masks (non-zero = object); 1 when both are empty.
double davis_jaccard(const Image& pred, const Image& gt);
// Boundary F-measure with tolerance ceil(0.008 * diagonal) pixels (or `bound_px` when > 0).
double davis_boundary_f(const Image& pred, const Image& gt, double bound_th = 0.008);

// Mean, recall (> 0.5) and decay (4 bins) of per-frame values, as db_statistics computes them.
struct DavisStatistics {
  double mean = 0.0, recall = 0.0, decay = 0.0;
};
DavisStatistics davis_statistics(const std::vector<double>& values);

struct DavisSequenceScore {
  std::string name;
  int num_objects = 0;
  std::vector<std::vector<double>> J, F;   // [object][scored frame], frames 1..n-2
};

struct DavisEvaluation {
  std::vector<DavisSequenceScore> sequences;
  // Global figures (fractions): J&F-Mean, J-Mean, J-Recall, J-Decay, F-Mean, F-Recall, F-Decay.
  std::vector<std::pair<std::string, double>> global;
  // "<seq>_<object>" -> (J-Mean, F-Mean), in sequence order.
  std::vector<std::pair<std::string, std::pair<double, double>>> per_object;
  double global_value(const std::string& key) const;
};

// Folder of a DAVIS-layout set's per-sequence frames or annotations: ROOT/<kind>/<seq> or the
// official ROOT/<kind>/480p/<seq>. Throws Error naming what is missing.
std::string davis_sequence_dir(const std::string& root, const std::string& kind, const std::string& seq);
// Sequences of a DAVIS-layout set: ImageSets.txt, else ImageSets/2017/val.txt, else every folder.
std::vector<std::string> davis_sequences(const std::string& root);

// Scores `results/<seq>/<frame>.png` against `root/Annotations/<seq>`.
DavisEvaluation davis_evaluate(const std::string& root, const std::string& results,
                               const std::vector<std::string>& sequences, const ProgressCallback& progress = nullptr);
// Writes global_results.csv and per-sequence_results.csv (official columns) into `dir`.
void davis_write_csv(const DavisEvaluation& ev, const std::string& dir);

}  // namespace corrtrack
