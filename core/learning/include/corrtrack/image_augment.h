// Augmentation of image batches for the image methods, and the plain standardised view.
#pragma once

#include "corrtrack/core.h"

#include <vector>

namespace corrtrack {

// Batched augmentation of uint8 images [B, C, H, W] to float views [B, C, size, size] normalised
// by mean/std: random resized crop (area in [min_scale, 1], aspect in [1/aspect, aspect]) and horizontal flip
// as one affine grid sample, brightness/contrast jitter, grayscale (RGB, p 0.2) and 3x3 blur (p 0.5).
struct AugmentConfig {
  int size = 28;
  double min_scale = 0.3;
  double aspect = 4.0 / 3.0;   // aspect ratio drawn log-uniformly in [1/aspect, aspect]
  double jitter = 0.4;
  bool blur = true;
  bool flip = true;            // horizontal flip with probability 0.5
};
torch::Tensor augment_batch(const torch::Tensor& images, const AugmentConfig& cfg, const std::vector<double>& mean,
                            const std::vector<double>& stdv, torch::Generator& gen);
// Plain view for evaluation: uint8 -> float, normalised.
torch::Tensor normalise_images(const torch::Tensor& images, const std::vector<double>& mean, const std::vector<double>& stdv);
// Per-channel mean and standard deviation of uint8 images [N, C, H, W] scaled to [0, 1].
void image_channel_stats(const torch::Tensor& images, std::vector<double>& mean, std::vector<double>& stdv);
}  // namespace corrtrack
