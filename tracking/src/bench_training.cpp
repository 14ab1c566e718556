// bench train / bench clips: training speed through the real loop, and clip loading.
#include "corrtrack/training_setup.h"

#include <filesystem>

#include <unistd.h>

namespace fs = std::filesystem;

namespace corrtrack {

nlohmann::json bench_train(TrainableMethod& method, const OptimizerConfig& opt, TrainOptions options, int64_t warmup_steps) {
  const auto tmp = fs::temp_directory_path() / ("corrtrack-bench-" + std::to_string(::getpid()));
  struct Cleanup {
    fs::path p;
    ~Cleanup() { std::error_code ec; fs::remove_all(p, ec); }
  } cleanup{tmp};
  options.resume = false;
  options.checkpoint_every = options.log_every = 1000000;
  options.progress = [](const ProgressInfo&) {};
  // Untimed warm-up steps, then the timed run (both through the real loop).
  TrainOptions warm = options;
  warm.out_dir = (tmp / "warm").string();
  warm.steps = std::max<int64_t>(1, warmup_steps);
  train_run(method, opt, LrSchedule{}, warm);
  options.out_dir = (tmp / "timed").string();
  peak_rss_reset();
  const auto s = train_run(method, opt, LrSchedule{}, options);
  return {{"method", method.name()}, {"device", options.device.str()}, {"steps", s.last_step}, {"ms_per_step", s.ms_per_step}, {"sync_ms_per_step", s.sync_ms_per_step},
          {method_is_image(method.name()) ? "images_per_s" : "clips_per_s", s.samples_per_s},
          {"threads", torch::get_num_threads()}, {"omp_wait_policy", omp_wait_policy()}, {"peak_rss_mb", peak_rss_bytes() / 1048576.0}};
}

nlohmann::json bench_clips(const std::string& cache_path, const std::vector<std::string>& inputs, int clips, int crop) {
  auto cache = std::make_shared<ClipCache>(cache_path);
  const auto& vids = cache->videos();
  torch::Generator g(at::make_generator<at::CPUGeneratorImpl>(1));
  // The same clips (video, start) for both paths: three frames 4 apart, as float tensors.
  std::vector<std::pair<size_t, int64_t>> picks;
  for (int i = 0; i < clips; ++i) {
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
  sc.crop = crop;
  ClipSampler sampler(cache, sc);
  t0 = time_now_s();
  for (int i = 0; i < clips; ++i) sampler.sample({0, 4, 8}, g);
  const double sample_s = time_now_s() - t0;
  nlohmann::json out = {{"cache", cache_path}, {"clips", clips}, {"cache_load_clips_per_s", clips / cache_s},
                        {"cache_load_augment_clips_per_s", clips / sample_s}};
  if (inputs.empty()) return out;
  const auto sources = clip_cache_expand_inputs(inputs);
  if (sources.size() != vids.size()) throw Error("the inputs do not list the same videos as the cache '" + cache_path + "'");
  t0 = time_now_s();
  for (const auto& [v, start] : picks) {
    FrameSourceOptions fo;
    fo.width = vids[v].width;
    fo.height = vids[v].height;
    auto src = frame_source_open(sources[v], fo);
    for (int o : {0, 4, 8}) if (start + o < vids[v].frames) image_to_tensor(src->frame(start + o));
  }
  const double dec_s = time_now_s() - t0;
  out["decode_load_clips_per_s"] = clips / dec_s;
  out["load_speedup"] = dec_s / cache_s;
  return out;
}

}  // namespace corrtrack
