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
  const double local_n = double(x.numel() / x.size(1));
  // Pass 1: global count and mean. Pass 2: global variance around that mean (no cancellation).
  auto first = reduce(torch::cat({x.sum(dims), torch::full({1}, local_n, x.options())}));
  const int64_t c = x.size(1);
  auto n = first.narrow(0, c, 1);
  auto mean = first.narrow(0, 0, c) / n;
  auto centred = x - mean.view(shape);
  auto var = reduce(centred.pow(2).sum(dims)) / n;
  if (running_mean.defined()) {
    torch::NoGradGuard ng;
    const double count = n.item<double>();
    running_mean.mul_(1.0 - momentum).add_(mean.detach(), momentum);
    running_var.mul_(1.0 - momentum).add_(var.detach() * (count / std::max(1.0, count - 1.0)), momentum);
    num_batches_tracked.add_(1);
  }
  auto y = centred * torch::rsqrt(var + eps).view(shape);
  if (weight.defined()) y = y * weight.view(shape) + bias.view(shape);
  return y;
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
