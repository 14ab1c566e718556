// Edge-aware refinement of soft labels with the frame as guide: the guided filter of He, Sun and
// Tang (ECCV 2010, colour guide) in its fast, subsampled form (He and Sun, 2015).
//
// The labels leave the feature grid blurred over about a cell (8 frame pixels at the default
// model's settings); the filter moves their edges onto the frame's colour edges. In every window
// w_k of (2r+1)^2 pixels the refined label is an affine function of the guide's colour I (3-vector):
//   q_i = a_k . I_i + b_k,   a_k = (Sigma_k + eps U)^-1 cov_k(I, p),   b_k = mean_k(p) - a_k . mean_k(I)
// (Sigma_k: the 3x3 colour covariance in w_k, U the identity), and q_i is the mean of those
// functions over the windows that hold pixel i. Windows are clipped at the borders (means over
// the pixels inside). The fast form computes a and b on the guide and labels area-shrunk by
// `subsample` (radius r / subsample), brings the means of a and b back bilinearly and applies
// them to the full-size guide.
//
// Properties (tested): a constant label stays that constant (a = 0, b = p), so labels that sum
// to 1 at a pixel still sum to 1 (the filter is linear in p); a label equal to an affine
// function of the guide's colour comes back nearly unchanged (up to eps); eps -> infinity gives
// the box mean of p.
#pragma once

#include <torch/torch.h>

namespace corrtrack::detail {

struct GuidedFilterParams {
  int radius = 8;        // window radius r in full-size pixels
  double eps = 1e-3;     // regularisation of the colour covariance (colours in [0, 1])
  int subsample = 4;     // the statistics' resolution: 1/subsample of the full size (1 = exact)
};

// Mean of x [..., h, w] over the (2r+1)^2 window around every position, clipped at the borders
// (each mean over the positions inside). Computed from running sums: O(1) per position.
torch::Tensor box_mean(const torch::Tensor& x, int64_t r);

// Refined labels [L, H, W] (float32, on p's device) from labels p [L, H, W] and the guide [3, H, W]
// (RGB in [0, 1], same device). Values may leave [0, 1] slightly near edges.
torch::Tensor guided_filter(const torch::Tensor& guide, const torch::Tensor& p, const GuidedFilterParams& params);

}  // namespace corrtrack::detail
