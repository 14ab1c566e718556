// CorrTrack training machinery shared by the video trackers and the image methods: optimisers
// (SGD, Adam, LARS), learning-rate schedules and the training loop (atomic checkpoints, --resume,
// metrics.jsonl, progress). Augmentations and k-means are in augment.h and kmeans.h.
#pragma once

#include "corrtrack/augment.h"
#include "corrtrack/checkpoint_info.h"
#include "corrtrack/core.h"
#include "corrtrack/distributed.h"
#include "corrtrack/kmeans.h"
#include "corrtrack/ops.h"

#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace corrtrack {

// ---------------------------------------------------------------------------------------------
// Optimisers and schedules
// ---------------------------------------------------------------------------------------------

struct OptimizerConfig {
  std::string name = "adam";   // sgd | adam | lars
  double lr = 1e-3;            // base learning rate (the schedule scales it)
  double momentum = 0.9;       // sgd, lars
  double weight_decay = 0.0;
  double beta1 = 0.9, beta2 = 0.999;  // adam
  double lars_eta = 0.001;     // LARS trust coefficient
  bool lars_clip = false;      // LARS: a tensor's rate min(trust, lr) instead of lr * trust (below)
};
std::string optimizer_config_to_json(const OptimizerConfig& c);
// Throws SettingError for an unknown optimiser, or a learning rate or LARS trust coefficient that
// is not a positive number.
void optimizer_config_validate(const OptimizerConfig& c);

// One optimiser behind a small interface. LARS is SGD with momentum on gradients rescaled per
// tensor by trust = eta * |w| / (|g| + wd * |w|) (You et al. 2017), so a tensor's rate is
// lr * trust; with lars_clip the rate is min(trust, lr) instead (the clipped form of small-batch
// recipes: never faster than plain SGD at lr). Biases and 1-d tensors are not rescaled.
class Optimizer {
 public:
  Optimizer(std::vector<torch::Tensor> params, const OptimizerConfig& cfg);
  ~Optimizer();
  void zero_grad();
  void step();
  void set_lr(double lr);
  const OptimizerConfig& config() const { return m_cfg; }
  void save(torch::serialize::OutputArchive& archive) const;
  void load(torch::serialize::InputArchive& archive);
 private:
  OptimizerConfig m_cfg;
  std::vector<torch::Tensor> m_params;
  std::unique_ptr<torch::optim::Optimizer> m_impl;
};

// Learning rate per step: linear warm-up from 0, then constant, cosine to min_lr, or multiplied
// by gamma at each milestone.
struct LrSchedule {
  std::string kind = "cosine";        // constant | cosine | step
  int64_t warmup_steps = 0;
  std::vector<int64_t> milestones;    // step schedule
  double gamma = 0.1;
  double min_lr_fraction = 0.0;       // cosine floor as a fraction of the base lr
  double lr_at(double base_lr, int64_t step, int64_t total_steps) const;
};

// ---------------------------------------------------------------------------------------------
// Training loop
// ---------------------------------------------------------------------------------------------

struct StepOutput {
  torch::Tensor loss;                                   // scalar to minimise
  std::vector<std::pair<std::string, double>> metrics;  // extra values for metrics.jsonl
  int64_t samples = 0;                                  // clips or images in this step
};

// A method wires an encoder, its data and its loss; the loop owns optimisation and files.
class TrainableMethod {
 public:
  virtual ~TrainableMethod() = default;
  virtual std::string name() const = 0;
  // Everything that is saved in the checkpoint.
  virtual torch::nn::Module& module() = 0;
  // Parameters the optimiser updates (default: all of module()).
  virtual std::vector<torch::Tensor> trainable_parameters() { return module().parameters(); }
  // Moves the module (and any method state) to the device batches should use.
  virtual void set_device(torch::Device device) {
    m_device = device;
    module().to(device);
  }
  // Samples one batch with `gen` and returns its loss (forward pass only).
  virtual StepOutput step(int64_t step, torch::Generator& gen) = 0;
  // Called after each optimiser step (EMA targets, queues, ...).
  virtual void after_step(int64_t /*step*/, int64_t /*total_steps*/) {}
  // What the checkpoint says about the model: method, encoder config, input convention,
  // recommended propagation settings, training settings (the loop adds step, optimiser, ...).
  virtual CheckpointInfo checkpoint_info() const = 0;
  // Data-parallel training: the ranks this process trains with (one process unless set, before
  // train_run). The method's batch is this rank's share; step() draws this rank's data from
  // distributed().rank_generator(gen) and reaches the other ranks through the collectives.
  void set_distributed(std::shared_ptr<Distributed> d) { m_dist = d ? std::move(d) : dist_single(); }
  Distributed& distributed() const { return *m_dist; }
  const std::shared_ptr<Distributed>& distributed_group() const { return m_dist; }

 protected:
  torch::Device m_device = torch::kCPU;   // where the method puts its batches (set_device)
  std::shared_ptr<Distributed> m_dist = dist_single();
};

struct TrainOptions {
  std::string out_dir;                 // RUN folder: last.ckpt, metrics.jsonl
  int64_t steps = 1000;
  int64_t checkpoint_every = 200;
  int64_t log_every = 10;
  double clip_grad_norm = 0.0;         // > 0: clip the global gradient norm
  uint64_t seed = 0;
  bool resume = false;                 // continue from RUN/last.ckpt
  int max_bad_steps = 20;              // consecutive non-finite losses before the run stops
  double time_budget_s = 0.0;          // > 0: stop (and checkpoint) after this much training time
  std::string command_json = "{}";     // how the run was started, stored in the metadata
  torch::Device device = torch::kCPU;
  // bfloat16 encoder arithmetic (EncoderBf16Scope, encoder_precision.h): about twice the steps per
  // second on CPUs with AMX/AVX512-BF16; everything after the encoder stays float32.
  bool bf16 = false;
  // Batch norm frozen: its layers normalise with (and keep) their running statistics while the
  // other weights train (a fine-tune at a small batch on other data would otherwise re-estimate
  // the statistics from a few clips per step).
  bool freeze_batch_norm = false;
  ProgressCallback progress;           // default: a throttled log line
  CancelCallback cancel;
  // Called after each checkpoint is written (and metrics.jsonl flushed), with its step; the
  // command draws RUN/curves.png here. An exception it throws is logged, not fatal.
  std::function<void(int64_t step)> on_checkpoint;
};

struct TrainSummary {
  int64_t first_step = 0;   // step the run started at (> 0 after --resume)
  int64_t last_step = 0;    // steps completed
  int64_t skipped_steps = 0;
  double seconds = 0.0;
  double samples_per_s = 0.0;
  double ms_per_step = 0.0;
  double sync_ms_per_step = 0.0;   // of which waiting in the ranks' collectives (gradients, loss; 0 for one process)
  double final_loss = 0.0;  // mean over the last log window
  bool cancelled = false;
  bool budget_reached = false;
  std::string checkpoint;
};

// Everything train_run would refuse, checked without any work: settings out of range
// (SettingError), a fresh run where RUN/last.ckpt exists, a resume where it does not. train_run
// checks this itself; callers that load data or build a cache first call it before that.
void train_check(const OptimizerConfig& opt, const LrSchedule& schedule, const TrainOptions& options);

// Runs the loop: per step a generator seeded from (seed, step) so that a resumed run draws the
// same batches, warm-up/schedule, non-finite losses skipped (the run stops with an Error after
// max_bad_steps in a row, the last good checkpoint kept), checkpoints written atomically with
// the optimiser state and metadata, metrics appended to metrics.jsonl.
// With the method's distributed() group of several ranks: parameters and buffers broadcast from
// rank 0 at the start (after --resume too), BatchNorm synchronised, gradients averaged, the loss
// and sample counts summed over ranks (metrics are the global batch's), stop decisions (budget,
// cancel, non-finite loss) taken together, and only rank 0 writes files.
TrainSummary train_run(TrainableMethod& method, const OptimizerConfig& opt, const LrSchedule& schedule,
                       const TrainOptions& options);

// Seed for step `step` of a run seeded with `seed` (SplitMix64 of both).
uint64_t seed_for_step(uint64_t seed, int64_t step);

}  // namespace corrtrack
