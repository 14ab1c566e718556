// CorrTrack core: errors, logging, progress, resource measurement, atomic files and the
// from-scratch ResNet encoders shared by the video trackers and the image methods.
#pragma once

#include <torch/torch.h>

#include "corrtrack/batch_norm.h"

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace spdlog { class logger; }

namespace corrtrack {

// ---------------------------------------------------------------------------------------------
// Errors and logging
// ---------------------------------------------------------------------------------------------

// Every user-facing failure: the message names the file or argument and says what was wrong.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

// A setting with a bad value. what() is "<setting> <problem>" ("clip-frames must be at least 2"),
// which the Studio shows as it is; the command names its option instead ("--clip-frames ...").
// Setting names are the options' names without the dashes.
class SettingError : public Error {
 public:
  SettingError(const std::string& setting, const std::string& problem)
      : Error(setting + (problem.rfind(":", 0) == 0 ? "" : " ") + problem), m_setting(setting) {}
  const std::string& setting() const { return m_setting; }
 private:
  std::string m_setting;
};

// The message of any exception as one line: LibTorch errors without their backtrace, newlines
// folded, allocation failures said in words. What the command prints and the Studio shows.
std::string error_message(const std::exception& e);

// Logger of one module ("core", "video", "tracking", "app"), created on first use.
std::shared_ptr<spdlog::logger> log_get(const std::string& module);
// Sets the level of every module logger: 0 quiet (errors only), 1 normal, 2 verbose (debug).
void log_set_verbosity(int verbosity);
int log_verbosity();

// ---------------------------------------------------------------------------------------------
// Resources
// ---------------------------------------------------------------------------------------------

// Peak resident set size of this process in bytes (VmHWM), 0 where unavailable.
int64_t peak_rss_bytes();
// Current resident set size in bytes (VmRSS), 0 where unavailable.
int64_t current_rss_bytes();
// Resets the peak RSS counter (Linux: writes 5 to /proc/self/clear_refs); returns false if not possible.
bool peak_rss_reset();
// Call first in main(): OpenMP's idle threads wait passively (sleep) unless OMP_WAIT_POLICY is
// already set. libgomp reads the policy when it loads, before main, so the process re-executes
// itself once with the variable set. Spinning waiters made two jobs side by side each ~4.7x slower
// on 2 cores (passive: ~1.8x, one job alone unchanged). Returns only when no re-exec happened.
void openmp_passive_wait_ensure(char** argv);
// OMP_WAIT_POLICY as this process sees it ("default" when unset); benchmarks report it.
std::string omp_wait_policy();
// Sets intra-op threads for LibTorch; n <= 0 means all hardware threads; more than 4 per core is
// refused (SettingError "threads").
void threads_set(int n);
// "cpu" | "cuda" | "auto" (CUDA when this build and machine have it) -> device; throws Error for
// another name or for cuda without a CUDA device. On CUDA, cuDNN may pick its fastest kernels.
torch::Device device_parse(const std::string& name);

// Monotonic seconds since an arbitrary origin.
double time_now_s();

// Accumulates wall time per named stage, for benchmarks ("decode", "features", ...).
class StageTimer {
 public:
  void add(const std::string& stage, double seconds);
  double get(const std::string& stage) const;
  const std::vector<std::pair<std::string, double>>& stages() const { return m_stages; }
 private:
  std::vector<std::pair<std::string, double>> m_stages;
};

// Scope guard that adds its lifetime to a StageTimer stage (no-op when timer is null).
class StageScope {
 public:
  StageScope(StageTimer* timer, const char* stage) : m_timer(timer), m_stage(stage), m_t0(time_now_s()) {}
  ~StageScope() { if (m_timer) m_timer->add(m_stage, time_now_s() - m_t0); }
  StageScope(const StageScope&) = delete;
  StageScope& operator=(const StageScope&) = delete;
 private:
  StageTimer* m_timer;
  const char* m_stage;
  double m_t0;
};

// Progress of a long job: rate and ETA, reported to a callback or a throttled log line.
struct ProgressInfo {
  int64_t done = 0;
  int64_t total = 0;       // 0 when unknown
  double rate = 0.0;       // items per second over the whole job
  double eta_s = 0.0;      // seconds left, 0 when unknown
  std::string unit;        // "frames", "steps", ...
};
using ProgressCallback = std::function<void(const ProgressInfo&)>;
// Returns true when the job should stop (user pressed Cancel); checked between items.
using CancelCallback = std::function<bool()>;

class ProgressMeter {
 public:
  ProgressMeter(int64_t total, std::string unit, ProgressCallback cb = nullptr);
  // Records n more finished items; calls the callback, or logs at most once per second.
  void step(int64_t n = 1);
  ProgressInfo info() const;
 private:
  int64_t m_total;
  int64_t m_done = 0;
  std::string m_unit;
  ProgressCallback m_cb;
  double m_t0;
  double m_last_log = -1e9;
};

// ---------------------------------------------------------------------------------------------
// Files
// ---------------------------------------------------------------------------------------------

// Writes `bytes` to `path` through a temporary file in the same folder and a rename, so that
// readers never see a half-written file. Throws Error naming the path on failure.
void file_write_atomic(const std::string& path, const std::string& bytes);
// The file an atomic write of `path` replaces: `path` itself, or the file a symlink at `path`
// points to (the link is kept). Throws Error naming `path` when that is not a regular file
// (device, pipe, socket, folder): those are never replaced.
std::string file_replace_target(const std::string& path);
// Temporary sibling name used for atomic writes ("dir/.name.tmp-PID"), next to the file replaced.
std::string file_temp_sibling(const std::string& path);
// Renames tmp over path; throws Error naming both on failure.
void file_commit(const std::string& tmp, const std::string& path);
// Creates a folder (and parents) and checks that it is writable; throws Error naming it.
void dir_ensure_writable(const std::string& dir);

// Output folder filled through a hidden staging folder: files appear in the final folder only
// on commit(), so an interrupted job never leaves a partial result that looks complete.
class StagedFolder {
 public:
  explicit StagedFolder(const std::string& final_dir);
  ~StagedFolder();  // removes the staging folder unless committed (and the final one if it made it and it is empty)
  StagedFolder(const StagedFolder&) = delete;
  StagedFolder& operator=(const StagedFolder&) = delete;
  const std::string& path() const { return m_stage; }   // write files here
  const std::string& final_path() const { return m_final; }
  void commit();                                          // moves every file into the final folder
 private:
  std::string m_final, m_stage;
  bool m_committed = false;
  bool m_created_final = false;   // the final folder did not exist: removed again if left empty
};

// ---------------------------------------------------------------------------------------------
// Checkpoints: a module's parameters and buffers plus JSON metadata (method, encoder config,
// input normalisation, step, ...), written atomically.
// ---------------------------------------------------------------------------------------------

void checkpoint_save(const std::string& path, torch::nn::Module& module, const std::string& metadata_json);
// The same with extra named sub-archives (the optimiser state of a training run, ...).
void checkpoint_save(const std::string& path, torch::nn::Module& module, const std::string& metadata_json,
                     const std::vector<std::pair<std::string, torch::serialize::OutputArchive*>>& extras);
// Reads the sub-archive `key` of a checkpoint into `out`; false when the checkpoint has none.
bool checkpoint_read_archive(const std::string& path, const std::string& key, torch::serialize::InputArchive& out);
// Metadata JSON text of a checkpoint; throws Error naming the file if it is not a CorrTrack checkpoint.
std::string checkpoint_metadata(const std::string& path);
// Loads parameters and buffers into a module of the matching architecture (or, with `submodule`,
// from that child of the saved model, e.g. "encoder"); throws Error naming the file when they do not match.
void checkpoint_load(const std::string& path, torch::nn::Module& module, const std::string& submodule = "");

// ---------------------------------------------------------------------------------------------
// Encoders
// ---------------------------------------------------------------------------------------------

// ResNet configuration. Strides and dilations are per stage (layer1..layer4); `num_stages`
// truncates the network (3 = up to res3/layer3 as CRW uses at test time).
struct ResNetConfig {
  int depth = 18;                       // 18 (BasicBlock) or 50 (Bottleneck)
  int in_channels = 3;
  int stem_stride = 2;                  // conv1 stride
  bool max_pool = true;                 // 3x3/2 max-pool after conv1
  std::vector<int> strides{1, 2, 2, 2};
  std::vector<int> dilations{1, 1, 1, 1};
  std::vector<int> widths{64, 128, 256, 512};
  int num_stages = 4;
  bool reflect_pad = false;             // reflect padding in 3x3 convs (CRW)
  int head_channels = 0;                // > 0: a final conv to this many channels (CorrFlow/MAST, TimeCycle)
  int head_kernel = 3;                  // its kernel: 3 (CorrFlow/MAST) or 1 (TimeCycle)

  // Output stride = stem * pool * product of used stage strides.
  int output_stride() const;
  // Channels of the last used stage.
  int output_channels() const;
  // The stride-8 res3 ResNet-18 of CRW (layer3 stride 1, layer4 dropped).
  static ResNetConfig crw_res3();
  // CorrFlow/MAST's stride-4 net: conv1 stride 2, no max-pool, layer2 stride 2, layers 3-4 with
  // 256 channels at stride 1, then a 3x3 conv to 64 channels.
  static ResNetConfig stride4_64d();
  // TimeCycle's stride-8 net: res4 (layer3) at stride 1, layer4 dropped, a 1x1 conv to 512
  // channels; depth 50 as published, 18 for CPU budgets.
  static ResNetConfig timecycle_res4(int depth);

  bool operator==(const ResNetConfig& o) const;
};

class ResNetImpl : public torch::nn::Module {
 public:
  explicit ResNetImpl(const ResNetConfig& cfg);
  // x: [B, in_channels, H, W] -> [B, output_channels, ceil(H/stride), ceil(W/stride)].
  torch::Tensor forward(torch::Tensor x);
  const ResNetConfig& config() const { return m_cfg; }
 private:
  ResNetConfig m_cfg;
  torch::nn::Conv2d m_conv1{nullptr};
  SyncBatchNorm2d m_bn1{nullptr};   // synchronised across processes in data-parallel training
  std::vector<torch::nn::Sequential> m_stages;
  torch::nn::Conv2d m_head{nullptr};
};
TORCH_MODULE(ResNet);

// Deterministic initialisation (Kaiming normal for convs, BN to identity) from a seed.
void resnet_init(ResNet& net, uint64_t seed);

}  // namespace corrtrack
