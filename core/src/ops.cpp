// Local-window attention by shifted views (no unfold copy of the keys) and the tensor
// augmentations the methods share; randomness always comes from an explicit generator.
#include "corrtrack/train.h"

#include <cmath>
#include <limits>

namespace F = torch::nn::functional;

namespace corrtrack {

namespace {

void check_pair(const torch::Tensor& a, const torch::Tensor& b, const char* what) {
  TORCH_CHECK(a.dim() == 4 && b.dim() == 4, what, ": expected [B, C, H, W] tensors");
  TORCH_CHECK(a.size(0) == b.size(0) && a.size(2) == b.size(2) && a.size(3) == b.size(3), what,
              ": batch and spatial sizes must match");
}

// [1, K*K, H, W] with 0 where the offset stays inside the frame and -inf outside.
torch::Tensor window_bias(int64_t h, int64_t w, int radius, int dilation, const torch::TensorOptions& opts) {
  const int64_t k = 2 * radius + 1;
  auto ys = torch::arange(h, opts).view({1, h, 1});
  auto xs = torch::arange(w, opts).view({1, 1, w});
  auto d = torch::arange(-radius, radius + 1, opts) * double(dilation);
  auto dy = d.view({k, 1}).expand({k, k}).reshape({k * k, 1, 1});
  auto dx = d.view({1, k}).expand({k, k}).reshape({k * k, 1, 1});
  auto yy = ys + dy, xx = xs + dx;
  auto inside = (yy >= 0) & (yy < h) & (xx >= 0) & (xx < w);
  return torch::where(inside, torch::zeros({}, opts), torch::full({}, -std::numeric_limits<float>::infinity(), opts))
      .unsqueeze(0);
}

}  // namespace

torch::Tensor local_window_scores(const torch::Tensor& q, const torch::Tensor& k, int radius, double scale, int dilation) {
  check_pair(q, k, "local_window_scores");
  TORCH_CHECK(q.size(1) == k.size(1), "local_window_scores: query and key channels differ");
  TORCH_CHECK(radius >= 0 && dilation >= 1, "local_window_scores: radius must be >= 0 and dilation >= 1");
  const int64_t h = q.size(2), w = q.size(3);
  const int p = radius * dilation;
  auto kp = F::pad(k, F::PadFuncOptions({p, p, p, p}));
  std::vector<torch::Tensor> scores;
  scores.reserve(size_t((2 * radius + 1) * (2 * radius + 1)));
  auto qs = scale == 1.0 ? q : q * scale;
  for (int dy = 0; dy <= 2 * radius; ++dy) {
    for (int dx = 0; dx <= 2 * radius; ++dx) {
      const int y0 = dy * dilation, x0 = dx * dilation;
      scores.push_back((qs * kp.slice(2, y0, y0 + h).slice(3, x0, x0 + w)).sum(1));
    }
  }
  return torch::stack(scores, 1) + window_bias(h, w, radius, dilation, q.options());
}

torch::Tensor local_window_gather(const torch::Tensor& wts, const torch::Tensor& v, int radius, int dilation) {
  check_pair(wts, v, "local_window_gather");
  const int64_t kk = (2 * radius + 1) * (2 * radius + 1);
  TORCH_CHECK(wts.size(1) == kk, "local_window_gather: weights need (2r+1)^2 channels");
  const int64_t h = v.size(2), w = v.size(3);
  const int p = radius * dilation;
  auto vp = F::pad(v, F::PadFuncOptions({p, p, p, p}));
  torch::Tensor out;
  int64_t o = 0;
  for (int dy = 0; dy <= 2 * radius; ++dy) {
    for (int dx = 0; dx <= 2 * radius; ++dx, ++o) {
      const int y0 = dy * dilation, x0 = dx * dilation;
      auto term = wts.slice(1, o, o + 1) * vp.slice(2, y0, y0 + h).slice(3, x0, x0 + w);
      out = out.defined() ? out + term : term;
    }
  }
  return out;
}

torch::Tensor local_window_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                     int radius, double scale) {
  return local_window_gather(torch::softmax(local_window_scores(q, k, radius, scale), 1), v, radius);
}

// ---------------------------------------------------------------------------------------------
// Augmentations
// ---------------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------------
// k-means
// ---------------------------------------------------------------------------------------------

namespace corrtrack {

torch::Tensor kmeans_assign(const torch::Tensor& x, const torch::Tensor& c) {
  // |x - c|^2 = |x|^2 - 2 x.c + |c|^2; |x|^2 does not change the argmin.
  auto d = c.pow(2).sum(1).unsqueeze(0) - 2.0 * torch::mm(x, c.t());
  return d.argmin(1);
}

torch::Tensor kmeans(const torch::Tensor& points, int k, int iterations, torch::Generator& gen) {
  TORCH_CHECK(points.dim() == 2, "kmeans: points must be [N, D]");
  const int64_t n = points.size(0);
  if (k <= 0 || n < k) throw Error("k-means needs at least k = " + std::to_string(k) + " points, got " + std::to_string(n));
  torch::NoGradGuard ng;
  auto x = points.to(torch::kFloat).contiguous();
  // k-means++ seeding.
  std::vector<int64_t> chosen{random_int(gen, n)};
  auto d2 = (x - x[chosen[0]]).pow(2).sum(1);
  for (int j = 1; j < k; ++j) {
    const double total = d2.sum().item<double>();
    int64_t next;
    if (total <= 0.0) {
      next = random_int(gen, n);
    } else {
      const double r = random_uniform(gen, 0.0, total);
      auto cum = d2.cumsum(0);
      next = std::min<int64_t>(n - 1, (cum < r).sum().item<int64_t>());
    }
    chosen.push_back(next);
    d2 = torch::minimum(d2, (x - x[next]).pow(2).sum(1));
  }
  return kmeans_lloyd(x, x.index({torch::tensor(chosen)}).clone(), iterations);
}

torch::Tensor kmeans_lloyd(const torch::Tensor& points, torch::Tensor centres, int iterations) {
  torch::NoGradGuard ng;
  auto x = points.to(torch::kFloat).contiguous();
  centres = centres.to(torch::kFloat).clone();
  const int64_t n = x.size(0), k = centres.size(0);
  for (int it = 0; it < iterations; ++it) {
    auto assign = kmeans_assign(x, centres);
    auto sums = torch::zeros_like(centres).index_add_(0, assign, x);
    auto counts = torch::zeros({k}, x.options()).index_add_(0, assign, torch::ones({n}, x.options()));
    auto fresh = sums / counts.clamp_min(1.0).unsqueeze(1);
    auto empty = counts == 0;
    if (empty.any().item<bool>()) {
      // Re-seed each empty cluster with the point currently worst served by its centre.
      auto err = (x - fresh.index({assign})).pow(2).sum(1);
      for (int64_t j = 0; j < k; ++j) {
        if (!empty[j].item<bool>()) continue;
        const int64_t far = err.argmax().item<int64_t>();
        fresh[j] = x[far];
        err[far] = -1.0;
      }
    }
    const bool converged = torch::allclose(fresh, centres);
    centres = fresh;
    if (converged) break;
  }
  return centres;
}

}  // namespace corrtrack
