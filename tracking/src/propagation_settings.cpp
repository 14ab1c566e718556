// Model choice, protocol presets and the merge of a model's recommended settings with the user's.
#include "corrtrack/propagation_settings.h"

#include "corrtrack/tracking.h"

#include <cstdlib>
#include <filesystem>
#include <functional>
#include <map>

namespace corrtrack {

namespace {

using Setter = std::function<void(PropagationConfig&)>;

// What a model's hints set, per setting.
std::map<PropagationSetting, Setter> hint_setters(const PropagationHints& h) {
  std::map<PropagationSetting, Setter> s;
  if (h.context) s[PropagationSetting::Context] = [v = *h.context](PropagationConfig& c) { c.context = v; };
  if (h.topk) s[PropagationSetting::TopK] = [v = *h.topk](PropagationConfig& c) { c.topk = v; };
  if (h.radius) s[PropagationSetting::Radius] = [v = *h.radius](PropagationConfig& c) { c.radius = v; };
  if (h.temperature) s[PropagationSetting::Temperature] = [v = *h.temperature](PropagationConfig& c) { c.temperature = v; };
  if (h.mode) s[PropagationSetting::Mode] = [v = propagation_mode_parse(*h.mode)](PropagationConfig& c) { c.mode = v; };
  if (h.roi_gap) s[PropagationSetting::RoiGap] = [v = *h.roi_gap](PropagationConfig& c) { c.roi_gap = v; };
  if (h.scale) s[PropagationSetting::Scale] = [v = *h.scale](PropagationConfig& c) { c.scale = v; };
  return s;
}

// A published protocol's settings, as hints.
PropagationHints preset(PropagationProtocol p) {
  const PropagationConfig defaults;
  PropagationHints h;
  switch (p) {
    case PropagationProtocol::Crw:
      h.context = defaults.context;
      h.topk = defaults.topk;
      h.radius = defaults.radius;
      h.temperature = defaults.temperature;
      h.mode = "crw";
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

const std::vector<PropagationSetting> kAllSettings{PropagationSetting::Context, PropagationSetting::TopK,
                                                   PropagationSetting::Radius, PropagationSetting::Temperature,
                                                   PropagationSetting::Mode, PropagationSetting::RoiGap,
                                                   PropagationSetting::Scale};

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

std::unique_ptr<FeatureExtractor> feature_extractor_open(const ModelSpec& spec, torch::Device device) {
  const std::string ckpt = model_checkpoint(spec);
  if (ckpt.empty()) return feature_extractor_create(spec.features, spec.seed, device);
  return feature_extractor_load(ckpt, device);
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
  throw Error("unknown protocol '" + name + "': use crw, timecycle or mast");
}

PropagationConfig propagation_config_resolve(const PropagationConfig& user, const std::set<PropagationSetting>& given,
                                             const PropagationHints& model, std::optional<PropagationProtocol> protocol) {
  const auto from_user = hint_setters(PropagationHints{user.context, user.topk, user.roi_gap, user.radius, user.temperature,
                                                       user.scale, propagation_mode_name(user.mode)});
  const auto from_model = hint_setters(model);
  const auto from_preset = protocol ? hint_setters(preset(*protocol)) : std::map<PropagationSetting, Setter>();
  PropagationConfig c;
  c.local_window = user.local_window;
  c.tile = user.tile;
  for (PropagationSetting s : kAllSettings) {
    // The highest-precedence source that has this setting decides it.
    for (const auto* source : {&from_model, &from_preset}) {
      auto it = source->find(s);
      if (it != source->end()) it->second(c);
    }
    if (given.count(s)) from_user.at(s)(c);
  }
  return c;
}

}  // namespace corrtrack
