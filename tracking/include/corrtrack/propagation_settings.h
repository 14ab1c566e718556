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

// Arithmetic of a ResNet encoder's forward pass (features are L2-normalised in float32 either way;
// the parameter-free `pixels` features are always float32).
//   Float32  - the model's own arithmetic: the same features as in training-time evaluation.
//   BFloat16 - BatchNorm folded into the convolutions, bfloat16 weights and activations,
//              channels-last (tracking/src/inference_encoder.h): about 3.5x faster on CPUs with
//              native bfloat16 (AMX or AVX512-BF16), far slower than float32 on CPUs without.
//   Auto     - BFloat16 on a CPU with native bfloat16, Float32 on other CPUs and on CUDA.
// README "Benchmarks" gives the speed and the J&F of each on DAVIS-2016 val-dev.
enum class Precision { Auto, Float32, BFloat16 };
// "auto" | "fp32" | "bf16"; throws SettingError("precision", ...) otherwise.
Precision precision_parse(const std::string& name);
std::string precision_name(Precision precision);
// Whether this CPU computes bfloat16 natively (AMX-BF16 or AVX512-BF16; read from cpuid).
bool cpu_has_native_bf16();
// Auto made concrete for `device`; the others unchanged.
Precision precision_resolve(Precision precision, torch::Device device);

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
std::unique_ptr<FeatureExtractor> feature_extractor_open(const ModelSpec& spec, torch::Device device = torch::kCPU,
                                                         Precision precision = Precision::Float32);
// The settings the model recommends (empty for the baselines).
PropagationHints model_hints(const ModelSpec& spec);

// A published method's inference settings.
enum class PropagationProtocol {
  Crw,        // 20 recent frames, top-10, radius 12, T 0.05 (the engine's defaults)
  TimeCycle,  // 8 recent frames, top-5
  Mast,       // MAST's memory mode
  Fast,       // CRW's with radius 8: with the GPU-trained model on DAVIS-2016 val-dev 1.5x faster
              // propagation (102 s against 149 s, bf16) for 0.45 J&F less (69.39 against 69.84)
  Quality,    // CRW's with 80 recent frames and radius 16: with the GPU-trained model on val-dev
              // 70.85 J&F against 69.84, propagation 1.6x as long (239 s against 149 s, bf16);
              // with its edge refinement 72.69 against 71.53 (258 s against 152 s); with the
              // CPU-fine-tuned default and its sharpened feedback 73.95 against 72.73
};
// "crw" | "timecycle" | "mast" | "fast" | "quality"; throws SettingError("protocol", "must be crw,
// timecycle, mast, fast or quality, got 'x'").
PropagationProtocol propagation_protocol_parse(const std::string& name);

// The engine settings a user can set, a model can recommend and a preset can fill.
enum class PropagationSetting { Context, TopK, Radius, Temperature, Mode, RoiGap, Scale, Refine, RefineEps, FeedbackPower };

// `user` holds the user's values; only those named in `given` count as set. Fields that are no
// setting (local_window, tile, long_term, short_term, feedback, area_labels, flip) always come from
// `user`. Throws Error when a hint is invalid (a mode that is neither crw nor mast).
PropagationConfig propagation_config_resolve(const PropagationConfig& user, const std::set<PropagationSetting>& given,
                                             const PropagationHints& model,
                                             std::optional<PropagationProtocol> protocol = std::nullopt);

}  // namespace corrtrack
