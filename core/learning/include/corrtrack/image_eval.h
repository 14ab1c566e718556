// Evaluation of an image encoder: kNN, linear probe, NMI, alignment and uniformity.
#pragma once

#include "corrtrack/image_augment.h"
#include "corrtrack/image_encoder.h"
#include "corrtrack/kmeans.h"

#include <string>

namespace corrtrack {

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

// Features [N, D] (not normalised) of the training and the test images under the encoder
// image_evaluate would evaluate (same arguments: one model, loaded once, so a random encoder is
// the same for both), standardised as image_evaluate standardises them. For the embedding pictures.
std::pair<torch::Tensor, torch::Tensor> image_embed(const std::string& checkpoint, const std::string& features,
                                                    const ImageEncoderConfig& random_encoder, const torch::Tensor& train_images,
                                                    const torch::Tensor& test_images, const ImageEvalOptions& opts);

}  // namespace corrtrack
