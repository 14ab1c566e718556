// corrtrack train / cache build / cache inspect / bench train / bench clips.
#include <torch/torch.h>

#include "cli_common.h"
#include "corrtrack/core.h"
#include "corrtrack/image_methods.h"
#include "corrtrack/tracking.h"
#include "corrtrack/train.h"
#include "corrtrack/video.h"
#include "corrtrack/video_methods.h"

#include <cstdio>
#include <filesystem>
#include <unistd.h>

namespace fs = std::filesystem;
using nlohmann::json;

namespace corrtrack::cli {

namespace {

struct TrainArgs {
  std::string method, out, device = "auto", schedule = "constant";
  std::vector<std::string> data;
  VideoMethodConfig video;
  ImageMethodConfig image;
  OptimizerConfig opt;
  TrainOptions run;
  int64_t warmup = 0;
  std::vector<int64_t> milestones;
  double gamma = 0.5;
  int cache_size = 256;
  bool image_batch_given = false;
  std::string backbone = "resnet50";
};

torch::Device pick_device(const std::string& name) {
  if (name == "cpu") return torch::kCPU;
  if (name == "cuda") {
    if (!torch::cuda::is_available()) throw Error("--device cuda: no CUDA device is available to this build");
    at::globalContext().setBenchmarkCuDNN(true);  // fixed crop sizes: let cuDNN pick the fastest kernels
    return torch::kCUDA;
  }
  if (name == "auto") return pick_device(torch::cuda::is_available() ? "cuda" : "cpu");
  throw Error("--device must be cpu, cuda or auto, got '" + name + "'");
}

bool is_video_method(const std::string& m) {
  for (const auto& n : video_method_names()) if (n == m) return true;
  return false;
}

bool is_image_method(const std::string& m) {
  for (const auto& n : image_method_names()) if (n == m) return true;
  return false;
}

bool is_method(const std::string& m) { return is_video_method(m) || is_image_method(m); }

std::string method_list() {
  std::string s;
  for (const auto& n : video_method_names()) s += (s.empty() ? "" : ", ") + n;
  for (const auto& n : image_method_names()) s += ", " + n;
  return s;
}

// True when `path` starts with the cache magic (or is named .ctc, so that a damaged cache is
// reported as such rather than treated as a video).
bool looks_like_cache(const std::string& path) {
  if (fs::path(path).extension() == ".ctc") return true;
  char magic[8] = {};
  FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) return false;
  const size_t n = std::fread(magic, 1, 8, f);
  std::fclose(f);
  return n == 8 && std::string(magic, 8) == "CTCACHE1";
}

// A cache file as given, or one built from videos/folders into RUN/clips.ctc (reused on --resume).
std::shared_ptr<const ClipCache> open_training_data(const TrainArgs& a) {
  if (a.data.empty()) throw Error("--data is required: a clip cache (corrtrack cache build) or videos / frame folders");
  if (a.data.size() == 1 && fs::is_regular_file(a.data[0]) && looks_like_cache(a.data[0])) {
    return std::make_shared<ClipCache>(a.data[0]);
  }
  dir_ensure_writable(a.out);
  const std::string cache = (fs::path(a.out) / "clips.ctc").string();
  if (!fs::exists(cache)) {
    log_get("app")->info("decoding the training videos into {} (short side {})", cache, a.cache_size);
    clip_cache_build(a.data, cache, a.cache_size);
  }
  return std::make_shared<ClipCache>(cache);
}

void add_train_options(CLI::App* c, TrainArgs& a) {
  c->add_option("--method", a.method, "Method: " + method_list())->required();
  c->add_option("--data", a.data, "Video methods: clip cache, videos, frame folders, DAVIS roots. Image methods: fashion-mnist or an image folder")->required();
  c->add_option("--batch", a.video.batch, "Clips (video methods; default 12) or images (image methods; default 256) per step");
  c->add_option("--encoder", a.image.encoder.kind, "Image methods: convnet | resnet18")->capture_default_str();
  c->add_option("--width", a.image.encoder.width, "Image methods: ConvNet base width (features = 4 x width)")->capture_default_str();
  c->add_option("--temperature", a.image.temperature, "Image methods and crw: softmax temperature (0 = the method's default)")->capture_default_str();
  c->add_option("--clusters", a.image.clusters, "Image methods: prototypes / clusters (0 = the method's default)")->capture_default_str();
  c->add_option("--queue", a.image.queue, "Image methods: MoCo/PCL queue length, NPID noise samples")->capture_default_str();
  c->add_option("--image-size", a.image.augment.size, "Image methods: view size (ImageFolder images are resized to it)")->capture_default_str();
  c->add_option("--clip-frames", a.video.clip_frames, "crw, timecycle: frames per clip (0 = 4)")->capture_default_str();
  c->add_option("--frame-gap", a.video.frame_gap, "crw, timecycle: frames between clip frames (0 = crw 3, timecycle 2)")->capture_default_str();
  c->add_option("--nodes", a.video.nodes, "crw: patch (64x64 patches at stride 32) | dense (every stride-8 cell)")->capture_default_str();
  c->add_option("--edge-dropout", a.video.edge_dropout, "crw: probability of dropping a transition edge")->capture_default_str();
  c->add_option("--backbone", a.backbone, "timecycle: resnet50 (published) | resnet18")->capture_default_str();
  c->add_option("--patch", a.video.patch, "timecycle: tracked patch side in pixels")->capture_default_str();
  c->add_option("--crop", a.video.sampler.crop, "Training crop side in pixels")->capture_default_str();
  c->add_option("--min-scale", a.video.sampler.min_scale, "Smallest crop area fraction")->capture_default_str();
  c->add_option("--jitter", a.video.sampler.jitter, "Colour jitter strength")->capture_default_str();
  c->add_option("--steps", a.run.steps, "Optimiser steps")->capture_default_str();
  c->add_option("--optimizer", a.opt.name, "sgd | adam | lars")->capture_default_str();
  c->add_option("--lr", a.opt.lr, "Base learning rate")->capture_default_str();
  c->add_option("--beta1", a.opt.beta1, "Adam beta1 (TimeCycle used 0.5)")->capture_default_str();
  c->add_option("--weight-decay", a.opt.weight_decay, "Weight decay")->capture_default_str();
  c->add_option("--schedule", a.schedule, "constant | cosine | step")->capture_default_str();
  c->add_option("--warmup", a.warmup, "Linear warm-up steps")->capture_default_str();
  c->add_option("--milestones", a.milestones, "Step schedule: steps where the lr is multiplied by --gamma");
  c->add_option("--gamma", a.gamma, "Step schedule factor")->capture_default_str();
  c->add_option("--clip-grad", a.run.clip_grad_norm, "Clip the gradient norm (0 = off)")->capture_default_str();
  c->add_option("--seed", a.run.seed, "Seed (initialisation and batches)")->capture_default_str();
  c->add_option("--device", a.device, "cpu | cuda | auto")->capture_default_str();
  c->add_option("--cache-size", a.cache_size, "Short side of frames decoded into the run's cache")->capture_default_str();
}

std::unique_ptr<TrainableMethod> make_image_method(TrainArgs& a) {
  auto data = image_dataset_load(a.data.size() == 1 ? a.data[0] : std::string(), /*train=*/true, a.image.augment.size);
  a.image.method = a.method;
  a.image.seed = a.run.seed;
  a.image.total_steps = a.run.steps;
  a.image.encoder.in_channels = int(data.images.size(1));
  if (a.image_batch_given) a.image.batch = a.video.batch;
  log_get("app")->info("training {} on {} ({} images, {}x{}x{})", a.method, data.name, data.images.size(0), data.images.size(1),
                       data.images.size(2), data.images.size(3));
  return image_method_create(a.image, data.images, data.labels);
}

std::unique_ptr<TrainableMethod> make_method(TrainArgs& a, std::shared_ptr<const ClipCache> cache) {
  if (!is_method(a.method)) throw Error("unknown method '" + a.method + "': use one of " + method_list());
  a.video.method = a.method;
  a.video.seed = a.run.seed;
  a.video.total_steps = a.run.steps;
  a.video.temperature = a.image.temperature;
  if (a.backbone == "resnet50" || a.backbone == "resnet18") {
    a.video.backbone_depth = a.backbone == "resnet50" ? 50 : 18;
  } else {
    throw Error("--backbone must be resnet50 or resnet18, got '" + a.backbone + "'");
  }
  return video_method_create(a.video, std::move(cache));
}

// An image method on its image set, or a video method on its clip cache (which it keeps alive).
std::unique_ptr<TrainableMethod> make_any_method(TrainArgs& a) {
  if (is_image_method(a.method)) return make_image_method(a);
  auto cache = open_training_data(a);
  log_get("app")->info("training {} on {} ({} videos, {} frames) on {}", a.method, cache->path(), cache->videos().size(),
                       cache->total_frames(), a.run.device.str());
  return make_method(a, cache);
}

LrSchedule make_schedule(const TrainArgs& a) {
  LrSchedule s;
  s.kind = a.schedule;
  s.warmup_steps = a.warmup;
  s.milestones = a.milestones;
  s.gamma = a.gamma;
  return s;
}

std::string command_json(const TrainArgs& a) {
  json j = {{"method", a.method}, {"data", a.data}, {"batch", a.video.batch}, {"crop", a.video.sampler.crop},
            {"steps", a.run.steps}, {"optimizer", a.opt.name}, {"lr", a.opt.lr}, {"schedule", a.schedule},
            {"seed", a.run.seed}};
  return j.dump();
}

}  // namespace

namespace {

void add_train_commands(CLI::App& app) {
  // ---- train ----
  auto args = std::make_shared<TrainArgs>();
  auto* train = app.add_subcommand("train", "Train a correspondence method; writes RUN/last.ckpt and RUN/metrics.jsonl");
  add_train_options(train, *args);
  train->add_option("--out", args->out, "Run folder")->required();
  train->add_flag("--resume", args->run.resume, "Continue the run in --out from its last checkpoint");
  train->add_option("--checkpoint-every", args->run.checkpoint_every, "Steps between checkpoints")->capture_default_str();
  train->add_option("--log-every", args->run.log_every, "Steps between metrics.jsonl lines")->capture_default_str();
  train->add_option("--time-budget", args->run.time_budget_s, "Stop after this many seconds of training (0 = off)")->capture_default_str();
  train->callback([args, train] {
    auto& a = *args;
    if (!is_method(a.method)) throw Error("unknown method '" + a.method + "': use one of " + method_list());
    if (a.run.checkpoint_every < 1 || a.run.log_every < 1) throw Error("--checkpoint-every and --log-every must be >= 1");
    a.run.device = pick_device(a.device);
    a.run.out_dir = a.out;
    train_out_check(a.run);  // before any data is loaded or a cache built into the run folder
    a.image_batch_given = train->get_option("--batch")->count() > 0;
    auto method = make_any_method(a);
    a.run.command_json = command_json(a);
    const auto s = train_run(*method, a.opt, make_schedule(a), a.run);
    json out = {{"method", a.method}, {"checkpoint", s.checkpoint}, {"first_step", s.first_step}, {"last_step", s.last_step},
                {"skipped_steps", s.skipped_steps}, {"seconds", s.seconds}, {"ms_per_step", s.ms_per_step},
                {is_image_method(a.method) ? "images_per_s" : "clips_per_s", s.samples_per_s}, {"final_loss", s.final_loss}, {"cancelled", s.cancelled},
                {"budget_reached", s.budget_reached}, {"device", a.run.device.str()}};
    json_emit(out);
  });

  // ---- export ----
  struct ExportArgs {
    std::string checkpoint, out, propagation;
    bool half = false;
  };
  auto ea = std::make_shared<ExportArgs>();
  auto* ex = app.add_subcommand("export", "Write a training checkpoint's encoder alone (for propagate, sharing, bundling)");
  ex->add_option("--checkpoint", ea->checkpoint, "Training checkpoint (RUN/last.ckpt)")->required();
  ex->add_option("--out", ea->out, "Model file to write")->required();
  ex->add_flag("--half", ea->half, "Store float16 weights (half the size; computed in float32)");
  ex->add_option("--propagation", ea->propagation, "Recommended engine settings as JSON, e.g. '{\"scale\":0.5}'");
  ex->callback([ea] {
    const auto hints = ea->propagation.empty() ? PropagationHints() : propagation_hints_from_json(ea->propagation, "--propagation");
    feature_encoder_export(ea->checkpoint, ea->out, ea->half, hints);
    std::error_code ec;
    json_emit({{"model", ea->out}, {"bytes", fs::file_size(ea->out, ec)}, {"weights", ea->half ? "float16" : "float32"}});
  });

  // ---- eval-image ----
  struct EvalImageArgs {
    std::string checkpoint, data = "fashion-mnist", features = "pixels", json;
    ImageEncoderConfig random_encoder;
    int linear_epochs = 10, size = 32;
    uint64_t seed = 0;
  };
  auto ia = std::make_shared<EvalImageArgs>();
  auto* ei = app.add_subcommand("eval-image", "kNN, linear probe, NMI, alignment and uniformity of an image encoder");
  ei->add_option("--checkpoint", ia->checkpoint, "Image-method checkpoint (RUN/last.ckpt)");
  ei->add_option("--features", ia->features, "Without --checkpoint: pixels | random")->capture_default_str();
  ei->add_option("--encoder", ia->random_encoder.kind, "Encoder of --features random: convnet | resnet18")->capture_default_str();
  ei->add_option("--width", ia->random_encoder.width, "ConvNet width of --features random")->capture_default_str();
  ei->add_option("--data", ia->data, "fashion-mnist or an image folder with train/ and test/")->capture_default_str();
  ei->add_option("--image-size", ia->size, "Image folder: images resized to this")->capture_default_str();
  ei->add_option("--linear-epochs", ia->linear_epochs, "Linear probe epochs")->capture_default_str();
  ei->add_option("--seed", ia->seed, "Seed (random encoder, k-means, probe)")->capture_default_str();
  ei->add_option("--json", ia->json, "Also write the JSON here");
  ei->callback([ia] {
    if (!ia->checkpoint.empty()) image_checkpoint_encoder(ia->checkpoint);  // refuse a foreign one before loading data
    const auto train = image_dataset_load(ia->data, true, ia->size);
    const auto test = image_dataset_load(ia->data, false, ia->size);
    ia->random_encoder.in_channels = int(train.images.size(1));
    torch::manual_seed(ia->seed);
    ImageEvalOptions o;
    o.linear_epochs = ia->linear_epochs;
    o.seed = ia->seed;
    const auto r = image_evaluate(ia->checkpoint, ia->features, ia->random_encoder, train.images, train.labels, test.images,
                                  test.labels, int64_t(train.classes.size()), o);
    json j = {{"data", train.name}, {"checkpoint", ia->checkpoint}, {"features", ia->checkpoint.empty() ? ia->features : "checkpoint"},
              {"knn_top1", r.knn_top1_k200}, {"knn_top1_k20", r.knn_top1_k20}, {"knn_top1_k200", r.knn_top1_k200},
              {"linear_top1", r.linear_top1}, {"nmi", r.nmi_kmeans}, {"alignment", r.alignment}, {"uniformity", r.uniformity},
              {"train_images", r.train_images}, {"test_images", r.test_images}};
    if (r.nmi_head >= 0) j["nmi_cluster_head"] = r.nmi_head;
    if (!ia->json.empty()) json_emit(j, ia->json);
    json_emit(j);
  });

  // ---- cache ----
  auto* cache = app.add_subcommand("cache", "Pre-decode training videos into a clip cache")->require_subcommand(1);
  struct CacheArgs {
    std::vector<std::string> inputs;
    std::string out, path;
    int size = 256;
  };
  auto ca = std::make_shared<CacheArgs>();
  auto* build = cache->add_subcommand("build", "Decode videos / frame folders / DAVIS roots into one cache file");
  build->add_option("--input", ca->inputs, "Video files, frame folders, folders of videos, DAVIS roots")->required();
  build->add_option("--out", ca->out, "Cache file to write (.ctc)")->required();
  build->add_option("--size", ca->size, "Short side of the stored frames (0 = native)")->capture_default_str();
  build->callback([ca] {
    if (ca->size < 0) throw Error("--size must be >= 0");
    const auto r = clip_cache_build(ca->inputs, ca->out, ca->size);
    json_emit({{"cache", ca->out}, {"videos", r.videos}, {"frames", r.frames}, {"bytes", r.bytes}, {"seconds", r.seconds}});
  });
  auto* inspect = cache->add_subcommand("inspect", "List the videos of a cache");
  inspect->add_option("cache", ca->path, "Cache file")->required();
  inspect->callback([ca] {
    ClipCache c(ca->path);
    json vids = json::array();
    for (const auto& v : c.videos()) vids.push_back({{"name", v.name}, {"frames", v.frames}, {"width", v.width}, {"height", v.height}});
    json_emit({{"cache", ca->path}, {"frames", c.total_frames()}, {"videos", vids}});
  });
}

void add_train_benchmarks(CLI::App& bench) {
  // ---- bench train: ms/step and clips/s of a method, no files written ----
  auto args = std::make_shared<TrainArgs>();
  auto* bt = bench.add_subcommand("train", "Training speed of a method: ms per step, clips per second");
  add_train_options(bt, *args);
  args->run.steps = 20;
  bt->add_option("--warmup-steps", args->warmup, "Untimed steps first")->capture_default_str();
  bt->callback([args, bt] {
    auto& a = *args;
    a.run.device = pick_device(a.device);
    a.image_batch_given = bt->get_option("--batch")->count() > 0;
    const auto tmp = fs::temp_directory_path() / ("corrtrack-bench-" + std::to_string(::getpid()));
    a.out = tmp.string();
    struct Cleanup {
      fs::path p;
      ~Cleanup() { std::error_code ec; fs::remove_all(p, ec); }
    } cleanup{tmp};
    auto method = make_any_method(a);
    const int batch = is_image_method(a.method) ? (a.image_batch_given ? a.video.batch : a.image.batch) : a.video.batch;
    // Untimed warm-up steps, then the timed run (both through the real loop).
    TrainOptions warm = a.run;
    warm.out_dir = (tmp / "warm").string();
    warm.steps = std::max<int64_t>(1, a.warmup);
    warm.checkpoint_every = warm.log_every = 1000000;
    warm.progress = [](const ProgressInfo&) {};
    train_run(*method, a.opt, LrSchedule{}, warm);
    TrainOptions timed = a.run;
    timed.out_dir = (tmp / "timed").string();
    timed.checkpoint_every = timed.log_every = 1000000;
    timed.progress = [](const ProgressInfo&) {};
    peak_rss_reset();
    const auto s = train_run(*method, a.opt, LrSchedule{}, timed);
    json_emit({{"method", a.method}, {"device", a.run.device.str()}, {"batch", batch},
               {"size", is_image_method(a.method) ? a.image.augment.size : a.video.sampler.crop},
               {"encoder", is_image_method(a.method) ? a.image.encoder.kind : "resnet18-stride4"},
               {"steps", s.last_step}, {"ms_per_step", s.ms_per_step},
               {is_image_method(a.method) ? "images_per_s" : "clips_per_s", s.samples_per_s},
               {"threads", torch::get_num_threads()}, {"peak_rss_mb", peak_rss_bytes() / 1048576.0}});
  });

  // ---- bench clips: data loading from the cache vs decoding the sources ----
  struct ClipArgs {
    std::string cache;
    std::vector<std::string> inputs;
    int clips = 50, crop = 256;
  };
  auto ca = std::make_shared<ClipArgs>();
  auto* bc = bench.add_subcommand("clips", "Clip loading: from a cache vs decoding the source videos");
  bc->add_option("--cache", ca->cache, "Clip cache")->required();
  bc->add_option("--input", ca->inputs, "The sources the cache was built from (decoded for comparison)");
  bc->add_option("--clips", ca->clips, "Clips to load (3 frames, 4 apart)")->capture_default_str();
  bc->add_option("--crop", ca->crop, "Crop side")->capture_default_str();
  bc->callback([ca] {
    auto cache = std::make_shared<ClipCache>(ca->cache);
    const auto& vids = cache->videos();
    auto gen = at::make_generator<at::CPUGeneratorImpl>(1);
    torch::Generator g(gen);
    // The same clips (video, start) for both paths: three frames 4 apart, as float tensors.
    std::vector<std::pair<size_t, int64_t>> picks;
    for (int i = 0; i < ca->clips; ++i) {
      const size_t v = size_t(random_int(g, int64_t(vids.size())));
      picks.push_back({v, vids[v].frames > 9 ? random_int(g, vids[v].frames - 8) : 0});
    }
    double t0 = time_now_s();
    for (const auto& [v, start] : picks) {
      for (int o : {0, 4, 8}) if (start + o < vids[v].frames) cache->frame_tensor(v, start + o);
    }
    const double cache_s = time_now_s() - t0;
    // Crop, flip and jitter on top (what training adds after loading).
    ClipSamplerConfig sc;
    sc.crop = ca->crop;
    ClipSampler sampler(cache, sc);
    t0 = time_now_s();
    for (int i = 0; i < ca->clips; ++i) sampler.sample({0, 4, 8}, g);
    const double sample_s = time_now_s() - t0;
    json out = {{"cache", ca->cache}, {"clips", ca->clips}, {"cache_load_clips_per_s", ca->clips / cache_s},
                {"cache_load_augment_clips_per_s", ca->clips / sample_s}};
    if (!ca->inputs.empty()) {
      const auto sources = clip_cache_expand_inputs(ca->inputs);
      if (sources.size() != vids.size()) throw Error("--input does not list the same videos as the cache");
      t0 = time_now_s();
      for (const auto& [v, start] : picks) {
        FrameSourceOptions fo;
        fo.width = vids[v].width;
        fo.height = vids[v].height;
        auto src = frame_source_open(sources[v], fo);
        for (int o : {0, 4, 8}) if (start + o < vids[v].frames) image_to_tensor(src->frame(start + o));
      }
      const double dec_s = time_now_s() - t0;
      out["decode_load_clips_per_s"] = ca->clips / dec_s;
      out["load_speedup"] = dec_s / cache_s;
    }
    json_emit(out);
  });
}

}  // namespace

void register_train_commands(CLI::App& app) {
  add_train_commands(app);
  add_train_benchmarks(*app.get_subcommand("bench"));
}

}  // namespace corrtrack::cli
