// Batched augmentation of image batches as one affine grid sample per batch, and the plain
// standardised view used for evaluation.
#include "corrtrack/image_augment.h"

#include "corrtrack/ops.h"

namespace F = torch::nn::functional;

namespace corrtrack {

torch::Tensor normalise_images(const torch::Tensor& images, const std::vector<double>& mean, const std::vector<double>& stdv) {
  return standardise_channels(images.to(torch::kFloat).div(255.0), mean, stdv);
}

void image_channel_stats(const torch::Tensor& images, std::vector<double>& mean, std::vector<double>& stdv) {
  auto x = images.to(torch::kFloat).div(255.0);
  mean.clear();
  stdv.clear();
  for (int64_t c = 0; c < x.size(1); ++c) {
    mean.push_back(x.select(1, c).mean().item<double>());
    stdv.push_back(x.select(1, c).std().item<double>());
  }
}

torch::Tensor augment_batch(const torch::Tensor& images, const AugmentConfig& cfg, const std::vector<double>& mean,
                            const std::vector<double>& stdv, torch::Generator& gen) {
  const int64_t b = images.size(0), c = images.size(1);
  auto x = images.to(torch::kFloat).div(255.0);
  // Crop box and flip per sample as one affine map of the output grid into the input.
  auto opts = torch::TensorOptions().dtype(torch::kFloat);
  auto area = at::empty({b}, opts).uniform_(cfg.min_scale, 1.0, gen);
  auto log_ratio = at::empty({b}, opts).uniform_(-std::log(cfg.aspect), std::log(cfg.aspect) + 1e-12, gen);
  auto ratio = log_ratio.exp();
  auto sx = (area * ratio).sqrt().clamp_max(1.0), sy = (area / ratio).sqrt().clamp_max(1.0);
  auto cx = (at::empty({b}, opts).uniform_(-1.0, 1.0, gen)) * (1.0 - sx);
  auto cy = (at::empty({b}, opts).uniform_(-1.0, 1.0, gen)) * (1.0 - sy);
  auto flip = (at::empty({b}, opts).uniform_(0.0, 1.0, gen) < 0.5).to(torch::kFloat) * 2.0 - 1.0;
  if (!cfg.flip) flip.fill_(1.0);   // drawn all the same, so the other draws do not move
  auto theta = torch::zeros({b, 2, 3}, opts);
  theta.select(1, 0).select(1, 0).copy_(sx * flip);
  theta.select(1, 0).select(1, 2).copy_(cx);
  theta.select(1, 1).select(1, 1).copy_(sy);
  theta.select(1, 1).select(1, 2).copy_(cy);
  theta = theta.to(x.device());
  auto grid = F::affine_grid(theta, {b, c, cfg.size, cfg.size}, /*align_corners=*/false);
  x = F::grid_sample(x, grid, F::GridSampleFuncOptions().mode(torch::kBilinear).padding_mode(torch::kBorder).align_corners(false));
  // Brightness and contrast per sample.
  auto bright = at::empty({b, 1, 1, 1}, opts).uniform_(1.0 - cfg.jitter, 1.0 + cfg.jitter, gen).to(x.device());
  auto contrast = at::empty({b, 1, 1, 1}, opts).uniform_(1.0 - cfg.jitter, 1.0 + cfg.jitter, gen).to(x.device());
  x = x * bright;
  auto mu = x.mean({1, 2, 3}, true);
  x = ((x - mu) * contrast + mu).clamp(0.0, 1.0);
  if (c == 3) {
    auto gray_p = (at::empty({b, 1, 1, 1}, opts).uniform_(0.0, 1.0, gen) < 0.2).to(torch::kFloat).to(x.device());
    auto gray = (0.299 * x.select(1, 0) + 0.587 * x.select(1, 1) + 0.114 * x.select(1, 2)).unsqueeze(1).expand_as(x);
    x = gray_p * gray + (1 - gray_p) * x;
  }
  if (cfg.blur) {
    auto k1 = torch::tensor({0.25f, 0.5f, 0.25f});
    auto k = (k1.view({3, 1}) * k1.view({1, 3})).view({1, 1, 3, 3}).repeat({c, 1, 1, 1}).to(x.device());
    auto blurred = F::conv2d(F::pad(x, F::PadFuncOptions({1, 1, 1, 1}).mode(torch::kReplicate)), k, F::Conv2dFuncOptions().groups(c));
    auto blur_p = (at::empty({b, 1, 1, 1}, opts).uniform_(0.0, 1.0, gen) < 0.5).to(torch::kFloat).to(x.device());
    x = blur_p * blurred + (1 - blur_p) * x;
  }
  return standardise_channels(x, mean, stdv);
}

}  // namespace corrtrack
