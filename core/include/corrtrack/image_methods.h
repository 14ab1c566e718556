// Image self-supervised methods on the contrastive core: encoders (small ConvNet for 28x28,
// ResNet-18 for 32x32), batched augmentations, the methods (simclr, moco, byol, swav, npid,
// sela, deepcluster, iic, pcl, supcon, cpc) as TrainableMethods, and their evaluation.
#pragma once

#include "corrtrack/core.h"
#include "corrtrack/train.h"

#include <memory>
#include <string>
#include <vector>

namespace corrtrack {

// "convnet": 5 conv layers (width w, w, 2w, 2w, 4w) with BN, ReLU, two 2x2 max-pools, global
// average pool -> 4w-d. "resnet18": ResNet-18 with a stride-1 stem and no max-pool, global
// average pool -> 512-d.
struct ImageEncoderConfig {
  std::string kind = "convnet";
  int in_channels = 1;
  int width = 32;
};
std::string image_encoder_config_to_json(const ImageEncoderConfig& c);
ImageEncoderConfig image_encoder_config_from_json(const std::string& text);

class ImageEncoderImpl : public torch::nn::Module {
 public:
  explicit ImageEncoderImpl(const ImageEncoderConfig& cfg);
  torch::Tensor forward(torch::Tensor x);   // [B, C, H, W] normalised -> [B, dim]
  int dim() const { return m_dim; }
  const ImageEncoderConfig& config() const { return m_cfg; }
 private:
  ImageEncoderConfig m_cfg;
  int m_dim = 0;
  torch::nn::Sequential m_convnet{nullptr};
  ResNet m_resnet{nullptr};
};
TORCH_MODULE(ImageEncoder);

// Batched augmentation of uint8 images [B, C, H, W] to float views [B, C, size, size] normalised
// by mean/std: random resized crop (area in [min_scale, 1], aspect in [1/aspect, aspect]) and horizontal flip
// as one affine grid sample, brightness/contrast jitter, grayscale (RGB, p 0.2) and 3x3 blur (p 0.5).
struct AugmentConfig {
  int size = 28;
  double min_scale = 0.3;
  double aspect = 4.0 / 3.0;   // aspect ratio drawn log-uniformly in [1/aspect, aspect]
  double jitter = 0.4;
  bool blur = true;
};
torch::Tensor augment_batch(const torch::Tensor& images, const AugmentConfig& cfg, const std::vector<double>& mean,
                            const std::vector<double>& stdv, torch::Generator& gen);
// Plain view for evaluation: uint8 -> float, normalised.
torch::Tensor normalise_images(const torch::Tensor& images, const std::vector<double>& mean, const std::vector<double>& stdv);
// Per-channel mean and standard deviation of uint8 images [N, C, H, W] scaled to [0, 1].
void image_channel_stats(const torch::Tensor& images, std::vector<double>& mean, std::vector<double>& stdv);
// Encoder configuration of an image-method checkpoint; throws Error naming the file (and the
// method it holds) when it is not one.
ImageEncoderConfig image_checkpoint_encoder(const std::string& checkpoint);

struct ImageMethodConfig {
  std::string method = "simclr";
  ImageEncoderConfig encoder;
  int batch = 256;
  AugmentConfig augment;
  double temperature = 0.0;   // 0: the method's default (simclr 0.5, moco/pcl 0.2, npid 0.07, swav 0.1, supcon 0.1)
  int proj_dim = 128;
  int queue = 4096;           // moco/pcl keys; npid noise samples
  double momentum = 0.99;     // moco/pcl key encoder EMA; byol base (schedule to 1)
  int clusters = 0;           // 0: method default (swav 30 prototypes, sela/deepcluster/pcl 30, iic 10)
  int64_t total_steps = 1;
  uint64_t seed = 0;
};

std::vector<std::string> image_method_names();
// images uint8 [N, C, H, W]; labels [N] (used by supcon only). Throws Error for an unknown method.
std::unique_ptr<TrainableMethod> image_method_create(const ImageMethodConfig& cfg, torch::Tensor images, torch::Tensor labels);

// Evaluation of an image encoder (a training checkpoint of an image method, or none = random).
struct ImageEvalResult {
  double knn_top1_k20 = 0, knn_top1_k200 = 0, linear_top1 = 0, nmi_kmeans = 0, nmi_head = -1;
  double alignment = 0, uniformity = 0;
  int64_t train_images = 0, test_images = 0;
};
struct ImageEvalOptions {
  int linear_epochs = 10;
  int batch = 512;
  uint64_t seed = 0;
  torch::Device device = torch::kCPU;
};
// `checkpoint` empty: `features` is "pixels" (raw pixels, normalised) or "random" (untrained encoder
// of `random_encoder`). Features are L2-normalised for kNN, NMI (k-means with k = classes),
// alignment (E|f(x)-f(x')|^2 over two augmentations) and uniformity (log E exp(-2|f(x)-f(y)|^2)).
ImageEvalResult image_evaluate(const std::string& checkpoint, const std::string& features,
                               const ImageEncoderConfig& random_encoder, const torch::Tensor& train_images,
                               const torch::Tensor& train_labels, const torch::Tensor& test_images,
                               const torch::Tensor& test_labels, int64_t num_classes, const ImageEvalOptions& opts);

}  // namespace corrtrack
