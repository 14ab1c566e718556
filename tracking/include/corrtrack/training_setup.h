// Building any trainable method by name with its data, for `corrtrack train`, the benchmarks and
// the Studio's method list: video trackers on a clip cache (built from videos into the run folder
// when needed) and image methods on an image set.
//
// Usage: TrainingSetup s; s.method = "mast"; s.data = {"train.ctc"};
//        auto m = training_method_create(s); train_run(*m, opt, schedule, options);
#pragma once

#include "corrtrack/clip_cache.h"
#include "corrtrack/image_methods.h"
#include "corrtrack/video_methods.h"

#include <nlohmann/json.hpp>

#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace corrtrack {

struct TrainingSetup {
  std::string method;
  // Video methods: a clip cache, or videos / frame folders / DAVIS roots / text lists of them,
  // streamed or decoded once into run_dir/clips.ctc (data_mode). Image methods: "fashion-mnist"
  // or an image folder.
  std::vector<std::string> data;
  std::string run_dir;
  int cache_size = 256;          // short side of the frames trained on (the run's cache, or streamed)
  // Video methods given videos: "cache" decodes them into run_dir/clips.ctc first (reused on
  // --resume), "stream" reads clips from the files themselves, "auto" streams text lists and
  // collections of more than kAutoStreamVideos videos and caches smaller ones.
  std::string data_mode = "auto";
  VideoMethodConfig video;       // method, seed and total_steps are set from here
  ImageMethodConfig image;       // likewise; the encoder's channels come from the data
  std::optional<int> batch;      // when given: clips (video) or images (image methods) per step
  uint64_t seed = 0;
  int64_t total_steps = 1000;
};

constexpr int kAutoStreamVideos = 64;

// The training clips of a video method's setup (data, data_mode, cache_size, run_dir; the
// loader's workers also decode in parallel when a cache or an index is built).
std::shared_ptr<const ClipStore> training_clips(const TrainingSetup& setup);

// Every method this build trains: the video trackers, then the image methods.
std::vector<std::string> method_names();
bool method_is_image(const std::string& method);
// "mast, corrflow, ..." for messages.
std::string method_list();
// Builds the method with its data; throws Error naming an unknown method or unreadable data.
std::unique_ptr<TrainableMethod> training_method_create(TrainingSetup setup);

// A method's published training settings, which `corrtrack train` applies to every setting the
// user did not give (so `train --method crw` or `train --method byol` alone trains as its paper
// did, scaled to the machine). Video methods: the batch is the published one on CUDA and a
// CPU-sized one otherwise (published batches of 20-36 clips at 240-256 px need tens of GB and
// minutes per step on a CPU). Image methods: the paper's optimiser family, temperature and
// momentum, a linear warm-up then a cosine decay over the run's --steps (docs/protocols.md and
// README "Image methods" give each recipe and what was adapted to a short run).
struct TrainingRecipe {
  std::string source;                 // where the values come from, for the run's record
  std::optional<std::string> optimizer;
  std::optional<double> lr, beta1, clip_grad, min_scale, weight_decay;
  std::optional<double> lars_eta;     // LARS trust coefficient (--lars-eta)
  std::optional<bool> lars_clip;      // LARS rate min(trust, lr) (--lars-clip; --lars-clip=false undoes it)
  std::optional<int> batch, crop;
  std::optional<std::string> schedule;
  std::vector<int64_t> milestones;    // with schedule "step"
  std::optional<double> gamma;
  std::optional<double> warmup_fraction;   // linear warm-up over this fraction of --steps
  std::optional<double> temperature;   // image methods: image_method_default_temperature()
  std::optional<double> ema;           // image methods: the EMA target's momentum (--ema)
};
TrainingRecipe training_recipe(const std::string& method, bool cuda);
nlohmann::json training_recipe_to_json(const TrainingRecipe& r);

// True when `path` is (or claims to be) a clip cache: named .ctc or starting with its magic.
bool clip_cache_looks_like(const std::string& path);

// Training speed through the real loop: `warmup_steps` untimed steps, then options.steps timed
// ones, in a temporary folder removed afterwards. ms per step, samples per second, peak RSS.
nlohmann::json bench_train(TrainableMethod& method, const OptimizerConfig& opt, TrainOptions options, int64_t warmup_steps);

// Clip loading for training: 3-frame clips (frames 4 apart), `clips` of them, per worker count w:
// read_clips_per_s = drawn, decoded and cropped by w threads (what the loader's workers supply;
// rendering runs on the training device), clips_per_s = received by a step through the loader in
// batches of `batch`, rendered (resize to `crop`, flip, jitter) on this CPU, and the wait per clip.
// JSON also: the store's form, videos, frames and bytes on disk.
struct BenchClipsOptions {
  TrainingSetup setup;           // data, data_mode, cache_size, run_dir (for an index or a cache)
  std::vector<int> workers{0, 1, 2};
  int clips = 120, batch = 12, crop = 224;
};
nlohmann::json bench_clips(const BenchClipsOptions& options);

}  // namespace corrtrack
