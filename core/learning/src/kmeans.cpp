// k-means (Lloyd iterations, k-means++ seeding) for DeepCluster, SeLa's evaluation and PCL.
#include "corrtrack/kmeans.h"

#include "corrtrack/augment.h"

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
