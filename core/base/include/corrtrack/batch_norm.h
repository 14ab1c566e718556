// BatchNorm that can be synchronised across data-parallel training processes.
//
// In training mode with a reducer set, the batch statistics are those of the global batch: the
// per-channel sums are added over all processes by `reducer` (an autograd-aware all-reduce, see
// distributed.h), so every process normalises with the same mean and variance and the running
// statistics stay identical on every process. Without a reducer (one process, evaluation) it is
// torch's BatchNorm. Parameter and buffer names are torch's, so checkpoints are unchanged.
//
//   mean = Σx / n,  var = Σx² / n − mean²     (sums in float64 over every process's [B, ·, H, W] but C)
//   y = (x − mean) / sqrt(var + eps) · weight + bias
//   running_mean ← (1 − m)·running_mean + m·mean,  running_var ← (1 − m)·running_var + m·var·n/(n − 1)
#pragma once

#include <torch/torch.h>

#include <functional>

namespace corrtrack {

// Sums a tensor over the training processes, differentiably (backward sums the gradient too).
using StatsReducer = std::function<torch::Tensor(const torch::Tensor&)>;

// The statistics above for x [N, C, ...] with the bn module's parameters and buffers.
torch::Tensor batch_norm_synchronised(const torch::Tensor& x, torch::Tensor& weight, torch::Tensor& bias,
                                      torch::Tensor& running_mean, torch::Tensor& running_var,
                                      torch::Tensor& num_batches_tracked, double momentum, double eps,
                                      const StatsReducer& reduce);

// BatchNorm over the channels (dim 1) of [N, C] or [N, C, H, W] inputs, with torch's parameter
// and buffer names (weight, bias, running_mean, running_var, num_batches_tracked), eps 1e-5 and
// momentum 0.1. Without a reducer, or in evaluation, it computes exactly what torch's BatchNorm does.
class SyncBatchNormImpl : public torch::nn::Cloneable<SyncBatchNormImpl> {
 public:
  explicit SyncBatchNormImpl(int64_t features);
  void reset() override;
  void pretty_print(std::ostream& stream) const override;
  torch::Tensor forward(const torch::Tensor& x);
  void set_reducer(StatsReducer r) { m_reduce = std::move(r); }

  int64_t features = 0;
  double eps = 1e-5, momentum = 0.1;
  torch::Tensor weight, bias, running_mean, running_var, num_batches_tracked;

 private:
  StatsReducer m_reduce;
};
TORCH_MODULE(SyncBatchNorm);
using SyncBatchNorm2d = SyncBatchNorm;
using SyncBatchNorm1d = SyncBatchNorm;

// Sets (or with an empty reducer, clears) the reducer of every synchronisable BatchNorm in
// `root`; returns how many there are.
int batch_norm_set_reducer(torch::nn::Module& root, const StatsReducer& reduce);

}  // namespace corrtrack
