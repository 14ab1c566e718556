// CorrTrack training machinery shared by the video trackers and the image methods: optimisers
// (SGD, Adam, LARS), learning-rate schedules, the local-window attention operation, tensor
// augmentations and the training loop (atomic checkpoints, --resume, metrics.jsonl, progress).
#pragma once

#include "corrtrack/core.h"

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
};
std::string optimizer_config_to_json(const OptimizerConfig& c);

// One optimiser behind a small interface. LARS is SGD with momentum on gradients rescaled per
// tensor by eta * |w| / (|g| + wd * |w|) (You et al. 2017); biases and 1-d tensors are not rescaled.
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
// Local-window attention (CorrFlow/MAST's restricted attention, used in training and inference)
// ---------------------------------------------------------------------------------------------

// Scores of every query cell against the (2r+1)^2 key cells around the same position:
// q, k [B, C, H, W] -> [B, (2r+1)^2, H, W], offsets in row-major order (dy outer, dx inner),
// scaled by `scale`; keys outside the frame get -inf. Memory O(B (2r+1)^2 H W), never O(C (2r+1)^2 H W).
// With dilation d the offsets are d * (dy, dx) (MAST's ROI localisation).
torch::Tensor local_window_scores(const torch::Tensor& q, const torch::Tensor& k, int radius, double scale = 1.0,
                                  int dilation = 1);
// Weighted sum of values over the same windows: w [B, (2r+1)^2, H, W], v [B, D, H, W] -> [B, D, H, W].
torch::Tensor local_window_gather(const torch::Tensor& w, const torch::Tensor& v, int radius, int dilation = 1);
// softmax over each window of scale * q.k, then the weighted sum of v.
torch::Tensor local_window_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                     int radius, double scale = 1.0);

// ---------------------------------------------------------------------------------------------
// Augmentations on float tensors [..., C, H, W] in [0, 1], driven by an explicit generator
// ---------------------------------------------------------------------------------------------

struct CropBox {
  int x = 0, y = 0, width = 0, height = 0;
};
// A random box covering a fraction in [min_scale, max_scale] of the area with aspect ratio in
// [min_ratio, max_ratio] (clamped to the image), as RandomResizedCrop draws it.
CropBox crop_box_random(int width, int height, double min_scale, double max_scale, double min_ratio,
                        double max_ratio, torch::Generator& gen);
// Crops `box` from x [..., C, H, W] and resizes it bilinearly to out_h x out_w.
torch::Tensor crop_resize(const torch::Tensor& x, const CropBox& box, int out_h, int out_w);
// Brightness, contrast and saturation factors drawn from [1 - s, 1 + s] each, applied to x.
torch::Tensor colour_jitter(const torch::Tensor& x, double strength, torch::Generator& gen);
// Uniform draw in [lo, hi) from the generator.
double random_uniform(torch::Generator& gen, double lo = 0.0, double hi = 1.0);
int64_t random_int(torch::Generator& gen, int64_t n);   // 0..n-1

// k-means (Lloyd iterations, k-means++ seeding from `gen`) of points [N, D] -> centres [k, D].
// An empty cluster is re-seeded with the point farthest from its centre (DeepCluster's fix).
torch::Tensor kmeans(const torch::Tensor& points, int k, int iterations, torch::Generator& gen);
// The Lloyd iterations alone, from given initial centres [k, D] (empty clusters re-seeded).
torch::Tensor kmeans_lloyd(const torch::Tensor& points, torch::Tensor centres, int iterations);
// Index of the nearest centre for every point: [N, D], [k, D] -> [N] (long).
torch::Tensor kmeans_assign(const torch::Tensor& points, const torch::Tensor& centres);

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
  virtual void set_device(torch::Device device) = 0;
  // Samples one batch with `gen` and returns its loss (forward pass only).
  virtual StepOutput step(int64_t step, torch::Generator& gen) = 0;
  // Called after each optimiser step (EMA targets, queues, ...).
  virtual void after_step(int64_t /*step*/, int64_t /*total_steps*/) {}
  // JSON object text: method, encoder config, input convention, protocol hints, method state.
  virtual std::string metadata_json() const = 0;
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
  ProgressCallback progress;           // default: a throttled log line
  CancelCallback cancel;
};

struct TrainSummary {
  int64_t first_step = 0;   // step the run started at (> 0 after --resume)
  int64_t last_step = 0;    // steps completed
  int64_t skipped_steps = 0;
  double seconds = 0.0;
  double samples_per_s = 0.0;
  double ms_per_step = 0.0;
  double final_loss = 0.0;  // mean over the last log window
  bool cancelled = false;
  bool budget_reached = false;
  std::string checkpoint;
};

// Runs the loop: per step a generator seeded from (seed, step) so that a resumed run draws the
// same batches, warm-up/schedule, non-finite losses skipped (the run stops with an Error after
// max_bad_steps in a row, the last good checkpoint kept), checkpoints written atomically with
// the optimiser state and metadata, metrics appended to metrics.jsonl.
TrainSummary train_run(TrainableMethod& method, const OptimizerConfig& opt, const LrSchedule& schedule,
                       const TrainOptions& options);

// Seed for step `step` of a run seeded with `seed` (SplitMix64 of both).
uint64_t seed_for_step(uint64_t seed, int64_t step);

}  // namespace corrtrack
