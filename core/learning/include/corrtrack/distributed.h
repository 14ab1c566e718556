// Data-parallel training across processes and machines on PyTorch's c10d: a process group
// (Gloo for CPU tensors) that ranks join through a TCP store, the collectives the training loop
// and the methods need, gradient averaging in buckets, and the local launcher behind
// `corrtrack train --nproc N`.
//
// Every rank runs the same model on its own share of the global batch. The loop (train.h)
// broadcasts parameters and buffers from rank 0 at the start (and after --resume), averages the
// gradients after each backward pass, and only rank 0 writes the checkpoint and metrics.
// Methods reach the collectives through TrainableMethod::distributed(): MoCo/PCL enqueue the keys
// of every rank, NPID updates its memory bank with every rank's features, SwAV's Sinkhorn
// normalises over the global batch, SimCLR's negatives are gathered from every rank, and
// BatchNorm is synchronised (batch_norm.h).
//
// Usage (one process per rank; RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT as torchrun sets them):
//   DistConfig c = dist_config_from_env(DistConfig{});
//   auto dist = dist_connect(c);             // blocks until all ranks joined (or timeout)
//   std::vector<torch::Tensor> t{x};
//   dist->all_reduce_sum(t);                 // x is now the sum over ranks, on every rank
#pragma once

#include "corrtrack/core.h"

#include <memory>
#include <string>
#include <vector>

namespace corrtrack {

struct DistConfig {
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;                   // rank on this machine (picks the GPU with --device cuda)
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;              // rank 0 listens here (TCP store)
  std::string backend = "auto";         // gloo | nccl | auto (gloo on the CPU)
  double timeout_s = 300.0;             // joining, and any collective: a dead or hung rank fails the others after this
};

// Fills what the environment says, where `given` left the default: torchrun's RANK, WORLD_SIZE,
// LOCAL_RANK, MASTER_ADDR, MASTER_PORT, else SLURM's SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID.
// `flags_given` lists the DistConfig fields the user set explicitly ("rank", "world_size",
// "local_rank", "master_addr", "master_port"); those win over the environment.
DistConfig dist_config_from_env(DistConfig given, const std::vector<std::string>& flags_given = {});
// SettingError naming the option: world size < 1, rank outside [0, world), port outside
// [1, 65535], an unknown backend, a timeout <= 0, nccl without CUDA.
void dist_config_validate(const DistConfig& c);

// The collectives between the ranks of one training run. Tensors are contiguous; collectives
// run in the same order on every rank.
class Distributed {
 public:
  virtual ~Distributed() = default;
  virtual int rank() const = 0;
  virtual int world_size() const = 0;
  bool is_main() const { return rank() == 0; }
  // In place: every tensor becomes the element-wise sum over ranks, on every rank.
  virtual void all_reduce_sum(std::vector<torch::Tensor>& tensors) = 0;
  // x [n, ...] with the same shape on every rank -> [world·n, ...], rank 0's rows first.
  virtual torch::Tensor all_gather(const torch::Tensor& x) = 0;
  // In place: every rank's tensors become root's.
  virtual void broadcast(std::vector<torch::Tensor>& tensors, int root) = 0;
  virtual void barrier() = 0;
  // "gloo", "single".
  virtual std::string backend() const = 0;

  // The generator of this rank's data in a step: `step_gen` itself for one process (so a
  // single-process run draws as it always did); otherwise a generator seeded from one draw of
  // `step_gen` (the same on every rank) and the rank, so each rank draws different clips and
  // a resumed run draws what an uninterrupted one would.
  torch::Generator rank_generator(torch::Generator& step_gen) const;
};

// Rank 0 of 1: every collective is the identity.
std::shared_ptr<Distributed> dist_single();
// Joins the process group described by `c` (world size 1 gives dist_single()). Rank 0 hosts the
// TCP store. Errors: the port in use, the master not reachable within the timeout, a build
// without c10d Gloo — each one line naming the setting.
std::shared_ptr<Distributed> dist_connect(const DistConfig& c);
// Whether this build can train across processes (LibTorch with c10d and the Gloo headers).
bool dist_available();

// Autograd-aware collectives. all_gather_grad: forward as all_gather; backward sums the
// gradient over ranks and returns this rank's rows (the rank's share of d(Σ_r loss_r)/dx).
// all_reduce_sum_grad: forward the sum over ranks; backward the sum of the gradients.
// With gradient averaging (1/world) these give the gradient of the mean of the ranks' losses.
torch::Tensor all_gather_grad(Distributed& d, const torch::Tensor& x);
torch::Tensor all_reduce_sum_grad(Distributed& d, const torch::Tensor& x);

// Averages the gradients of `params` over the ranks: gradients are flattened into buckets of at
// most `bucket_bytes`, each all-reduced once and divided by the world size. Parameters without
// a gradient take part as zeros, so every rank runs the same collectives.
void gradients_average(Distributed& d, const std::vector<torch::Tensor>& params, int64_t bucket_bytes = 16 << 20);
// Copies rank 0's parameters and buffers into every rank's module.
void module_broadcast(Distributed& d, torch::nn::Module& m);
// Makes every synchronisable BatchNorm in `m` use the global batch statistics over `d`'s ranks
// (no effect for one process).
void batch_norm_synchronise(torch::nn::Module& m, const std::shared_ptr<Distributed>& d);

// A free TCP port on this machine for a local run's store (bound once to port 0, then closed).
int free_tcp_port();

// `corrtrack train --nproc N` on one machine: starts `nproc` copies of `argv` (argv[0] the
// executable) with RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT set, and waits. When
// a worker fails, the others are stopped (SIGTERM, then SIGKILL after `grace_s`) and an Error
// names the rank and how it ended. Returns when all exited 0.
void dist_launch_local(const std::vector<std::string>& argv, int nproc, int master_port, double grace_s = 10.0);

}  // namespace corrtrack
