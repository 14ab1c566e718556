// Synchronised BatchNorm (batch_norm.h): global batch statistics through a reducer.
#include "corrtrack/batch_norm.h"

#include <vector>

namespace corrtrack {

namespace {

// Shape [1, C, 1, ...] to broadcast a per-channel vector over x.
std::vector<int64_t> channel_shape(const torch::Tensor& x) {
  std::vector<int64_t> s(size_t(x.dim()), 1);
  s[1] = x.size(1);
  return s;
}

std::vector<int64_t> all_but_channels(const torch::Tensor& x) {
  std::vector<int64_t> d{0};
  for (int64_t i = 2; i < x.dim(); ++i) d.push_back(i);
  return d;
}

}  // namespace

torch::Tensor batch_norm_synchronised(const torch::Tensor& x, torch::Tensor& weight, torch::Tensor& bias,
                                      torch::Tensor& running_mean, torch::Tensor& running_var,
                                      torch::Tensor& num_batches_tracked, double momentum, double eps,
                                      const StatsReducer& reduce) {
  const auto dims = all_but_channels(x);
  const auto shape = channel_shape(x);
  const int64_t c = x.size(1);
  // One exchange per layer: Σx, Σx² (accumulated in float64, so that E[x²] − E[x]² keeps its
  // digits) and the count, summed over every rank.
  const auto f64 = torch::TensorOptions().dtype(torch::kDouble);
  auto local = torch::cat({x.sum(dims, false, torch::kDouble), x.pow(2).sum(dims, false, torch::kDouble),
                           torch::full({1}, double(x.numel() / c), f64)});
  auto global = reduce(local);
  auto n = global.narrow(0, 2 * c, 1);
  auto mean = global.narrow(0, 0, c) / n;
  auto var = (global.narrow(0, c, c) / n - mean.pow(2)).clamp_min(0.0);
  if (running_mean.defined()) {
    torch::NoGradGuard ng;
    const double count = n.item<double>();
    running_mean.mul_(1.0 - momentum).add_(mean.detach().to(running_mean.scalar_type()), momentum);
    running_var.mul_(1.0 - momentum).add_((var.detach() * (count / std::max(1.0, count - 1.0))).to(running_var.scalar_type()), momentum);
    num_batches_tracked.add_(1);
  }
  // y = x·scale + shift, scale = weight / sqrt(var + eps), shift = bias − mean·scale.
  auto scale = torch::rsqrt(var + eps).to(x.scalar_type());
  auto shift = -mean.to(x.scalar_type()) * scale;
  if (weight.defined()) {
    scale = scale * weight;
    shift = shift * weight + bias;
  }
  return x * scale.view(shape) + shift.view(shape);
}

SyncBatchNormImpl::SyncBatchNormImpl(int64_t f) : features(f) { reset(); }

void SyncBatchNormImpl::reset() {
  weight = register_parameter("weight", torch::ones({features}));
  bias = register_parameter("bias", torch::zeros({features}));
  running_mean = register_buffer("running_mean", torch::zeros({features}));
  running_var = register_buffer("running_var", torch::ones({features}));
  num_batches_tracked = register_buffer("num_batches_tracked", torch::tensor(0, torch::kLong));
}

void SyncBatchNormImpl::pretty_print(std::ostream& stream) const { stream << "corrtrack::SyncBatchNorm(" << features << ")"; }

torch::Tensor SyncBatchNormImpl::forward(const torch::Tensor& x) {
  if (is_training() && m_reduce) {
    return batch_norm_synchronised(x, weight, bias, running_mean, running_var, num_batches_tracked, momentum, eps, m_reduce);
  }
  if (is_training()) {
    torch::NoGradGuard ng;
    num_batches_tracked.add_(1);
  }
  return torch::batch_norm(x, weight, bias, running_mean, running_var, is_training(), momentum, eps, at::globalContext().userEnabledCuDNN());
}

int batch_norm_set_reducer(torch::nn::Module& root, const StatsReducer& reduce) {
  int n = 0;
  for (auto& m : root.modules()) {
    if (auto* bn = m->as<SyncBatchNormImpl>()) {
      bn->set_reducer(reduce);
      ++n;
    }
  }
  return n;
}

}  // namespace corrtrack
