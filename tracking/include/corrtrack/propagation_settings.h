// Where propagation settings come from, shared by the command and the Studio: the model to use
// (bundled default, a baseline or a checkpoint), the published protocols' presets, and how a
// model's recommended settings merge with what the user set.
//
// Precedence, lowest first: the engine's defaults (CRW's protocol); the settings the model
// recommends (its checkpoint's "propagation" entry); the protocol preset the user chose; the
// settings the user gave explicitly.
//
// Usage:
//   ModelSpec model{"default"};
//   auto features = feature_extractor_open(model);
//   PropagationConfig cfg = propagation_config_resolve(user, given, model_hints(model), protocol);
#pragma once

#include "corrtrack/checkpoint_info.h"
#include "corrtrack/propagation.h"

#include <memory>
#include <optional>
#include <set>
#include <string>

namespace corrtrack {

class FeatureExtractor;

// The bundled trained model: CORRTRACK_MODEL from the environment, else assets/models/default.ckpt.
std::string default_model_path();

// Which features to propagate with.
struct ModelSpec {
  std::string features = "default";   // "default" (the bundled model) | "pixels" | "random"
  std::string checkpoint;              // non-empty: this checkpoint (overrides `features`)
  uint64_t seed = 0;                   // of the random encoder
};
// The checkpoint a spec loads ("" for pixels/random); throws Error when the default model is missing.
std::string model_checkpoint(const ModelSpec& spec);
// Builds the feature extractor; throws Error naming the checkpoint or the unknown features.
std::unique_ptr<FeatureExtractor> feature_extractor_open(const ModelSpec& spec, torch::Device device = torch::kCPU);
// The settings the model recommends (empty for the baselines).
PropagationHints model_hints(const ModelSpec& spec);

// A published method's inference settings.
enum class PropagationProtocol {
  Crw,        // 20 recent frames, top-10, radius 12, T 0.05 (the engine's defaults)
  TimeCycle,  // 8 recent frames, top-5
  Mast,       // MAST's memory mode
};
// "crw" | "timecycle" | "mast"; throws SettingError("protocol", "must be crw, timecycle or mast, got 'x'").
PropagationProtocol propagation_protocol_parse(const std::string& name);

// The engine settings a user can set, a model can recommend and a preset can fill.
enum class PropagationSetting { Context, TopK, Radius, Temperature, Mode, RoiGap, Scale };

// `user` holds the user's values; only those named in `given` count as set. Fields that are no
// setting (local_window, tile, long_term, short_term, feedback) always come from `user`. Throws
// Error when a hint is invalid (a mode that is neither crw nor mast).
PropagationConfig propagation_config_resolve(const PropagationConfig& user, const std::set<PropagationSetting>& given,
                                             const PropagationHints& model,
                                             std::optional<PropagationProtocol> protocol = std::nullopt);

}  // namespace corrtrack
