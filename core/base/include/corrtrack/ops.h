// Tensor operations shared by inference (propagation) and training: local-window attention
// (CorrFlow/MAST's restricted attention, MAST's ROI localisation), L2 normalisation and
// per-channel standardisation.
//
// Usage: scores = local_window_scores(q, k, r, 1 / T); w = softmax(scores, 1);
//        out = local_window_gather(w, v, r);   // what local_window_attention(q, k, v, r, 1 / T) does
#pragma once

#include "corrtrack/core.h"

#include <vector>

namespace corrtrack {

// Scores of every query cell against the (2r+1)^2 key cells around the same position:
// q, k [B, C, H, W] -> [B, (2r+1)^2, H, W], offsets in row-major order (dy outer, dx inner),
// scaled by `scale`; keys outside the frame get -inf. Memory O(B (2r+1)^2 H W), never O(C (2r+1)^2 H W).
// With dilation d the offsets are d * (dy, dx) (MAST's ROI localisation).
torch::Tensor local_window_scores(const torch::Tensor& q, const torch::Tensor& k, int radius, double scale = 1.0,
                                  int dilation = 1);
// Weighted sum of values over the same windows: w [B, (2r+1)^2, H, W], v [B, D, H, W] -> [B, D, H, W].
torch::Tensor local_window_gather(const torch::Tensor& w, const torch::Tensor& v, int radius, int dilation = 1);
// softmax over each window of scale * q.k, then the weighted sum of v.
torch::Tensor local_window_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                     int radius, double scale = 1.0);

// x / max(|x|_2, 1e-12) along `dim` (the one L2 normalisation of features, embeddings and nodes).
torch::Tensor l2_normalise(const torch::Tensor& x, int64_t dim);

// (x - mean[c]) / std[c] for every channel c of x [..., C, H, W] (one value per channel; throws
// Error otherwise). The input convention of every encoder (ImageNet RGB, Lab, image sets).
torch::Tensor standardise_channels(const torch::Tensor& x, const std::vector<double>& mean, const std::vector<double>& stdv);

}  // namespace corrtrack
