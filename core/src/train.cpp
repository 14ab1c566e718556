// The training loop and optimisers shared by every method: schedules, non-finite-loss guard,
// atomic checkpoints with optimiser state, --resume, metrics.jsonl and the progress line.
#include "corrtrack/train.h"

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace corrtrack {

namespace fs = std::filesystem;
using nlohmann::json;

// ---------------------------------------------------------------------------------------------
// Optimisers
// ---------------------------------------------------------------------------------------------

std::string optimizer_config_to_json(const OptimizerConfig& c) {
  return json{{"name", c.name}, {"lr", c.lr}, {"momentum", c.momentum}, {"weight_decay", c.weight_decay},
              {"beta1", c.beta1}, {"beta2", c.beta2}, {"lars_eta", c.lars_eta}}
      .dump();
}

Optimizer::Optimizer(std::vector<torch::Tensor> params, const OptimizerConfig& cfg) : m_cfg(cfg), m_params(params) {
  if (!(cfg.lr > 0.0) || !std::isfinite(cfg.lr)) throw Error("--lr must be a positive number, got " + std::to_string(cfg.lr));
  if (cfg.name == "adam") {
    m_impl = std::make_unique<torch::optim::Adam>(
        params, torch::optim::AdamOptions(cfg.lr).betas({cfg.beta1, cfg.beta2}).weight_decay(cfg.weight_decay));
  } else if (cfg.name == "sgd") {
    m_impl = std::make_unique<torch::optim::SGD>(
        params, torch::optim::SGDOptions(cfg.lr).momentum(cfg.momentum).weight_decay(cfg.weight_decay));
  } else if (cfg.name == "lars") {
    // Weight decay is folded into the rescaled gradient in step().
    m_impl = std::make_unique<torch::optim::SGD>(params, torch::optim::SGDOptions(cfg.lr).momentum(cfg.momentum));
  } else {
    throw Error("unknown optimiser '" + cfg.name + "': use sgd, adam or lars");
  }
}

Optimizer::~Optimizer() = default;

void Optimizer::zero_grad() { m_impl->zero_grad(); }

void Optimizer::step() {
  if (m_cfg.name == "lars") {
    torch::NoGradGuard ng;
    for (auto& p : m_params) {
      if (!p.grad().defined() || p.dim() <= 1) continue;  // biases and norm parameters: plain SGD
      auto g = p.grad();
      const double w_norm = p.norm().item<double>();
      const double g_norm = g.norm().item<double>();
      if (m_cfg.weight_decay > 0.0) g.add_(p, m_cfg.weight_decay);
      if (w_norm > 0.0 && g_norm > 0.0) g.mul_(m_cfg.lars_eta * w_norm / (g_norm + m_cfg.weight_decay * w_norm));
    }
  }
  m_impl->step();
}

void Optimizer::set_lr(double lr) {
  for (auto& group : m_impl->param_groups()) group.options().set_lr(lr);
}

void Optimizer::save(torch::serialize::OutputArchive& archive) const { m_impl->save(archive); }

void Optimizer::load(torch::serialize::InputArchive& archive) {
  m_impl->load(archive);
  // States come back on the CPU (checkpoints always load there); move them next to their parameters.
  if (m_params.empty()) return;
  const auto device = m_params.front().device();
  if (device.is_cpu()) return;
  for (auto& [key, state] : m_impl->state()) {
    if (auto* adam = dynamic_cast<torch::optim::AdamParamState*>(state.get())) {
      adam->exp_avg(adam->exp_avg().to(device));
      adam->exp_avg_sq(adam->exp_avg_sq().to(device));
      if (adam->max_exp_avg_sq().defined()) adam->max_exp_avg_sq(adam->max_exp_avg_sq().to(device));
    } else if (auto* sgd = dynamic_cast<torch::optim::SGDParamState*>(state.get())) {
      if (sgd->momentum_buffer().defined()) sgd->momentum_buffer(sgd->momentum_buffer().to(device));
    }
  }
}

double LrSchedule::lr_at(double base_lr, int64_t step, int64_t total_steps) const {
  if (warmup_steps > 0 && step < warmup_steps) return base_lr * double(step + 1) / double(warmup_steps);
  if (kind == "constant") return base_lr;
  if (kind == "cosine") {
    const double span = double(std::max<int64_t>(1, total_steps - warmup_steps));
    const double t = std::min(1.0, double(step - warmup_steps) / span);
    const double floor = base_lr * min_lr_fraction;
    return floor + (base_lr - floor) * 0.5 * (1.0 + std::cos(M_PI * t));
  }
  if (kind == "step") {
    double lr = base_lr;
    for (int64_t m : milestones) if (step >= m) lr *= gamma;
    return lr;
  }
  throw Error("unknown learning-rate schedule '" + kind + "': use constant, cosine or step");
}

uint64_t seed_for_step(uint64_t seed, int64_t step) {
  uint64_t z = seed * 0x9E3779B97F4A7C15ull + uint64_t(step) + 0x632BE59BD9B4E019ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// ---------------------------------------------------------------------------------------------
// Training loop
// ---------------------------------------------------------------------------------------------

namespace {

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

}  // namespace

TrainSummary train_run(TrainableMethod& method, const OptimizerConfig& opt_cfg, const LrSchedule& schedule,
                       const TrainOptions& o) {
  auto log = log_get("core");
  if (o.steps <= 0) throw Error("--steps must be positive");
  if (o.out_dir.empty()) throw Error("--out is required");
  dir_ensure_writable(o.out_dir);
  const std::string ckpt = (fs::path(o.out_dir) / "last.ckpt").string();
  const std::string metrics_path = (fs::path(o.out_dir) / "metrics.jsonl").string();
  const json command = parse_object(o.command_json, "training command");
  schedule.lr_at(opt_cfg.lr, 0, o.steps);  // validates the schedule kind before any work

  TrainSummary summary;
  int64_t start = 0;
  if (o.resume) {
    if (!fs::exists(ckpt)) throw Error("--resume: '" + ckpt + "' does not exist; start the run without --resume");
    const json meta = parse_object(checkpoint_metadata(ckpt), "metadata of '" + ckpt + "'");
    const std::string was = meta.value("method", std::string("?"));
    if (was != method.name()) {
      throw Error("--resume: '" + ckpt + "' was trained with method '" + was + "', not '" + method.name() + "'");
    }
    const json mine = parse_object(method.metadata_json(), "method metadata");
    for (const char* key : {"encoder", "image_encoder"}) {
      if (mine.contains(key) && meta.contains(key) && mine[key] != meta[key]) {
        throw Error("--resume: '" + ckpt + "' holds another encoder architecture than this run's options");
      }
    }
    checkpoint_load(ckpt, method.module());
    start = meta.value("step", int64_t(0));
    if (start > o.steps) throw Error("--resume: '" + ckpt + "' is at step " + std::to_string(start) + ", past --steps " + std::to_string(o.steps));
    metrics_truncate(metrics_path, start);
    // A process killed while writing a checkpoint leaves its temporary file; the rename never happened.
    for (const auto& e : fs::directory_iterator(o.out_dir)) {
      if (e.path().filename().string().rfind(".last.ckpt.tmp-", 0) == 0) fs::remove(e.path());
    }
    log->info("resuming {} from step {} of {}", ckpt, start, o.steps);
  } else if (fs::exists(ckpt)) {
    throw Error("'" + o.out_dir + "' already holds a run (last.ckpt): add --resume to continue it, or choose another --out");
  } else if (fs::exists(metrics_path)) {
    fs::remove(metrics_path);
  }

  method.set_device(o.device);
  auto params = method.trainable_parameters();
  Optimizer opt(params, opt_cfg);
  if (o.resume) {
    torch::serialize::InputArchive state;
    if (!checkpoint_read_archive(ckpt, "optimizer", state)) {
      throw Error("--resume: '" + ckpt + "' has no optimiser state (it is an exported model, not a training run)");
    }
    try {
      opt.load(state);
    } catch (const c10::Error& e) {
      throw Error("--resume: the optimiser state in '" + ckpt + "' does not match this run: " + e.what_without_backtrace());
    }
  }

  int64_t saved_step = o.resume ? start : -1;
  auto save = [&](int64_t step) {
    json meta = parse_object(method.metadata_json(), "method metadata");
    meta["format"] = 1;
    meta["step"] = step;
    meta["total_steps"] = o.steps;
    meta["seed"] = o.seed;
    meta["optimizer"] = json::parse(optimizer_config_to_json(opt_cfg));
    meta["schedule"] = {{"kind", schedule.kind}, {"warmup_steps", schedule.warmup_steps},
                        {"milestones", schedule.milestones}, {"gamma", schedule.gamma}};
    meta["command"] = command;
    meta["device"] = o.device.str();
    // Parameters are written from the CPU so that a GPU-trained checkpoint loads anywhere.
    const bool on_gpu = !o.device.is_cpu();
    if (on_gpu) method.module().to(torch::kCPU);
    torch::serialize::OutputArchive state;
    opt.save(state);
    try {
      checkpoint_save(ckpt, method.module(), meta.dump(), {{"optimizer", &state}});
    } catch (...) {
      if (on_gpu) method.module().to(o.device);
      throw;
    }
    if (on_gpu) method.module().to(o.device);
    saved_step = step;
  };

  summary.first_step = start;
  summary.checkpoint = ckpt;
  const double t0 = time_now_s();
  double window_loss = 0.0, last_log_t = -1e9;
  int64_t window_n = 0, samples = 0, consecutive_bad = 0, done = start;
  std::vector<std::pair<std::string, double>> window_metrics;

  for (int64_t step = start; step < o.steps; ++step) {
    if (o.cancel && o.cancel()) {
      summary.cancelled = true;
      break;
    }
    if (o.time_budget_s > 0.0 && time_now_s() - t0 >= o.time_budget_s) {
      summary.budget_reached = true;
      break;
    }
    const double lr = schedule.lr_at(opt_cfg.lr, step, o.steps);
    opt.set_lr(lr);
    const uint64_t step_seed = seed_for_step(o.seed, step);
    torch::manual_seed(step_seed);
    auto gen = at::make_generator<at::CPUGeneratorImpl>(step_seed);
    torch::Generator g(gen);

    method.module().train();
    opt.zero_grad();
    StepOutput out = method.step(step, g);
    double loss = out.loss.detach().to(torch::kCPU).item<double>();
    bool finite = std::isfinite(loss);
    if (finite) {
      out.loss.backward();
      double norm;
      if (o.clip_grad_norm > 0.0) {
        norm = torch::nn::utils::clip_grad_norm_(params, o.clip_grad_norm);
      } else {
        torch::NoGradGuard ng;
        auto total = torch::zeros({}, torch::TensorOptions().device(o.device));
        for (auto& p : params) if (p.grad().defined()) total += p.grad().pow(2).sum();
        norm = total.item<double>();
      }
      finite = std::isfinite(norm);
    }
    done = step + 1;
    if (!finite) {
      ++summary.skipped_steps;
      log->warn("step {}: the loss or its gradient is not finite ({}); step skipped", step + 1, loss);
      if (++consecutive_bad >= o.max_bad_steps) {
        const std::string kept = saved_step >= 0 ? "the last good checkpoint '" + ckpt + "' (step " + std::to_string(saved_step) + ") is kept"
                                                 : "no checkpoint had been written yet";
        throw Error("training stopped: the loss was not finite for " + std::to_string(consecutive_bad) +
                    " steps in a row (at step " + std::to_string(step + 1) + "; lower --lr?); " + kept);
      }
      continue;
    }
    consecutive_bad = 0;
    opt.step();
    method.after_step(step, o.steps);
    samples += out.samples;
    window_loss += loss;
    ++window_n;
    if (window_metrics.empty()) window_metrics = out.metrics;
    else for (size_t i = 0; i < out.metrics.size() && i < window_metrics.size(); ++i) window_metrics[i].second += out.metrics[i].second;

    const double elapsed = time_now_s() - t0;
    const int64_t steps_here = done - start;
    const double rate = elapsed > 0 ? steps_here / elapsed : 0.0;
    if (done % o.log_every == 0 || done == o.steps) {
      json line = {{"step", done}, {"loss", window_loss / window_n}, {"lr", lr}, {"elapsed_s", elapsed},
                   {"steps_per_s", rate}, {"samples_per_s", elapsed > 0 ? samples / elapsed : 0.0}};
      for (auto& [k, v] : window_metrics) line[k] = v / window_n;
      metrics_append(metrics_path, line);
      summary.final_loss = window_loss / window_n;
      window_loss = 0.0;
      window_n = 0;
      window_metrics.clear();
    }
    if (done % o.checkpoint_every == 0 || done == o.steps) save(done);

    ProgressInfo info{done, o.steps, rate, rate > 0 ? (o.steps - done) / rate : 0.0, "steps"};
    if (o.progress) {
      o.progress(info);
    } else if (time_now_s() - last_log_t >= 1.0 || done == o.steps) {
      last_log_t = time_now_s();
      log->info("step {}/{}  loss {:.4f}  lr {:.2e}  {:.2f} steps/s  {:.1f} samples/s  ETA {}", done, o.steps, loss, lr,
                rate, elapsed > 0 ? samples / elapsed : 0.0, format_duration(info.eta_s));
    }
  }
  if (window_n > 0) summary.final_loss = window_loss / window_n;
  if (saved_step != done && done > start) save(done);

  summary.last_step = done;
  summary.seconds = time_now_s() - t0;
  const int64_t ran = done - start;
  summary.samples_per_s = summary.seconds > 0 ? samples / summary.seconds : 0.0;
  summary.ms_per_step = ran > 0 ? 1000.0 * summary.seconds / ran : 0.0;
  return summary;
}

}  // namespace corrtrack
