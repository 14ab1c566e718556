// Optimisers (SGD, Adam, LARS), learning-rate schedules and the per-step seed of the training loop.
#include "corrtrack/train.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>

namespace corrtrack {

using nlohmann::json;


std::string optimizer_config_to_json(const OptimizerConfig& c) {
  return json{{"name", c.name}, {"lr", c.lr}, {"momentum", c.momentum}, {"weight_decay", c.weight_decay},
              {"beta1", c.beta1}, {"beta2", c.beta2}, {"lars_eta", c.lars_eta}, {"lars_clip", c.lars_clip}}
      .dump();
}

void optimizer_config_validate(const OptimizerConfig& c) {
  if (!(c.lr > 0.0) || !std::isfinite(c.lr)) throw SettingError("lr", "must be a positive number, got " + std::to_string(c.lr));
  if (c.name != "adam" && c.name != "sgd" && c.name != "lars") throw SettingError("optimizer", "must be sgd, adam or lars, got '" + c.name + "'");
  if (!(c.lars_eta > 0.0) || !std::isfinite(c.lars_eta)) throw SettingError("lars-eta", "must be a positive number, got " + std::to_string(c.lars_eta));
}

Optimizer::Optimizer(std::vector<torch::Tensor> params, const OptimizerConfig& cfg) : m_cfg(cfg), m_params(params) {
  optimizer_config_validate(cfg);
  if (cfg.name == "adam") {
    m_impl = std::make_unique<torch::optim::Adam>(
        params, torch::optim::AdamOptions(cfg.lr).betas({cfg.beta1, cfg.beta2}).weight_decay(cfg.weight_decay));
  } else if (cfg.name == "sgd") {
    m_impl = std::make_unique<torch::optim::SGD>(
        params, torch::optim::SGDOptions(cfg.lr).momentum(cfg.momentum).weight_decay(cfg.weight_decay));
  } else {  // lars (optimizer_config_validate allows no other name)
    // Weight decay is folded into the rescaled gradient in step().
    m_impl = std::make_unique<torch::optim::SGD>(params, torch::optim::SGDOptions(cfg.lr).momentum(cfg.momentum));
  }
}

Optimizer::~Optimizer() = default;

void Optimizer::zero_grad() { m_impl->zero_grad(); }

void Optimizer::step() {
  if (m_cfg.name == "lars") {
    torch::NoGradGuard ng;
    const double lr = m_impl->param_groups().front().options().get_lr();   // as scheduled
    for (auto& p : m_params) {
      if (!p.grad().defined() || p.dim() <= 1) continue;  // biases and norm parameters: plain SGD
      auto g = p.grad();
      const double w_norm = p.norm().item<double>();
      const double g_norm = g.norm().item<double>();
      if (m_cfg.weight_decay > 0.0) g.add_(p, m_cfg.weight_decay);
      if (w_norm > 0.0 && g_norm > 0.0) {
        const double trust = m_cfg.lars_eta * w_norm / (g_norm + m_cfg.weight_decay * w_norm);
        g.mul_(m_cfg.lars_clip ? std::min(trust / lr, 1.0) : trust);   // SGD then multiplies by lr
      }
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
  if (warmup_steps < 0) throw SettingError("warmup", "must be >= 0 steps");
  for (int64_t m : milestones) if (m < 0) throw SettingError("milestones", "must be >= 0 steps");
  if (!(gamma > 0.0) || !std::isfinite(gamma)) throw SettingError("gamma", "must be a positive number");
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

}  // namespace corrtrack
