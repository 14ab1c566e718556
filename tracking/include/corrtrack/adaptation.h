// Adapting a trained encoder to one video before propagating through it: a short self-supervised
// fine-tune with the objective the encoder was trained with (MAST's colour reconstruction for the
// bundled model), on clips of that very video. Test-time training for correspondence: the video's
// own appearance (its colours, textures, lighting) shapes the features that match it.
//
// With the video's annotated frames the adaptation also learns from them (the anchor term): the
// features are taught to tell this video's objects from its background, which the objective alone
// does not see (DAVIS-2016 val-dev: see the README, "Adapting to your video").
//
// Usage:
//   AdaptConfig cfg;  cfg.seconds = 60;
//   cfg.anchors = {{first_frame, first_mask}};          // optional: the anchor term
//   adaptation_readout(cfg, engine_config);               // the term reads out as the engine will
//   auto features = feature_extractor_adapted("assets/models/default.ckpt", "clip.mp4", cfg, Precision::Auto);
//   // the checkpoint given is only read; encoder_adapt keeps the adapted file in a folder of yours
#pragma once

#include "corrtrack/core.h"
#include "corrtrack/propagation_settings.h"
#include "corrtrack/train.h"
#include "corrtrack/video.h"

#include <string>
#include <vector>

namespace corrtrack {

// An annotated frame of the video (the propagation's anchor): the frame and its object-index mask
// (1 channel, the frame's size, 0 background, 255 void).
struct AdaptAnchor {
  Image frame;
  Image mask;
};

struct AdaptConfig {
  double seconds = 60.0;     // training time (the loop stops at this budget)
  int64_t max_steps = 0;     // > 0: also stop after this many steps (reproducible runs, tests)
  double lr = 1e-4;          // Adam, constant: a tenth of MAST's initial rate, refining rather than retraining
  int batch = 4;             // clips per step
  int crop = 224;            // the bundled model's training crop
  int cache_size = 256;      // short side the video's frames are trained at
  int64_t frames = 0;        // the video's frame count when the caller knows it; 0: counted here
                             // (a decode of the whole file, before the one that reads the clips)
  uint64_t seed = 0;
  torch::Device device = torch::kCPU;
  bool bf16 = false;         // the encoder in bfloat16 while training (TrainOptions::bf16): 2.4x the
                             // steps per second on CPUs with AMX; feature_extractor_adapted sets it
                             // from the precision it will propagate in
  bool freeze_batch_norm = false;  // batch norm keeps the model's running statistics (TrainOptions::
                                   // freeze_batch_norm); false: they follow the video's clips
  // The anchor term (anchor_term.h in the sources): with annotated frames, every step also
  // propagates their masks to warped copies of themselves with the engine's readout and adds the
  // class-balanced cross-entropy of the result, times anchor_weight, to the method's loss; the
  // encoder learns to tell this video's objects from its background. Empty or weight 0: the
  // method's own objective alone (as before 2026-12-05).
  std::vector<AdaptAnchor> anchors;
  double anchor_weight = 1.0;
  double scale = 1.0;        // the readout of the propagation that follows: internal resolution,
  int topk = 10;             // top-k and temperature (PropagationConfig); adaptation_readout sets them
  double temperature = 0.05;
  ProgressCallback progress; // per step: done = steps, eta_s = seconds of the budget left (default: a log line every 2 s)
  CancelCallback cancel;
};

struct AdaptResult {
  std::string checkpoint;    // the adapted encoder: work_dir/adapted.ckpt (the original's when no step ran)
  int64_t steps = 0;
  double seconds = 0.0;
  double final_loss = 0.0;   // mean training loss over the last steps
  bool cancelled = false;
};

// Fine-tunes a copy of `checkpoint`'s encoder (a video method's: mast, corrflow, crw, timecycle)
// on clips of `video` (a video file or frame folder) for config.seconds, and writes it with the
// original's metadata and recommended engine settings to work_dir/adapted.ckpt (work_dir: a
// fresh or empty folder, also holding the run's files). Throws Error naming the checkpoint when
// it is not a video method's, SettingError for settings out of range.
AdaptResult encoder_adapt(const std::string& checkpoint, const std::string& video, const std::string& work_dir,
                          const AdaptConfig& config);

// The same in a temporary folder (removed before returning): the adapted encoder's features on
// config.device in `precision`, or null when config.cancel stopped the adaptation. The adaptation
// trains in that precision too (config.bf16 is replaced: true when `precision` resolves to bf16 on
// config.device). `result`, when given, receives the run's figures.
std::unique_ptr<FeatureExtractor> feature_extractor_adapted(const std::string& checkpoint, const std::string& video,
                                                            const AdaptConfig& config, Precision precision,
                                                            AdaptResult* result = nullptr);

// Sets config's scale, topk and temperature from the engine settings the propagation will use.
void adaptation_readout(AdaptConfig& config, const PropagationConfig& engine);

// Loads `checkpoint`'s encoder weights (a training checkpoint or an exported encoder) into the
// method's encoder: the start of a fine-tune (`train --init`). Throws Error naming the file when
// its encoder is not the method's.
void method_init_encoder(TrainableMethod& method, const std::string& checkpoint);

}  // namespace corrtrack
