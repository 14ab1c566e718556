// Encoders of the image methods (small ConvNet for 28x28 images, ResNet-18 for 32x32) and their
// configuration as stored in checkpoints.
#pragma once

#include "corrtrack/checkpoint_info.h"
#include "corrtrack/core.h"

#include <string>

namespace corrtrack {

// "convnet": 5 conv layers (width w, w, 2w, 2w, 4w) with BN, ReLU, two 2x2 max-pools, global
// average pool -> 4w-d. "resnet18": ResNet-18 with a stride-1 stem and no max-pool, global
// average pool -> 512-d.
struct ImageEncoderConfig {
  std::string kind = "convnet";
  int in_channels = 1;
  int width = 32;
  // > 0: the encoder was trained on patch x patch crops (CPC), and an image is described by the
  // mean of the features of its patches on a grid of this stride (CPC's image representation).
  int patch = 0, patch_stride = 0;
};
std::string image_encoder_config_to_json(const ImageEncoderConfig& c);
ImageEncoderConfig image_encoder_config_from_json(const std::string& text);

class ImageEncoderImpl : public torch::nn::Module {
 public:
  explicit ImageEncoderImpl(const ImageEncoderConfig& cfg);
  torch::Tensor forward(torch::Tensor x);   // [B, C, H, W] normalised -> [B, dim]
  // A patch encoder's features of every patch of x: [B, C, H, W] -> [B, Gy, Gx, dim], the patches
  // on the config's grid (Gy = (H - patch) / patch_stride + 1). Throws Error without a patch config.
  torch::Tensor patch_features(const torch::Tensor& x);
  // An image's features [B, dim] as evaluations see them: forward(x), or with a patch encoder the
  // mean of patch_features(x) over the grid.
  torch::Tensor embed(const torch::Tensor& x);
  int dim() const { return m_dim; }
  const ImageEncoderConfig& config() const { return m_cfg; }
 private:
  ImageEncoderConfig m_cfg;
  int m_dim = 0;
  torch::nn::Sequential m_convnet{nullptr};
  ResNet m_resnet{nullptr};
};
TORCH_MODULE(ImageEncoder);

// Encoder configuration of an image-method checkpoint; throws Error naming the file (and the
// method it holds) when it is not one.
ImageEncoderConfig image_checkpoint_encoder(const std::string& checkpoint);
ImageEncoderConfig image_checkpoint_encoder(const CheckpointInfo& info, const std::string& checkpoint);


}  // namespace corrtrack
