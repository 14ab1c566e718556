#include "guided_filter.h"

#include "label_grid.h"

#include <algorithm>
#include <cmath>

namespace corrtrack::detail {

namespace {

// Sums of x along `dim` over [i - r, i + r] clipped to the axis, and the count of each window.
std::pair<torch::Tensor, torch::Tensor> window_sums(const torch::Tensor& x, int64_t dim, int64_t r) {
  const int64_t n = x.size(dim);
  auto shape = x.sizes().vec();
  shape[dim] = 1;
  // prefix[j] = sum of x[0 .. j-1]: one leading zero, then the running sum.
  const auto prefix = torch::cat({torch::zeros(shape, x.options()), x.cumsum(dim)}, dim);
  const auto opts = torch::TensorOptions().dtype(torch::kLong).device(x.device());
  const auto pos = torch::arange(n, opts);
  const auto hi = (pos + r + 1).clamp_max(n);
  const auto lo = (pos - r).clamp_min(0);
  auto sums = prefix.index_select(dim, hi) - prefix.index_select(dim, lo);
  return {sums, (hi - lo).to(x.scalar_type())};
}

// [C, h, w] -> [C, oh, ow] by area averages (LabelGrid's resize, on one image).
torch::Tensor area_shrink(const torch::Tensor& x, int64_t oh, int64_t ow) {
  return LabelGrid::area_resize(x.to(torch::kFloat).unsqueeze(0), oh, ow).squeeze(0);
}

}  // namespace

torch::Tensor box_mean(const torch::Tensor& x, int64_t r) {
  TORCH_CHECK(x.dim() >= 2 && r >= 0, "box_mean: x must be [..., h, w] and r >= 0");
  auto [rows, nh] = window_sums(x, x.dim() - 2, r);
  auto [both, nw] = window_sums(rows, x.dim() - 1, r);
  return both / (nh.unsqueeze(1) * nw.unsqueeze(0));
}

torch::Tensor guided_filter(const torch::Tensor& guide, const torch::Tensor& p, const GuidedFilterParams& params) {
  TORCH_CHECK(guide.dim() == 3 && guide.size(0) == 3 && p.dim() == 3 && p.size(1) == guide.size(1) &&
                  p.size(2) == guide.size(2),
              "guided_filter: guide [3, H, W] and labels [L, H, W] of the same size");
  TORCH_CHECK(params.radius >= 1 && params.eps > 0 && params.subsample >= 1, "guided_filter: radius >= 1, eps > 0, subsample >= 1");
  const int64_t H = p.size(1), W = p.size(2);
  const int64_t s = params.subsample;
  const int64_t h = (H + s - 1) / s, w = (W + s - 1) / s;
  const int64_t r = std::max<int64_t>(1, std::llround(double(params.radius) / double(s)));
  // Statistics at the low resolution, in float64 (running sums of squares lose float32 digits).
  const auto I = area_shrink(guide, h, w).to(torch::kDouble);   // [3, h, w]
  const auto P = area_shrink(p, h, w).to(torch::kDouble);       // [L, h, w]
  const auto mI = box_mean(I, r);
  const auto mP = box_mean(P, r);
  // Colour covariance: the six entries of the symmetric 3x3 matrix, eps on the diagonal.
  auto cov = [&](int i, int j) { return box_mean(I[i] * I[j], r) - mI[i] * mI[j]; };
  const auto a00 = cov(0, 0) + params.eps, a01 = cov(0, 1), a02 = cov(0, 2);
  const auto a11 = cov(1, 1) + params.eps, a12 = cov(1, 2), a22 = cov(2, 2) + params.eps;
  // Its inverse by the adjugate (symmetric): inv = adj / det.
  const auto i00 = a11 * a22 - a12 * a12, i01 = a02 * a12 - a01 * a22, i02 = a01 * a12 - a02 * a11;
  const auto i11 = a00 * a22 - a02 * a02, i12 = a01 * a02 - a00 * a12, i22 = a00 * a11 - a01 * a01;
  const auto det = a00 * i00 + a01 * i01 + a02 * i02;
  // cov(I_c, p_l) for every label: [L, 3, h, w].
  const auto cIp = box_mean(P.unsqueeze(1) * I.unsqueeze(0), r) - mP.unsqueeze(1) * mI.unsqueeze(0);
  const auto c0 = cIp.select(1, 0), c1 = cIp.select(1, 1), c2 = cIp.select(1, 2);
  const auto a = torch::stack({(i00 * c0 + i01 * c1 + i02 * c2) / det,
                               (i01 * c0 + i11 * c1 + i12 * c2) / det,
                               (i02 * c0 + i12 * c1 + i22 * c2) / det}, 1);              // [L, 3, h, w]
  const auto b = mP - (a * mI.unsqueeze(0)).sum(1);                                      // [L, h, w]
  // Means of the affine functions, back at full size, applied to the full-size guide.
  const auto A = LabelGrid::resize(box_mean(a, r).to(torch::kFloat), H, W);                     // [L, 3, H, W]
  const auto B = LabelGrid::resize(box_mean(b, r).to(torch::kFloat).unsqueeze(0), H, W).squeeze(0);
  return (A * guide.to(torch::kFloat).unsqueeze(0)).sum(1) + B;
}

}  // namespace corrtrack::detail
