// Labels between the pixel grid of the frames and the feature grid of the encoder: object-index
// mask -> soft labels [L, h, w] and back, with cell centres aligned (cell i covers pixels
// stride*i .. stride*i + stride-1 of the internal resolution).
#pragma once

#include "corrtrack/video.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

namespace corrtrack::detail {

namespace F = torch::nn::functional;

// Index of the largest label at every position of labels [L, ...] (ties: the lowest label, as
// torch's argmax), as `dtype` (kUInt8 or kLong). Computed in L elementwise passes over contiguous
// planes: LibTorch 1.13's argmax over the leading dimension reads [L, 480, 854] strided and took
// 110 ms per frame on two cores (this: about 1 ms).
inline torch::Tensor label_argmax(const torch::Tensor& labels, torch::ScalarType dtype = torch::kLong) {
  auto best = labels[0].clone();
  auto index = torch::zeros(best.sizes(), labels.options().dtype(dtype));
  for (int64_t l = 1; l < labels.size(0); ++l) {
    const auto plane = labels[l];
    index.masked_fill_(plane > best, l);
    best = torch::maximum(best, plane);
  }
  return index;
}

// Soft labels [L, ...] raised to `power` and renormalised over the labels at every position:
// l_i^p / sum_j l_j^p (PropagationConfig::feedback_power). Computed as (l_i / max_j l_j)^p so that
// no cell underflows (its largest label becomes 1); a cell with no label mass stays all zero.
// power 1 returns the labels themselves.
inline torch::Tensor labels_sharpened(const torch::Tensor& labels, double power) {
  if (power == 1.0) return labels;
  const auto top = std::get<0>(labels.max(0, true)).clamp_min(std::numeric_limits<float>::min());
  const auto s = (labels / top).clamp_min(0).pow(power);
  return s / s.sum(0, true).clamp_min(std::numeric_limits<float>::min());
}

// Geometry shared by one propagation run: frame size, internal size, feature size.
struct LabelGrid {
  int64_t H = 0, W = 0;     // output (frame) size
  int64_t Hs = 0, Ws = 0;   // internal size after scaling
  int64_t h = 0, w = 0;     // feature map size
  int stride = 8;
  bool area = false;        // anchors' masks reach the grid by area averages (PropagationConfig::area_labels)

  // A frame dimension at the internal resolution `scale` (at least one pixel).
  static int64_t scaled(int64_t n, double scale) { return std::max<int64_t>(1, std::llround(n * scale)); }
  // Frame and internal sizes of W x H frames at `scale` (the feature size comes with the first features).
  void set_frame(int64_t width, int64_t height, double scale) {
    H = height;
    W = width;
    Hs = scaled(H, scale);
    Ws = scaled(W, scale);
  }
  // The frame at the internal resolution (the frame itself when the sizes agree).
  Image internal(const Image& frame) const {
    return Hs == frame.height && Ws == frame.width ? frame : image_resize(frame, int(Ws), int(Hs));
  }

  // Object-index mask -> soft labels [L, h, w] on `device`: one-hot, resized to the internal size,
  // padded to whole feature cells, then resized to the feature grid: bilinearly (cell centres) or,
  // with `area`, as each cell's mean (the internal resize is then an area one too).
  torch::Tensor labels_from_mask(const Image& mask, int64_t L, torch::Device device = torch::kCPU) const {
    return labels_from_internal(internal_labels(mask, L, device));
  }
  // Its first half: the one-hot mask (void, 255, as background) at the internal size [1, L, Hs, Ws].
  torch::Tensor internal_labels(const Image& mask, int64_t L, torch::Device device = torch::kCPU) const {
    auto idx = torch::from_blob(const_cast<uint8_t*>(mask.data.data()), {H, W}, torch::kUInt8).to(device).to(torch::kLong);
    idx = torch::where(idx == 255, torch::zeros_like(idx), idx);
    auto onehot = F::one_hot(idx, L).permute({2, 0, 1}).to(torch::kFloat).unsqueeze(0);
    if (Hs != H || Ws != W) onehot = area ? area_resize(onehot, Hs, Ws) : resize(onehot, Hs, Ws);
    return onehot;
  }
  // Its second half: labels at the internal size [1, L, Hs, Ws] -> soft labels [L, h, w], padded to
  // whole feature cells, then resized to the feature grid.
  torch::Tensor labels_from_internal(const torch::Tensor& internal) const {
    auto padded = F::pad(internal, F::PadFuncOptions({0, w * stride - Ws, 0, h * stride - Hs}).mode(torch::kReplicate));
    return (area ? F::avg_pool2d(padded, F::AvgPool2dFuncOptions(stride)) : resize(padded, h, w)).squeeze(0);
  }

  // Soft labels [L, h, w] (on any device) -> soft labels [L, H, W] at frame size, on the device:
  // feature cells to internal pixels (cell centres aligned), then to the frame's size.
  torch::Tensor frame_labels(const torch::Tensor& labels) const {
    auto up = resize(labels.unsqueeze(0), h * stride, w * stride).narrow(2, 0, Hs).narrow(3, 0, Ws);
    if (Hs != H || Ws != W) up = resize(up, H, W);
    return up.squeeze(0);
  }

  // Frame-size soft labels [L, H, W] -> object-index mask (argmax); only the mask leaves the device.
  Image mask_from_frame_labels(const torch::Tensor& up) const {
    auto arg = label_argmax(up, torch::kUInt8).to(torch::kCPU).contiguous();
    Image m(static_cast<int>(W), static_cast<int>(H), 1);
    std::memcpy(m.data.data(), arg.data_ptr<uint8_t>(), m.data.size());
    return m;
  }

  // Frame-size soft labels [L, H, W] -> objects 1..L-1 as 8-bit probability images.
  std::vector<Image> probabilities_from_frame_labels(const torch::Tensor& up) const {
    auto bytes = (up * 255.0f).round().clamp(0, 255).to(torch::kUInt8).to(torch::kCPU).contiguous();
    std::vector<Image> out;
    for (int64_t l = 1; l < bytes.size(0); ++l) {
      Image m(static_cast<int>(W), static_cast<int>(H), 1);
      std::memcpy(m.data.data(), bytes[l].data_ptr<uint8_t>(), m.data.size());
      out.push_back(std::move(m));
    }
    return out;
  }

  static torch::Tensor area_resize(const torch::Tensor& x, int64_t oh, int64_t ow) {
    return F::interpolate(x, F::InterpolateFuncOptions().size(std::vector<int64_t>{oh, ow}).mode(torch::kArea));
  }
  static torch::Tensor resize(const torch::Tensor& x, int64_t oh, int64_t ow) {
    return F::interpolate(x, F::InterpolateFuncOptions().size(std::vector<int64_t>{oh, ow}).mode(torch::kBilinear).align_corners(false));
  }
};

}  // namespace corrtrack::detail
