// Model choice, protocol presets and the merge of a model's recommended settings with the user's.
#include "corrtrack/propagation_settings.h"

#include "corrtrack/tracking.h"

#include <cstdlib>
#include <filesystem>

namespace corrtrack {

namespace {

// Sets every setting the hints hold; an invalid mode throws.
void apply(const PropagationHints& h, PropagationConfig& c) {
  if (h.context) c.context = *h.context;
  if (h.topk) c.topk = *h.topk;
  if (h.radius) c.radius = *h.radius;
  if (h.temperature) c.temperature = *h.temperature;
  if (h.mode) c.mode = propagation_mode_parse(*h.mode);
  if (h.roi_gap) c.roi_gap = *h.roi_gap;
  if (h.scale) c.scale = *h.scale;
  if (h.refine) c.refine_radius = *h.refine;
  if (h.refine_eps) c.refine_eps = *h.refine_eps;
  if (h.feedback_power) c.feedback_power = *h.feedback_power;
}

// The user's values of the settings in `given`, as hints.
PropagationHints given_settings(const PropagationConfig& u, const std::set<PropagationSetting>& given) {
  using S = PropagationSetting;
  auto has = [&](S s) { return given.count(s) > 0; };
  PropagationHints h;
  if (has(S::Context)) h.context = u.context;
  if (has(S::TopK)) h.topk = u.topk;
  if (has(S::Radius)) h.radius = u.radius;
  if (has(S::Temperature)) h.temperature = u.temperature;
  if (has(S::Mode)) h.mode = propagation_mode_name(u.mode);
  if (has(S::RoiGap)) h.roi_gap = u.roi_gap;
  if (has(S::Scale)) h.scale = u.scale;
  if (has(S::Refine)) h.refine = u.refine_radius;
  if (has(S::RefineEps)) h.refine_eps = u.refine_eps;
  if (has(S::FeedbackPower)) h.feedback_power = u.feedback_power;
  return h;
}

// A published protocol's settings, as hints.
PropagationHints preset(PropagationProtocol p) {
  const PropagationConfig defaults;
  PropagationHints h;
  switch (p) {
    case PropagationProtocol::Crw:
    case PropagationProtocol::Fast:
    case PropagationProtocol::Quality:
      h.context = defaults.context;
      h.topk = defaults.topk;
      h.radius = defaults.radius;
      h.temperature = defaults.temperature;
      h.mode = "crw";
      if (p == PropagationProtocol::Fast) h.radius = 8.0;
      if (p == PropagationProtocol::Quality) {   // measured on val-dev ("Inference levers")
        h.context = 80;
        h.radius = 16.0;
      }
      break;
    case PropagationProtocol::TimeCycle:
      h.context = 8;
      h.topk = 5;
      h.mode = "crw";
      break;
    case PropagationProtocol::Mast:
      h.mode = "mast";
      break;
  }
  return h;
}

}  // namespace

std::string default_model_path() {
  if (const char* env = std::getenv("CORRTRACK_MODEL")) return env;
  return CORRTRACK_DEFAULT_MODEL;
}

std::string model_checkpoint(const ModelSpec& spec) {
  if (!spec.checkpoint.empty()) return spec.checkpoint;
  if (spec.features != "default") return "";
  const std::string path = default_model_path();
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) {
    throw Error("the default model '" + path + "' is missing: use the pixels or random features, or a checkpoint");
  }
  return path;
}

std::unique_ptr<FeatureExtractor> feature_extractor_open(const ModelSpec& spec, torch::Device device, Precision precision) {
  const std::string ckpt = model_checkpoint(spec);
  if (ckpt.empty()) return feature_extractor_create(spec.features, spec.seed, device, precision);
  return feature_extractor_load(ckpt, device, precision);
}

PropagationHints model_hints(const ModelSpec& spec) {
  const std::string ckpt = model_checkpoint(spec);
  if (ckpt.empty()) return PropagationHints();
  PropagationHints h = checkpoint_info_read(ckpt).propagation;
  if (h.mode && *h.mode != "crw" && *h.mode != "mast") {
    throw Error("checkpoint '" + ckpt + "': key 'propagation.mode' must be crw or mast, got '" + *h.mode + "'");
  }
  return h;
}

PropagationProtocol propagation_protocol_parse(const std::string& name) {
  if (name == "crw") return PropagationProtocol::Crw;
  if (name == "timecycle") return PropagationProtocol::TimeCycle;
  if (name == "mast") return PropagationProtocol::Mast;
  if (name == "fast") return PropagationProtocol::Fast;
  if (name == "quality") return PropagationProtocol::Quality;
  throw SettingError("protocol", "must be crw, timecycle, mast, fast or quality, got '" + name + "'");
}

PropagationConfig propagation_config_resolve(const PropagationConfig& user, const std::set<PropagationSetting>& given,
                                             const PropagationHints& model, std::optional<PropagationProtocol> protocol) {
  PropagationConfig c;  // the defaults, overwritten in order of precedence
  c.local_window = user.local_window;
  c.tile = user.tile;
  c.long_term = user.long_term;
  c.short_term = user.short_term;
  c.feedback = user.feedback;
  c.area_labels = user.area_labels;
  c.flip = user.flip;
  apply(model, c);
  if (protocol) apply(preset(*protocol), c);
  apply(given_settings(user, given), c);
  return c;
}

}  // namespace corrtrack
