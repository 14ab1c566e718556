// Self-supervised video correspondence methods trained on a clip cache: MAST (Lab channel
// reconstruction by copying), Correspondence Flow (quantised-colour copying, recursive, with a
// cycle term), the contrastive random walk (CRW) and TimeCycle (cycle-consistency of time), plus
// the clip sampler they share.
#pragma once

#include "corrtrack/core.h"
#include "corrtrack/train.h"
#include "corrtrack/video.h"

#include <memory>
#include <string>
#include <vector>

namespace corrtrack {

struct ClipSamplerConfig {
  int crop = 256;            // output side (square crops)
  double min_scale = 0.4;    // random resized crop: area fraction in [min_scale, 1]
  bool flip = true;          // horizontal flip, the same for every frame of a clip
  double jitter = 0.1;       // brightness/contrast/saturation jitter strength, per clip
};

// Draws clips from a cache: a video (weighted by how many clips it holds), a start frame, frames
// at the given offsets, one crop box / flip / jitter for the whole clip.
class ClipSampler {
 public:
  ClipSampler(std::shared_ptr<const ClipCache> cache, ClipSamplerConfig cfg);
  // [T, 3, crop, crop] float RGB in [0, 1] on `device`; offsets ascending, offsets[0] == 0.
  // Throws Error when no video of the cache is long enough.
  torch::Tensor sample(const std::vector<int>& offsets, torch::Generator& gen, torch::Device device = torch::kCPU) const;
  const ClipCache& cache() const { return *m_cache; }
  const ClipSamplerConfig& config() const { return m_cfg; }
 private:
  std::shared_ptr<const ClipCache> m_cache;
  ClipSamplerConfig m_cfg;
};

struct VideoMethodConfig {
  std::string method = "mast";   // mast | corrflow | crw | timecycle
  int batch = 12;
  ClipSamplerConfig sampler;
  uint64_t seed = 0;             // encoder initialisation (and CorrFlow's colour k-means)
  int64_t total_steps = 1;       // for schedules inside the method (CorrFlow's scheduled sampling)
  // CRW and TimeCycle (0 = the method's default).
  int clip_frames = 0;           // frames per clip (default 4)
  int frame_gap = 0;             // frames between consecutive clip frames (crw 3 ~ 8 fps of 24; timecycle 2)
  double temperature = 0.0;      // crw: transition temperature (default 0.05)
  double edge_dropout = 0.1;     // crw: probability of dropping an edge of a transition
  std::string nodes = "patch";   // crw: patch (64x64 patches at stride 32) | dense (every stride-8 cell)
  int backbone_depth = 50;       // timecycle: ResNet depth, 50 as published or 18 for CPU budgets
  int patch = 80;                // timecycle: side of the tracked patch in pixels (multiple of 8)
  // timecycle: loss = align·(long-cycle alignment) + inlier·(1 − inlier mass) + skip·(skip-cycle alignment).
  double align_weight = 0.02, inlier_weight = 1.0, skip_weight = 0.1;
};

// Input convention of the stride-4 trackers: Lab, mean [50, 0, 0], std [50, 127, 127].
extern const std::vector<double> kLabMean;
extern const std::vector<double> kLabStd;

// TimeCycle's differentiable localiser, without its learned correction. patch [B, C, h, w] and
// frame [B, C, H, W] are L2-normalised over C. affinity [B, h*w, H*W] = softmax over frame cells of
// patch·frame · logit_scale (1/T, T = 1/sqrt(C) in TimeCycle); expected [B, h*w, 2] = each patch
// cell's expected frame position (x, y) in normalised coordinates (cell centres, as affine_grid
// with align_corners=false); theta [B, 2, 3] = the least-squares affine map from patch to frame
// coordinates of those positions (affine_grid's convention, so grid_sample(frame, affine_grid(theta))
// reads the localised patch).
struct AffineLocalization {
  torch::Tensor theta, affinity, expected;
};
AffineLocalization affine_localize(const torch::Tensor& patch, const torch::Tensor& frame, double logit_scale);

// A video method as a TrainableMethod for train_run. Throws Error for another method name.
std::unique_ptr<TrainableMethod> video_method_create(const VideoMethodConfig& cfg, std::shared_ptr<const ClipCache> cache);
// Names of the video methods this build can train.
std::vector<std::string> video_method_names();

}  // namespace corrtrack
