// Building any trainable method by name with its data, for `corrtrack train`, the benchmarks and
// the Studio's method list: video trackers on a clip cache (built from videos into the run folder
// when needed) and image methods on an image set.
//
// Usage: TrainingSetup s; s.method = "mast"; s.data = {"train.ctc"};
//        auto m = training_method_create(s); train_run(*m, opt, schedule, options);
#pragma once

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
  // Video methods: a clip cache, or videos / frame folders / DAVIS roots (decoded once into
  // run_dir/clips.ctc, reused on --resume). Image methods: "fashion-mnist" or an image folder.
  std::vector<std::string> data;
  std::string run_dir;
  int cache_size = 256;          // short side of frames decoded into the run's cache
  VideoMethodConfig video;       // method, seed and total_steps are set from here
  ImageMethodConfig image;       // likewise; the encoder's channels come from the data
  std::optional<int> batch;      // when given: clips (video) or images (image methods) per step
  uint64_t seed = 0;
  int64_t total_steps = 1000;
};

// Every method this build trains: the video trackers, then the image methods.
std::vector<std::string> method_names();
bool method_is_image(const std::string& method);
// "mast, corrflow, ..." for messages.
std::string method_list();
// Builds the method with its data; throws Error naming an unknown method or unreadable data.
std::unique_ptr<TrainableMethod> training_method_create(TrainingSetup setup);

// A video method's published training settings, which `corrtrack train` applies to every setting
// the user did not give (so `train --method crw` alone trains as CRW did). The batch is the
// published one on CUDA and a CPU-sized one otherwise (published batches of 20-36 clips at
// 240-256 px need tens of GB and minutes per step on a CPU). Empty for image methods: their
// method-specific defaults live in ImageMethodConfig.
struct TrainingRecipe {
  std::string source;                 // where the values come from, for the run's record
  std::optional<double> lr, beta1, clip_grad, min_scale;
  std::optional<int> batch, crop;
  std::optional<std::string> schedule;
  std::vector<int64_t> milestones;    // with schedule "step"
  std::optional<double> gamma;
};
TrainingRecipe training_recipe(const std::string& method, bool cuda);
nlohmann::json training_recipe_to_json(const TrainingRecipe& r);

// True when `path` is (or claims to be) a clip cache: named .ctc or starting with its magic.
bool clip_cache_looks_like(const std::string& path);

// Training speed through the real loop: `warmup_steps` untimed steps, then options.steps timed
// ones, in a temporary folder removed afterwards. ms per step, samples per second, peak RSS.
nlohmann::json bench_train(TrainableMethod& method, const OptimizerConfig& opt, TrainOptions options, int64_t warmup_steps);

// Clip loading: the same `clips` clips (3 frames 4 apart) from the cache, with the sampler's crop
// and jitter, and (with `sources`, the inputs the cache was built from) by decoding the videos.
nlohmann::json bench_clips(const std::string& cache, const std::vector<std::string>& sources, int clips, int crop);

}  // namespace corrtrack
