// Test-time adaptation of a trained encoder to one video (adaptation.h).
#include "corrtrack/adaptation.h"

#include "corrtrack/checkpoint_info.h"
#include "corrtrack/tracking.h"
#include "corrtrack/training_setup.h"
#include "corrtrack/video.h"

#include "anchor_term.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>

#include <stdlib.h>

namespace fs = std::filesystem;

namespace corrtrack {

namespace {
constexpr int64_t kCacheFramesMax = 3000;   // ~1 GB of frames at 256 px on the short side
}

void method_init_encoder(TrainableMethod& method, const std::string& checkpoint) {
  const CheckpointInfo mine = method.checkpoint_info();
  const CheckpointInfo theirs = checkpoint_info_read(checkpoint);
  if (!mine.encoder) throw Error("method " + mine.method + " has no video feature encoder to initialise from '" + checkpoint + "'");
  if (!theirs.encoder || !(*theirs.encoder == *mine.encoder)) {
    throw Error("checkpoint '" + checkpoint + "' holds " + (theirs.encoder ? "another encoder" : "no video feature encoder") +
                " than method " + mine.method + "'s (its method: " + theirs.method + ")");
  }
  std::shared_ptr<torch::nn::Module> target;
  for (const auto& item : method.module().named_modules()) {
    if (item.key() == mine.encoder_module) target = item.value();
  }
  if (!target) throw Error("method " + mine.method + " has no module '" + mine.encoder_module + "'");
  checkpoint_load(checkpoint, *target, theirs.encoder_module);
}

AdaptResult encoder_adapt(const std::string& checkpoint, const std::string& video, const std::string& work_dir,
                          const AdaptConfig& config) {
  if (!(config.seconds > 0.0) || !std::isfinite(config.seconds)) {
    throw SettingError("adapt", "must be a positive number of seconds, got " + std::to_string(config.seconds));
  }
  if (!(config.lr > 0.0) || !std::isfinite(config.lr)) throw SettingError("adapt-lr", "must be a positive number");
  if (!(config.anchor_weight >= 0.0) || !std::isfinite(config.anchor_weight)) {
    throw SettingError("adapt-anchor", "must be a number >= 0 (0: the model's objective alone)");
  }
  const CheckpointInfo info = checkpoint_info_read(checkpoint);
  const auto videos = video_method_names();
  if (std::find(videos.begin(), videos.end(), info.method) == videos.end() || !info.encoder) {
    throw Error("checkpoint '" + checkpoint + "' is a " + info.method + " model; adapting needs a video method's encoder (" +
                [&] { std::string s; for (const auto& v : videos) s += (s.empty() ? "" : ", ") + v; return s; }() + ")");
  }
  TrainingSetup setup;
  setup.method = info.method;
  setup.data = {video};
  // A short video is decoded once into the work folder (clips then cost a crop, not a seek and a
  // decode each); a long one is streamed, clips read from the file itself.
  const int64_t frames = config.frames > 0 ? config.frames : frame_source_open(video)->size();
  setup.data_mode = frames <= kCacheFramesMax ? "cache" : "stream";
  setup.run_dir = work_dir;
  setup.cache_size = config.cache_size;
  setup.video.sampler.crop = config.crop;
  setup.batch = config.batch;
  setup.seed = config.seed;
  const int64_t step_cap = config.max_steps > 0 ? config.max_steps : 1000000;   // else the time budget ends the run
  setup.total_steps = step_cap;
  auto method = training_method_create(setup);
  method_init_encoder(*method, checkpoint);
  const bool anchor_term = !config.anchors.empty() && config.anchor_weight > 0.0;
  if (anchor_term) {
    method = detail::method_with_anchor_term(std::move(method), config.anchors,
                                             {config.anchor_weight, config.scale, config.topk, config.temperature});
  }

  OptimizerConfig opt;
  opt.name = "adam";
  opt.lr = config.lr;
  LrSchedule schedule;
  schedule.kind = "constant";
  TrainOptions run;
  run.out_dir = (fs::path(work_dir) / "run").string();
  run.steps = step_cap;
  run.checkpoint_every = step_cap;   // one checkpoint, when the budget ends the run
  run.log_every = 5;
  run.seed = config.seed;
  run.time_budget_s = config.seconds;
  run.device = config.device;
  run.bf16 = config.bf16;
  run.freeze_batch_norm = config.freeze_batch_norm;
  run.cancel = config.cancel;
  run.command_json = nlohmann::json{{"adapt", {{"checkpoint", checkpoint}, {"video", video}, {"seconds", config.seconds}, {"lr", config.lr},
                                               {"batch_norm", config.freeze_batch_norm ? "frozen" : "trained"},
                                               {"anchor_weight", anchor_term ? config.anchor_weight : 0.0},
                                               {"anchors", anchor_term ? config.anchors.size() : 0}}}}.dump();
  const double t0 = time_now_s();
  double logged = 0.0;
  run.progress = [&](const ProgressInfo& p) {
    ProgressInfo q = p;
    q.total = 0;   // the budget, not a step count, ends the run
    q.eta_s = std::max(0.0, config.seconds - (time_now_s() - t0));
    if (config.progress) return config.progress(q);
    if (time_now_s() - logged < 2.0) return;
    logged = time_now_s();
    log_get("tracking")->info("adapting {} to {}: step {}, {:.0f} s left", info.method, video, q.done, q.eta_s);
  };
  run.progress(ProgressInfo{0, 0, 0.0, 0.0, "steps"});   // training starts (the first step can take seconds)
  const TrainSummary s = train_run(*method, opt, schedule, run);

  AdaptResult r;
  r.steps = s.last_step - s.first_step;
  r.seconds = s.seconds;
  r.final_loss = s.final_loss;
  r.cancelled = s.cancelled;
  r.checkpoint = checkpoint;
  if (r.steps > 0 && !r.cancelled) {
    r.checkpoint = (fs::path(work_dir) / "adapted.ckpt").string();
    feature_encoder_export(s.checkpoint, r.checkpoint, false, info.propagation);
  }
  return r;
}

void adaptation_readout(AdaptConfig& config, const PropagationConfig& engine) {
  config.scale = engine.scale;
  config.topk = engine.topk;
  config.temperature = engine.temperature;
}

std::unique_ptr<FeatureExtractor> feature_extractor_adapted(const std::string& checkpoint, const std::string& video,
                                                            const AdaptConfig& config, Precision precision, AdaptResult* result) {
  std::string tmpl = (fs::temp_directory_path() / "corrtrack-adapt-XXXXXX").string();
  if (!::mkdtemp(tmpl.data())) throw Error("cannot create a folder in " + fs::temp_directory_path().string() + ": " + std::strerror(errno));
  struct Remove {
    std::string dir;
    ~Remove() {
      std::error_code ec;
      fs::remove_all(dir, ec);
    }
  } remove{tmpl};
  AdaptConfig in_precision = config;
  in_precision.bf16 = precision_resolve(precision, config.device) == Precision::BFloat16;
  const AdaptResult r = encoder_adapt(checkpoint, video, tmpl, in_precision);
  if (result) *result = r;
  if (r.cancelled) return nullptr;
  return feature_extractor_load(r.checkpoint, config.device, precision);
}

}  // namespace corrtrack
