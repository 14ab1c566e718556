// Self-supervised video correspondence methods trained on a clip cache: MAST (Lab channel
// reconstruction by copying) and Correspondence Flow (quantised-colour copying, recursive, with a
// cycle term), plus the clip sampler they share.
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
  std::string method = "mast";   // mast | corrflow
  int batch = 12;
  ClipSamplerConfig sampler;
  uint64_t seed = 0;             // encoder initialisation (and CorrFlow's colour k-means)
  int64_t total_steps = 1;       // for schedules inside the method (CorrFlow's scheduled sampling)
};

// Input convention of the stride-4 trackers: Lab, mean [50, 0, 0], std [50, 127, 127].
extern const std::vector<double> kLabMean;
extern const std::vector<double> kLabStd;

// MAST or CorrFlow as a TrainableMethod for train_run. Throws Error for another method name.
std::unique_ptr<TrainableMethod> video_method_create(const VideoMethodConfig& cfg, std::shared_ptr<const ClipCache> cache);
// Names of the video methods this build can train.
std::vector<std::string> video_method_names();

}  // namespace corrtrack
