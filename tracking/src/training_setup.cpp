// Any trainable method by name, built with its data (clip cache or image set).
#include "corrtrack/training_setup.h"

#include "corrtrack/clip_stream.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>

namespace fs = std::filesystem;

namespace corrtrack {

namespace {

bool has_list(const std::vector<std::string>& data) {
  return std::any_of(data.begin(), data.end(), clip_input_is_list);
}

}  // namespace

// A cache file as given; else the videos streamed, or decoded once into RUN/clips.ctc.
std::shared_ptr<const ClipStore> training_clips(const TrainingSetup& s) {
  if (s.data.empty()) throw Error("training data is required: a clip cache (corrtrack cache build) or videos / frame folders");
  if (s.data_mode != "auto" && s.data_mode != "cache" && s.data_mode != "stream") {
    throw SettingError("data-mode", "must be auto, cache or stream, not '" + s.data_mode + "'");
  }
  if (s.data.size() == 1 && fs::is_regular_file(s.data[0]) && clip_cache_looks_like(s.data[0])) {
    return std::make_shared<ClipCache>(s.data[0]);
  }
  const int workers = std::max(1, s.video.loader.workers);
  bool stream = s.data_mode == "stream";
  if (s.data_mode == "auto") {
    stream = has_list(s.data) || int(clip_cache_expand_inputs(s.data).size()) > kAutoStreamVideos;
  }
  if (!s.run_dir.empty()) dir_ensure_writable(s.run_dir);
  if (stream) {
    ClipStreamOptions o;
    o.short_side = s.cache_size;
    o.workers = workers;
    o.fallback_dir = s.run_dir;
    ClipStreamReport r;
    auto store = clip_stream_open(s.data, o, &r);
    log_get("tracking")->info("streaming clips from {} videos ({} indexed now, {} from the index {}, {} skipped)", r.videos,
                              r.indexed, r.reused, r.index_path.empty() ? "(not stored)" : r.index_path, r.failed);
    return store;
  }
  if (s.run_dir.empty()) throw Error("a run folder is needed to decode the training videos into a cache");
  const std::string cache = (fs::path(s.run_dir) / "clips.ctc").string();
  if (!fs::exists(cache)) {
    log_get("tracking")->info("decoding the training videos into {} (short side {})", cache, s.cache_size);
    ClipCacheBuildOptions o;
    o.short_side = s.cache_size;
    o.workers = workers;
    clip_cache_build(s.data, cache, o);
  }
  return std::make_shared<ClipCache>(cache);
}

namespace {

std::unique_ptr<TrainableMethod> image_method(TrainingSetup& s) {
  auto data = image_dataset_load(s.data.size() == 1 ? s.data[0] : std::string(), /*train=*/true, s.image.augment.size);
  s.image.method = s.method;
  s.image.seed = s.seed;
  s.image.total_steps = s.total_steps;
  s.image.encoder.in_channels = int(data.images.size(1));
  if (s.batch) s.image.batch = *s.batch;
  log_get("tracking")->info("training {} on {} ({} images, {}x{}x{})", s.method, data.name, data.images.size(0),
                            data.images.size(1), data.images.size(2), data.images.size(3));
  return image_method_create(s.image, data.images, data.labels);
}

std::unique_ptr<TrainableMethod> video_method(TrainingSetup& s) {
  auto cache = training_clips(s);
  log_get("tracking")->info("training {} on {} ({} videos, {} frames)", s.method, cache->path(), cache->videos().size(),
                            cache->total_frames());
  s.video.method = s.method;
  s.video.seed = s.seed;
  s.video.total_steps = s.total_steps;
  if (s.batch) s.video.batch = *s.batch;
  return video_method_create(s.video, std::move(cache));
}

}  // namespace

std::vector<std::string> method_names() {
  auto names = video_method_names();
  for (const auto& n : image_method_names()) names.push_back(n);
  return names;
}

bool method_is_image(const std::string& m) {
  const auto names = image_method_names();
  return std::find(names.begin(), names.end(), m) != names.end();
}

std::string method_list() {
  std::string s;
  for (const auto& n : method_names()) s += (s.empty() ? "" : ", ") + n;
  return s;
}

bool clip_cache_looks_like(const std::string& path) {
  if (fs::path(path).extension() == ".ctc") return true;
  char magic[8] = {};
  FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) return false;
  const size_t n = std::fread(magic, 1, 8, f);
  std::fclose(f);
  return n == 8 && std::string(magic, 8) == "CTCACHE1";
}

std::unique_ptr<TrainableMethod> training_method_create(TrainingSetup setup) {
  const auto names = method_names();
  if (std::find(names.begin(), names.end(), setup.method) == names.end()) {
    throw Error("unknown method '" + setup.method + "': use one of " + method_list());
  }
  return method_is_image(setup.method) ? image_method(setup) : video_method(setup);
}

namespace {

// An image method's published optimiser, learning rate (for batch 256), weight decay, temperature
// and momentum; every one warms up linearly, then decays on a cosine over --steps (the papers'
// warm-ups of 10 epochs are 1-10 % of runs of hundreds of epochs; a short run keeps 5 %).
TrainingRecipe image_recipe(const std::string& method) {
  TrainingRecipe r;
  r.batch = 256;
  r.schedule = "cosine";
  r.warmup_fraction = 0.05;
  auto set = [&](const char* source, const char* optimizer, double lr, double weight_decay) {
    r.source = source;
    r.optimizer = optimizer;
    r.lr = lr;
    r.weight_decay = weight_decay;
  };
  if (method == "simclr") {
    // The paper's CIFAR values (LARS 0.075 x sqrt(batch) = 1.2, eta 0.001, weight decay 1e-6,
    // tau 0.5) scored 1.1 points lower in kNN top-1, at 450 steps and at 15 minutes (README).
    set("SimCLR (Chen et al. 2020) with the small-batch CIFAR values of solo-learn (da Costa et al. 2022): LARS lr 0.4, eta 0.02, rate clipped at lr, "
        "weight decay 1e-4, tau 0.2", "lars", 0.4, 1e-4);
    r.lars_eta = 0.02;
    r.lars_clip = true;
    r.temperature = 0.2;
  } else if (method == "moco" || method == "pcl") {
    set(method == "moco" ? "MoCo v2 (Chen et al. 2020): SGD lr 0.03 per 256, momentum 0.9, weight decay 1e-4, cosine, tau 0.2; key EMA 0.99 (0.999 lags a short run by a thousand steps)"
                         : "PCL (Li et al. 2021): MoCo v2's optimiser (SGD lr 0.03 per 256, weight decay 1e-4, cosine), tau 0.2; key EMA 0.99",
        "sgd", 0.03, 1e-4);
    r.ema = 0.99;
  } else if (method == "byol") {
    // The paper's 0.2 per 256 (eta 0.001, EMA 0.996) is for batch 4096 and hundreds of epochs;
    // scaled down to 256 it moved the encoder too little in a few epochs (README "Image methods").
    // solo-learn also clips LARS's rate at lr; unclipped did better here (README).
    set("BYOL (Grill et al. 2020) with the small-batch CIFAR values of solo-learn (da Costa et al. 2022): LARS lr 1.0, eta 0.02, weight decay 1e-5, target EMA 0.99 -> 1",
        "lars", 1.0, 1e-5);
    r.lars_eta = 0.02;
    r.ema = 0.99;
  } else if (method == "swav") {
    set("SwAV (Caron et al. 2020), small-batch setting: LARS lr 0.6, weight decay 1e-6, tau 0.1, eps 0.05, prototypes frozen for the first epoch; "
        "trust coefficient 0.02 as in solo-learn's CIFAR setting (the paper's 0.001 is for hundreds of epochs)", "lars", 0.6, 1e-6);
    r.lars_eta = 0.02;
  } else if (method == "npid") {
    set("NPID (Wu et al. 2018): SGD lr 0.03, momentum 0.9, weight decay 5e-4, tau 0.07, bank momentum 0.5", "sgd", 0.03, 5e-4);
  } else if (method == "sela") {
    set("SeLa (Asano et al. 2020): SGD lr 0.05, momentum 0.9, weight decay 1e-5, lambda 25", "sgd", 0.05, 1e-5);
  } else if (method == "deepcluster") {
    set("DeepCluster (Caron et al. 2018): SGD lr 0.05, momentum 0.9, weight decay 1e-5, re-clustered every epoch", "sgd", 0.05, 1e-5);
  } else if (method == "iic") {
    set("IIC (Ji et al. 2019): Adam lr 1e-4, 5 sub-heads, overclustering heads", "adam", 1e-4, 0.0);
  } else if (method == "supcon") {
    set("SupCon (Khosla et al. 2020): SGD lr 0.5 per 1024 (0.125 per 256), momentum 0.9, weight decay 1e-4, tau 0.1", "sgd", 0.125, 1e-4);
  } else if (method == "cpc") {
    set("CPC (van den Oord et al. 2018): Adam lr 2e-4", "adam", 2e-4, 0.0);
  }
  if (const double tau = image_method_default_temperature(method); tau > 0 && !r.temperature) r.temperature = tau;
  return r;
}

}  // namespace

TrainingRecipe training_recipe(const std::string& method, bool cuda) {
  if (method_is_image(method)) return image_recipe(method);
  TrainingRecipe r;
  const int cpu_batch = 4;
  if (method == "mast") {
    // Adam 1e-3, batch 12, 256 crops; the lr halves at 0.4M, 0.6M, 0.8M and 1M samples.
    r.source = "MAST (Lai et al. 2020): Adam 1e-3, batch 12, 256x256, lr halved at 0.4M/0.6M/0.8M/1M samples";
    r.lr = 1e-3;
    r.batch = cuda ? 12 : cpu_batch;
    r.crop = 256;
    r.schedule = "step";
    for (int64_t samples : {400000, 600000, 800000, 1000000}) r.milestones.push_back(samples / *r.batch);
    r.gamma = 0.5;
  } else if (method == "corrflow") {
    r.source = "CorrFlow (Lai & Xie 2019): Adam 2e-4, batch 6, 256x256";
    r.lr = 2e-4;
    r.batch = cuda ? 6 : cpu_batch;
    r.crop = 256;
  } else if (method == "crw") {
    r.source = "CRW (Jabri et al. 2020): Adam 1e-4, batch 20, 256 crops of 0.8-1 of the area";
    r.lr = 1e-4;
    r.batch = cuda ? 20 : cpu_batch;
    r.crop = 256;
    r.min_scale = 0.8;
  } else if (method == "timecycle") {
    r.source = "TimeCycle (Wang et al. 2019): Adam 2e-4, beta1 0.5, batch 36, 240 crops, gradient norm clipped at 10";
    r.lr = 2e-4;
    r.beta1 = 0.5;
    r.batch = cuda ? 36 : cpu_batch;
    r.crop = 240;
    r.clip_grad = 10.0;
  }
  if (!r.source.empty()) {
    r.optimizer = "adam";   // all four train with Adam
    if (!cuda) r.source += "; batch " + std::to_string(cpu_batch) + " on the CPU";
  }
  return r;
}

nlohmann::json training_recipe_to_json(const TrainingRecipe& r) {
  nlohmann::json j = {{"source", r.source}};
  if (r.optimizer) j["optimizer"] = *r.optimizer;
  if (r.lr) j["lr"] = *r.lr;
  if (r.weight_decay) j["weight_decay"] = *r.weight_decay;
  if (r.warmup_fraction) j["warmup_fraction"] = *r.warmup_fraction;
  if (r.temperature) j["temperature"] = *r.temperature;
  if (r.ema) j["ema"] = *r.ema;
  if (r.beta1) j["beta1"] = *r.beta1;
  if (r.lars_eta) j["lars_eta"] = *r.lars_eta;
  if (r.lars_clip) j["lars_clip"] = *r.lars_clip;
  if (r.clip_grad) j["clip_grad"] = *r.clip_grad;
  if (r.min_scale) j["min_scale"] = *r.min_scale;
  if (r.batch) j["batch"] = *r.batch;
  if (r.crop) j["crop"] = *r.crop;
  if (r.schedule) j["schedule"] = *r.schedule;
  if (!r.milestones.empty()) j["milestones"] = r.milestones;
  if (r.gamma) j["gamma"] = *r.gamma;
  return j;
}

}  // namespace corrtrack
