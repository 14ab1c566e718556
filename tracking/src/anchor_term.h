// The anchor term of the test-time adaptation (adaptation.h): the annotated frames teach the
// encoder their own objects. Each step draws one anchor frame and warps the encoder's input of it
// (a random scale in [0.8, 1.2], a shift of up to 7.5 % of each side, a mirror with probability
// 1/2; what comes from outside the frame is the input's mean colour — a black border, which the
// anchor frame does not have, cost 2.1 J&F on DAVIS-2016 val-dev, see the README) and scales the copy's
// contrast (the standardised lightness of Lab models, every channel of RGB ones) by a random gain
// in [0.9, 1.1]; the anchor's labels are then propagated from the frame to its warped copy
// with the engine's readout — cosine affinities of the L2-normalised features, each query cell's top-k
// over every cell of the anchor, softmax at the temperature, labels averaged — and the prediction
// is scored against the warped mask. With p_q the predicted labels of query cell q (rows of L
// labels) and y_q its true ones (each cell's label fractions: the warped one-hot mask averaged
// over the cell, for the anchor's cells and the copy's alike):
//
//   ce_q = -sum_l y_ql log max(p_ql, 1e-4)
//   loss = mean over the labels c present of (mean of ce_q over the valid cells q whose largest
//          true label is c)
//
// (class-balanced: a small object weighs as much as the background; cells the warp took from
// outside the frame are not valid, and of the valid ones at most 8192, drawn at random, are read
// out per step so that the affinities stay small on large frames). The frame is matched at the
// propagation's internal resolution, so the features learn to tell the objects apart at the
// scale they are used at.
#pragma once

#include "corrtrack/adaptation.h"
#include "corrtrack/train.h"

#include <memory>
#include <vector>

namespace corrtrack::detail {

// The loss above. keys [C, K] and queries [C, Q] L2-normalised over C; key_labels [K, L],
// query_labels [Q, L] (rows summing to 1); valid [Q] bool. topk <= 0 or >= K: every key.
// Predicted labels are clamped to [1e-4, 1] before the log, so a cell whose true label gets less
// than 1e-4 adds a constant and no gradient: such a cell (a thin structure, a mislabelled edge) is
// past help, and pushing on it distorted the features (see the README). A scalar; zero when no
// cell is valid.
torch::Tensor anchor_readout_loss(const torch::Tensor& keys, const torch::Tensor& key_labels, const torch::Tensor& queries,
                                  const torch::Tensor& query_labels, const torch::Tensor& valid, int topk, double temperature);

// One warp of the anchor term. `scale` > 1 zooms in; the shifts are in [-1, 1] frame coordinates
// (0.15 = 7.5 % of the side); `contrast` multiplies the standardised input.
struct AnchorWarp {
  double scale = 1.0, shift_x = 0.0, shift_y = 0.0;
  bool mirror = false;
  double contrast = 1.0;
};
struct AnchorWarped {
  torch::Tensor input;    // [1, C, H, W]: zero (the input's mean colour) where the warp left the frame
  torch::Tensor labels;   // [1, L, H, W]: zero there too
  torch::Tensor inside;   // [1, 1, H, W]: the fraction of each pixel taken from inside the frame
};
// The warp applied to the standardised encoder input [1, C, H, W] and its labels [1, L, H, W]
// (bilinear, zeros outside); the contrast gain scales channel 0 only when `lab` (the lightness),
// every channel otherwise.
AnchorWarped anchor_warp(const torch::Tensor& input, const torch::Tensor& labels, const AnchorWarp& w, bool lab);

struct AnchorTermConfig {
  double weight = 1.0;        // the term's weight next to the method's own loss
  double scale = 1.0;         // the propagation's internal resolution (PropagationConfig::scale)
  int topk = 10;              // the propagation's top-k and temperature
  double temperature = 0.05;
};

// `inner` (a video method whose module holds its encoder) with the anchor term added to its loss
// (each step: inner loss + weight * term; the term is logged as metric "anchor"). The checkpoint,
// parameters and name stay `inner`'s. Throws Error when `anchors` is empty, a mask's size differs
// from its frame's, or the masks hold no object.
std::unique_ptr<TrainableMethod> method_with_anchor_term(std::unique_ptr<TrainableMethod> inner,
                                                         const std::vector<AdaptAnchor>& anchors, const AnchorTermConfig& config);

}  // namespace corrtrack::detail
