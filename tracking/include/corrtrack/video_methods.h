// Self-supervised video correspondence methods trained on clips of a ClipStore (a cache or
// streamed videos, read through the ClipLoader): MAST (Lab channel reconstruction by copying),
// Correspondence Flow (quantised-colour copying, recursive, with a cycle term), the contrastive
// random walk (CRW) and TimeCycle (cycle-consistency of time).
#pragma once

#include "corrtrack/clip_loader.h"
#include "corrtrack/core.h"
#include "corrtrack/train.h"
#include "corrtrack/video.h"

#include <memory>
#include <string>
#include <vector>

namespace corrtrack {

struct VideoMethodConfig {
  std::string method = "mast";   // mast | corrflow | crw | timecycle
  int batch = 12;
  ClipSamplerConfig sampler;
  ClipLoaderConfig loader;       // clips read by worker threads ahead of the step (0: in the step)
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
std::unique_ptr<TrainableMethod> video_method_create(const VideoMethodConfig& cfg, std::shared_ptr<const ClipStore> clips);
// Names of the video methods this build can train.
std::vector<std::string> video_method_names();

}  // namespace corrtrack
