// CorrTrack tracking (inference): feature extractors, the label propagation engine
// (propagation.h), where its settings come from (propagation_settings.h), benchmarks
// (tracking_bench.h) and DAVIS J&F. Depends on the base and video modules only.
#pragma once

#include "corrtrack/checkpoint_info.h"
#include "corrtrack/core.h"
#include "corrtrack/propagation.h"
#include "corrtrack/propagation_settings.h"
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
  // L2-normalised features [C, h, w] of an RGB frame, on device().
  virtual torch::Tensor extract(const Image& frame) = 0;
  // Where extract computes and leaves its features (the propagation runs there too).
  virtual torch::Device device() const = 0;
  virtual int stride() const = 0;
  virtual std::string name() const = 0;
  // The encoder's arithmetic (never Auto).
  virtual Precision precision() const { return Precision::Float32; }
};

// Test-time flip averaging (PropagationConfig::flip): the features of `frame` plus, mirrored
// back, the features of its left-right mirror image, L2-normalised again; twice the encoder's
// time. Exactly mirror-equivariant when the frame's width is a multiple of the stride (otherwise
// the mirrored cells are offset by the padding, less than a cell).
torch::Tensor features_flip_averaged(FeatureExtractor& features, const Image& frame);

// "pixels": parameter-free Lab baseline; "random": randomly initialised stride-8 ResNet-18
// (res3, seed fixed). Throws Error for another name.
std::unique_ptr<FeatureExtractor> feature_extractor_create(const std::string& kind, uint64_t seed = 0,
                                                           torch::Device device = torch::kCPU,
                                                           Precision precision = Precision::Float32);
// A ResNet encoder from a checkpoint written by checkpoint_save (its metadata says how to
// compute features). Throws Error naming the file when it cannot be read.
std::unique_ptr<FeatureExtractor> feature_extractor_load(const std::string& checkpoint,
                                                         torch::Device device = torch::kCPU,
                                                         Precision precision = Precision::Float32);
// Writes the encoder of a training checkpoint alone (no optimiser state, no method heads), with
// float16 weights when `half` (loaded back as float32), for bundling and sharing. Non-empty
// `hints` (e.g. scale 0.5) are stored as the engine settings the model recommends.
void feature_encoder_export(const std::string& checkpoint, const std::string& out, bool half,
                            const PropagationHints& hints = {});
// Writes the random baseline encoder as a checkpoint (for tests and as a format example).
void feature_extractor_save_random(const std::string& path, uint64_t seed);

// ---------------------------------------------------------------------------------------------
// DAVIS J&F (semi-supervised protocol of the official davis2017-evaluation code)
// ---------------------------------------------------------------------------------------------

// Region similarity of two binary masks (non-zero = object); 1 when both are empty.
double davis_jaccard(const Image& pred, const Image& gt);
// Boundary F-measure with tolerance ceil(bound_th * diagonal) pixels (bound_th >= 1: that many pixels).
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
