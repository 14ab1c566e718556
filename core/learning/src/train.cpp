// The training loop shared by every method: non-finite-loss guard, atomic checkpoints with
// optimiser state, --resume, metrics.jsonl and the progress line. One TrainingRun object holds
// the state of a run; each of its functions does one part (resume, save, one step, metrics).
#include "corrtrack/train.h"
#include "corrtrack/encoder_precision.h"

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace corrtrack {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// Every batch-norm layer of `root` in eval mode: it normalises with its running statistics and
// leaves them as they are; its scale and shift still train.
void batch_norm_freeze(torch::nn::Module& root) {
  for (auto& m : root.modules()) {
    if (m->as<SyncBatchNormImpl>() || m->as<torch::nn::BatchNorm2dImpl>() || m->as<torch::nn::BatchNorm1dImpl>()) m->eval();
  }
}

std::string format_duration(double s) {
  if (!std::isfinite(s) || s < 0) return "?";
  const int64_t t = int64_t(s + 0.5);
  std::ostringstream os;
  if (t >= 3600) os << t / 3600 << "h" << (t % 3600) / 60 << "m";
  else if (t >= 60) os << t / 60 << "m" << t % 60 << "s";
  else os << t << "s";
  return os.str();
}

// Keeps only the metrics lines of steps <= `step` (a killed run may have logged past its last
// checkpoint) and drops a torn last line.
void metrics_truncate(const std::string& path, int64_t step) {
  std::ifstream in(path);
  if (!in) return;
  std::string line, kept;
  while (std::getline(in, line)) {
    try {
      const auto j = json::parse(line);
      if (j.value("step", int64_t(-1)) <= step) kept += line + "\n";
    } catch (const json::exception&) {
      // torn line from a killed process: dropped
    }
  }
  file_write_atomic(path, kept);
}

void metrics_append(const std::string& path, const json& line) {
  std::ofstream out(path, std::ios::app);
  out << line.dump() << "\n";
  out.flush();
  if (!out) throw Error("cannot append to '" + path + "'");
}

json parse_object(const std::string& text, const std::string& what) {
  try {
    auto j = json::parse(text);
    if (!j.is_object()) throw Error(what + " is not a JSON object");
    return j;
  } catch (const json::exception& e) {
    throw Error(what + " is not valid JSON: " + e.what());
  }
}

bool same_json(const std::string& a, const std::string& b) { return json::parse(a) == json::parse(b); }

// Loss and metrics averaged over the steps since the last metrics line.
struct MetricsWindow {
  double loss = 0.0;
  int64_t n = 0;
  std::vector<std::pair<std::string, double>> metrics;

  void add(double l, const std::vector<std::pair<std::string, double>>& m) {
    loss += l;
    ++n;
    if (metrics.empty()) metrics = m;
    else for (size_t i = 0; i < m.size() && i < metrics.size(); ++i) metrics[i].second += m[i].second;
  }
  double mean_loss() const { return n > 0 ? loss / n : 0.0; }
};

class TrainingRun {
 public:
  TrainingRun(TrainableMethod& method, const OptimizerConfig& opt_cfg, const LrSchedule& schedule, const TrainOptions& o)
      : m_method(method), m_opt_cfg(opt_cfg), m_schedule(schedule), m_o(o), m_log(log_get("core")) {
    train_check(opt_cfg, schedule, o);
    dir_ensure_writable(o.out_dir);
    m_ckpt = (fs::path(o.out_dir) / "last.ckpt").string();
    m_metrics = (fs::path(o.out_dir) / "metrics.jsonl").string();
    m_command = parse_object(o.command_json, "training command");
  }

  TrainSummary run() {
    m_main = m_dist.is_main();
    m_start = m_o.resume ? resume_model() : fresh_start();
    module_broadcast(m_dist, m_method.module());   // every rank starts from rank 0's weights
    batch_norm_synchronise(m_method.module(), m_method.distributed_group());
    m_method.set_device(m_o.device);
    m_params = m_method.trainable_parameters();
    m_opt = std::make_unique<Optimizer>(m_params, m_opt_cfg);
    if (m_o.resume) resume_optimizer();
    m_saved_step = m_o.resume ? m_start : -1;
    m_summary.first_step = m_start;
    m_summary.checkpoint = m_ckpt;
    m_t0 = time_now_s();
    m_done = m_start;
    for (int64_t step = m_start; step < m_o.steps; ++step) {
      if (should_stop()) break;
      train_step(step);
    }
    if (m_window.n > 0) m_summary.final_loss = m_window.mean_loss();
    if (m_saved_step != m_done && m_done > m_start) save(m_done);
    batch_norm_synchronise(m_method.module(), nullptr);
    return finish();
  }

 private:
  // --resume: checks that RUN/last.ckpt is this method with this architecture, loads it, drops
  // metrics past its step and any temporary file of a killed write; returns its step.
  int64_t resume_model() {
    const CheckpointInfo saved = checkpoint_info_read(m_ckpt);
    if (saved.method != m_method.name()) {
      throw SettingError("resume", ": '" + m_ckpt + "' was trained with method '" + saved.method + "', not '" + m_method.name() + "'");
    }
    const CheckpointInfo mine = m_method.checkpoint_info();
    const bool encoder_differs = mine.encoder && saved.encoder && !(*mine.encoder == *saved.encoder);
    const bool image_differs = !mine.image_encoder_json.empty() && !saved.image_encoder_json.empty() &&
                               !same_json(mine.image_encoder_json, saved.image_encoder_json);
    if (encoder_differs || image_differs) {
      throw SettingError("resume", ": '" + m_ckpt + "' holds another encoder architecture than this run's options");
    }
    checkpoint_load(m_ckpt, m_method.module());
    const int64_t start = saved.step;
    if (start > m_o.steps) {
      throw SettingError("resume", ": '" + m_ckpt + "' is at step " + std::to_string(start) + ", past the run's " + std::to_string(m_o.steps) + " steps");
    }
    if (!m_main) return start;
    metrics_truncate(m_metrics, start);
    // A process killed while writing a checkpoint leaves its temporary file; the rename never happened.
    for (const auto& e : fs::directory_iterator(m_o.out_dir)) {
      if (e.path().filename().string().rfind(".last.ckpt.tmp-", 0) == 0) fs::remove(e.path());
    }
    m_log->info("resuming {} from step {} of {}", m_ckpt, start, m_o.steps);
    return start;
  }

  int64_t fresh_start() {
    if (m_main && fs::exists(m_metrics)) fs::remove(m_metrics);
    return 0;
  }

  void resume_optimizer() {
    torch::serialize::InputArchive state;
    if (!checkpoint_read_archive(m_ckpt, "optimizer", state)) {
      throw SettingError("resume", ": '" + m_ckpt + "' has no optimiser state (it is an exported model, not a training run)");
    }
    try {
      m_opt->load(state);
    } catch (const c10::Error& e) {
      throw SettingError("resume", ": the optimiser state in '" + m_ckpt + "' does not match this run: " + e.what_without_backtrace());
    }
  }

  CheckpointInfo info_at(int64_t step) const {
    CheckpointInfo info = m_method.checkpoint_info();
    info.step = step;
    info.record["total_steps"] = m_o.steps;
    info.record["seed"] = m_o.seed;
    info.record["optimizer"] = json::parse(optimizer_config_to_json(m_opt_cfg));
    info.record["schedule"] = {{"kind", m_schedule.kind}, {"warmup_steps", m_schedule.warmup_steps},
                               {"milestones", m_schedule.milestones}, {"gamma", m_schedule.gamma}};
    info.record["command"] = m_command;
    info.record["device"] = m_o.device.str();
    info.record["precision"] = m_o.bf16 ? "bf16" : "fp32";
    if (m_o.freeze_batch_norm) info.record["batch_norm"] = "frozen";
    info.record["world_size"] = m_dist.world_size();
    return info;
  }

  // Writes RUN/last.ckpt atomically with the optimiser state. Parameters are written from the
  // CPU so that a GPU-trained checkpoint loads anywhere.
  void save(int64_t step) {
    m_saved_step = step;
    if (!m_main) return;   // rank 0 writes for every rank
    const bool on_gpu = !m_o.device.is_cpu();
    if (on_gpu) m_method.module().to(torch::kCPU);
    torch::serialize::OutputArchive state;
    m_opt->save(state);
    try {
      checkpoint_save(m_ckpt, m_method.module(), info_at(step), {{"optimizer", &state}});
    } catch (...) {
      if (on_gpu) m_method.module().to(m_o.device);
      throw;
    }
    if (on_gpu) m_method.module().to(m_o.device);
    if (!m_o.on_checkpoint) return;
    try {
      m_o.on_checkpoint(step);
    } catch (const std::exception& e) {
      m_log->warn("after the checkpoint of step {}: {}", step, error_message(e));
    }
  }

  // Cancel or the time budget; with several ranks, any rank's reason stops them all at once.
  // Without either (the same options on every rank) there is nothing to agree on: no exchange.
  bool should_stop() {
    if (!m_o.cancel && !(m_o.time_budget_s > 0.0)) return false;
    const bool cancel = m_o.cancel && m_o.cancel();
    const bool budget = m_o.time_budget_s > 0.0 && time_now_s() - m_t0 >= m_o.time_budget_s;
    if (m_dist.world_size() == 1) {
      m_summary.cancelled = cancel;
      m_summary.budget_reached = !cancel && budget;
      return cancel || budget;
    }
    std::vector<torch::Tensor> flags{torch::tensor({cancel ? 1.0f : 0.0f, budget ? 1.0f : 0.0f})};
    m_dist.all_reduce_sum(flags);
    m_summary.cancelled = flags[0][0].item<float>() > 0;
    m_summary.budget_reached = !m_summary.cancelled && flags[0][1].item<float>() > 0;
    return m_summary.cancelled || m_summary.budget_reached;
  }

  // The loss, sample count and metrics of the global batch: summed over ranks (means of the
  // ranks' means for the loss and metrics, equal shares of the batch on every rank).
  void globalise(double& loss, StepOutput& out) {
    if (m_dist.world_size() == 1) return;
    std::vector<double> v{loss, double(out.samples)};
    for (auto& m : out.metrics) v.push_back(m.second);
    std::vector<torch::Tensor> t{torch::tensor(v, torch::kDouble)};
    m_dist.all_reduce_sum(t);
    auto a = t[0].accessor<double, 1>();
    const double w = m_dist.world_size();
    loss = a[0] / w;
    out.samples = int64_t(std::llround(a[1]));
    for (size_t i = 0; i < out.metrics.size(); ++i) out.metrics[i].second = a[int64_t(i) + 2] / w;
  }

  // Global gradient norm (squared when not clipping: only its finiteness matters then).
  double gradient_norm() {
    if (m_o.clip_grad_norm > 0.0) return torch::nn::utils::clip_grad_norm_(m_params, m_o.clip_grad_norm);
    torch::NoGradGuard ng;
    auto total = torch::zeros({}, torch::TensorOptions().device(m_o.device));
    for (auto& p : m_params) if (p.grad().defined()) total += p.grad().pow(2).sum();
    return total.item<double>();
  }

  // One step with a generator seeded from (seed, step), so that a resumed run draws the same batches.
  void train_step(int64_t step) {
    const double lr = m_schedule.lr_at(m_opt_cfg.lr, step, m_o.steps);
    m_opt->set_lr(lr);
    const uint64_t step_seed = seed_for_step(m_o.seed, step);
    torch::manual_seed(step_seed);
    torch::Generator g(at::make_generator<at::CPUGeneratorImpl>(step_seed));
    m_method.module().train();
    if (m_o.freeze_batch_norm) batch_norm_freeze(m_method.module());
    m_opt->zero_grad();
    StepOutput out = [&] {
      EncoderBf16Scope precision(m_o.bf16);
      return m_method.step(step, g);
    }();
    double loss = out.loss.detach().to(torch::kCPU).item<double>();
    const double t_sync = time_now_s();
    globalise(loss, out);   // every rank decides alike below
    m_sync_s += time_now_s() - t_sync;
    bool finite = std::isfinite(loss);
    if (finite) {
      out.loss.backward();
      const double t_grad = time_now_s();
      gradients_average(m_dist, m_params);
      m_sync_s += time_now_s() - t_grad;
      finite = std::isfinite(gradient_norm());
    }
    m_done = step + 1;
    if (!finite) return skip_step(step, loss);
    m_consecutive_bad = 0;
    m_opt->step();
    m_method.after_step(step, m_o.steps);
    m_samples += out.samples;
    m_window.add(loss, out.metrics);
    if (m_main && (m_done % m_o.log_every == 0 || m_done == m_o.steps)) write_metrics(lr);
    if (m_done % m_o.checkpoint_every == 0 || m_done == m_o.steps) save(m_done);
    report_progress(loss, lr);
  }

  // A non-finite loss or gradient: the step is skipped; too many in a row stop the run.
  void skip_step(int64_t step, double loss) {
    ++m_summary.skipped_steps;
    m_log->warn("step {}: the loss or its gradient is not finite ({}); step skipped", step + 1, loss);
    if (++m_consecutive_bad < m_o.max_bad_steps) return;
    const std::string kept = m_saved_step >= 0
                                 ? "the last good checkpoint '" + m_ckpt + "' (step " + std::to_string(m_saved_step) + ") is kept"
                                 : "no checkpoint had been written yet";
    throw Error("training stopped: the loss was not finite for " + std::to_string(m_consecutive_bad) +
                " steps in a row (at step " + std::to_string(step + 1) + "; a lower learning rate?); " + kept);
  }

  double elapsed() const { return time_now_s() - m_t0; }
  double steps_per_s() const { return elapsed() > 0 ? (m_done - m_start) / elapsed() : 0.0; }
  double samples_per_s() const { return elapsed() > 0 ? m_samples / elapsed() : 0.0; }

  void write_metrics(double lr) {
    json line = {{"step", m_done}, {"loss", m_window.mean_loss()}, {"lr", lr}, {"elapsed_s", elapsed()},
                 {"steps_per_s", steps_per_s()}, {"samples_per_s", samples_per_s()}};
    for (auto& [k, v] : m_window.metrics) line[k] = v / m_window.n;
    metrics_append(m_metrics, line);
    m_summary.final_loss = m_window.mean_loss();
    m_window = MetricsWindow();
  }

  void report_progress(double loss, double lr) {
    if (!m_main) return;
    const double rate = steps_per_s();
    ProgressInfo info{m_done, m_o.steps, rate, rate > 0 ? (m_o.steps - m_done) / rate : 0.0, "steps"};
    if (m_o.progress) return m_o.progress(info);
    if (time_now_s() - m_last_log_t < 1.0 && m_done != m_o.steps) return;
    m_last_log_t = time_now_s();
    m_log->info("step {}/{}  loss {:.4f}  lr {:.2e}  {:.2f} steps/s  {:.1f} samples/s  ETA {}", m_done, m_o.steps, loss, lr,
                rate, samples_per_s(), format_duration(info.eta_s));
  }

  TrainSummary finish() {
    m_summary.last_step = m_done;
    m_summary.seconds = elapsed();
    const int64_t ran = m_done - m_start;
    m_summary.samples_per_s = m_summary.seconds > 0 ? m_samples / m_summary.seconds : 0.0;
    m_summary.ms_per_step = ran > 0 ? 1000.0 * m_summary.seconds / ran : 0.0;
    m_summary.sync_ms_per_step = ran > 0 ? 1000.0 * m_sync_s / ran : 0.0;
    return m_summary;
  }

  TrainableMethod& m_method;
  Distributed& m_dist = m_method.distributed();
  bool m_main = true;
  const OptimizerConfig& m_opt_cfg;
  const LrSchedule& m_schedule;
  const TrainOptions& m_o;
  std::shared_ptr<spdlog::logger> m_log;
  std::string m_ckpt, m_metrics;
  json m_command;
  std::vector<torch::Tensor> m_params;
  std::unique_ptr<Optimizer> m_opt;
  TrainSummary m_summary;
  MetricsWindow m_window;
  int64_t m_start = 0, m_done = 0, m_saved_step = -1, m_samples = 0, m_consecutive_bad = 0;
  double m_t0 = 0.0, m_last_log_t = -1e9, m_sync_s = 0.0;
};

}  // namespace

void train_check(const OptimizerConfig& opt, const LrSchedule& schedule, const TrainOptions& o) {
  if (o.steps <= 0) throw SettingError("steps", "must be positive");
  if (o.out_dir.empty()) throw Error("the run needs an output folder");
  if (!(o.clip_grad_norm >= 0.0) || !std::isfinite(o.clip_grad_norm)) throw SettingError("clip-grad", "must be >= 0 (0 = off)");
  if (!(o.time_budget_s >= 0.0) || !std::isfinite(o.time_budget_s)) throw SettingError("time-budget", "must be >= 0 seconds (0 = off)");
  if (o.checkpoint_every < 1) throw SettingError("checkpoint-every", "must be >= 1 step");
  if (o.log_every < 1) throw SettingError("log-every", "must be >= 1 step");
  schedule.lr_at(opt.lr, 0, o.steps);  // the schedule's kind and values
  optimizer_config_validate(opt);
  const std::string ckpt = (fs::path(o.out_dir) / "last.ckpt").string();
  if (o.resume && !fs::exists(ckpt)) throw SettingError("resume", ": '" + ckpt + "' does not exist; start the run without resuming");
  if (!o.resume && fs::exists(ckpt)) {
    throw SettingError("out", ": '" + o.out_dir + "' already holds a run (last.ckpt): resume it, or choose another folder");
  }
}

TrainSummary train_run(TrainableMethod& method, const OptimizerConfig& opt, const LrSchedule& schedule,
                       const TrainOptions& options) {
  return TrainingRun(method, opt, schedule, options).run();
}

}  // namespace corrtrack
