// Augmentations on float tensors [..., C, H, W] in [0, 1], driven by an explicit generator so that
// a resumed run draws the same views.
#pragma once

#include "corrtrack/core.h"

namespace corrtrack {

struct CropBox {
  int x = 0, y = 0, width = 0, height = 0;
};
// A random box covering a fraction in [min_scale, max_scale] of the area with aspect ratio in
// [min_ratio, max_ratio] (clamped to the image), as RandomResizedCrop draws it.
CropBox crop_box_random(int width, int height, double min_scale, double max_scale, double min_ratio,
                        double max_ratio, torch::Generator& gen);
// Crops `box` from x [..., C, H, W] and resizes it bilinearly to out_h x out_w.
torch::Tensor crop_resize(const torch::Tensor& x, const CropBox& box, int out_h, int out_w);
// Brightness, contrast and saturation factors drawn from [1 - s, 1 + s] each, applied to x.
torch::Tensor colour_jitter(const torch::Tensor& x, double strength, torch::Generator& gen);
// Uniform draw in [lo, hi) from the generator.
double random_uniform(torch::Generator& gen, double lo = 0.0, double hi = 1.0);
int64_t random_int(torch::Generator& gen, int64_t n);   // 0..n-1

}  // namespace corrtrack
