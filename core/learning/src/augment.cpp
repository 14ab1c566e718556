// Tensor augmentations shared by the methods; randomness always comes from an explicit generator.
#include "corrtrack/augment.h"

#include <cmath>

namespace F = torch::nn::functional;

namespace corrtrack {


double random_uniform(torch::Generator& gen, double lo, double hi) {
  auto u = at::empty({1}, torch::kDouble).uniform_(lo, hi, gen);
  return u.item<double>();
}

int64_t random_int(torch::Generator& gen, int64_t n) {
  TORCH_CHECK(n > 0, "random_int: n must be positive");
  return at::randint(n, {1}, gen, torch::TensorOptions().dtype(torch::kLong)).item<int64_t>();
}

CropBox crop_box_random(int width, int height, double min_scale, double max_scale, double min_ratio, double max_ratio,
                        torch::Generator& gen) {
  const double area = double(width) * height;
  for (int attempt = 0; attempt < 10; ++attempt) {
    const double target = area * random_uniform(gen, min_scale, max_scale);
    const double ratio = std::exp(random_uniform(gen, std::log(min_ratio), std::log(max_ratio)));
    const int w = int(std::lround(std::sqrt(target * ratio)));
    const int h = int(std::lround(std::sqrt(target / ratio)));
    if (w >= 1 && h >= 1 && w <= width && h <= height) {
      return {int(random_int(gen, width - w + 1)), int(random_int(gen, height - h + 1)), w, h};
    }
  }
  // Fallback as torchvision does: the largest centred box of an allowed ratio.
  const double in_ratio = double(width) / height;
  int w = width, h = height;
  if (in_ratio < min_ratio) h = int(std::lround(w / min_ratio));
  else if (in_ratio > max_ratio) w = int(std::lround(h * max_ratio));
  return {(width - w) / 2, (height - h) / 2, w, h};
}

torch::Tensor crop_resize(const torch::Tensor& x, const CropBox& b, int out_h, int out_w) {
  auto c = x.slice(-2, b.y, b.y + b.height).slice(-1, b.x, b.x + b.width);
  if (c.size(-2) == out_h && c.size(-1) == out_w) return c.contiguous();
  const auto sizes = c.sizes().vec();
  auto flat = c.reshape({-1, sizes[sizes.size() - 3], sizes[sizes.size() - 2], sizes[sizes.size() - 1]});
  auto r = F::interpolate(flat, F::InterpolateFuncOptions().size(std::vector<int64_t>{out_h, out_w}).mode(torch::kBilinear).align_corners(false));
  auto out_sizes = sizes;
  out_sizes[sizes.size() - 2] = out_h;
  out_sizes[sizes.size() - 1] = out_w;
  return r.reshape(out_sizes);
}

torch::Tensor colour_jitter(const torch::Tensor& x, double s, torch::Generator& gen) {
  if (s <= 0.0) return x;
  const double brightness = random_uniform(gen, 1.0 - s, 1.0 + s);
  const double contrast = random_uniform(gen, 1.0 - s, 1.0 + s);
  const double saturation = random_uniform(gen, 1.0 - s, 1.0 + s);
  auto y = x * brightness;
  // Luma (ITU-R 601) for contrast and saturation, per image.
  auto gray = (0.299 * y.select(-3, 0) + 0.587 * y.select(-3, 1) + 0.114 * y.select(-3, 2)).unsqueeze(-3);
  auto mean = gray.mean({-2, -1}, true);
  y = (y - mean) * contrast + mean;
  gray = (gray - mean) * contrast + mean;
  y = (y - gray) * saturation + gray;
  return y.clamp(0.0, 1.0);
}

}  // namespace corrtrack

