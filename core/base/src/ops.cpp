// Tensor operations shared by inference and training: local-window attention by shifted views
// (no unfold copy of the keys), L2 normalisation and per-channel standardisation.
#include "corrtrack/ops.h"

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

torch::Tensor l2_normalise(const torch::Tensor& x, int64_t dim) {
  return F::normalize(x, F::NormalizeFuncOptions().p(2).dim(dim).eps(1e-12));
}

torch::Tensor standardise_channels(const torch::Tensor& x, const std::vector<double>& mean, const std::vector<double>& stdv) {
  const int64_t c = x.size(-3);
  if (static_cast<int64_t>(mean.size()) != c || static_cast<int64_t>(stdv.size()) != c) {
    throw Error("standardise_channels: mean/std need one value per channel");
  }
  auto m = torch::tensor(std::vector<float>(mean.begin(), mean.end())).view({c, 1, 1});
  auto s = torch::tensor(std::vector<float>(stdv.begin(), stdv.end())).view({c, 1, 1});
  return (x - m.to(x.device())) / s.to(x.device());
}

}  // namespace corrtrack
