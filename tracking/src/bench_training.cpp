// bench train / bench clips: training speed through the real loop, and clip loading.
#include "corrtrack/training_setup.h"

#include <atomic>
#include <exception>
#include <mutex>
#include <filesystem>
#include <thread>

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

nlohmann::json bench_clips(const BenchClipsOptions& o) {
  if (o.clips < 1 || o.batch < 1) throw SettingError("clips", "and --batch must be at least 1");
  auto store = training_clips(o.setup);
  // Bytes on disk of what is read: the cache file, or the streamed videos and frame folders.
  uint64_t bytes = 0;
  std::error_code ec;
  if (const auto* cache = dynamic_cast<const ClipCache*>(store.get())) {
    bytes = fs::file_size(cache->path(), ec);
  } else {
    for (const auto& src : clip_cache_expand_inputs(o.setup.data)) {
      if (fs::is_regular_file(src, ec)) { bytes += fs::file_size(src, ec); continue; }
      for (const auto& e : fs::directory_iterator(src, ec)) if (e.is_regular_file()) bytes += e.file_size(ec);
    }
  }
  ClipSamplerConfig sc;
  sc.crop = o.crop;
  const ClipSampler sampler(store, sc);
  const auto offsets = ClipOffsets::fixed({0, 4, 8});
  const int steps = (o.clips + o.batch - 1) / o.batch;
  const int clips = steps * o.batch;
  nlohmann::json results = nlohmann::json::array();
  for (int w : o.workers) {
    // Reading alone (draw, decode, crop), on w threads as the loader's workers do (0: one).
    const int threads = std::max(1, w);
    std::atomic<int> next{0};
    std::mutex mu;
    std::exception_ptr failure;
    auto read_some = [&] {
      try {
        for (int j = next++; j < clips; j = next++) {
          auto gen = torch::Generator(at::make_generator<at::CPUGeneratorImpl>(clip_seed(o.setup.seed, 1, 0, j)));
          ClipDraw d;
          sampler.draw_and_read(offsets, gen, &d);
        }
      } catch (...) {
        std::lock_guard<std::mutex> lock(mu);
        if (!failure) failure = std::current_exception();
        next = clips;
      }
    };
    double t0 = time_now_s();
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t) pool.emplace_back(read_some);
    for (auto& t : pool) t.join();
    if (failure) std::rethrow_exception(failure);
    const double read_s = time_now_s() - t0;
    // Through the loader as a training step receives them: rendered (resize, flip, jitter) here.
    ClipLoaderConfig lc;
    lc.workers = w;
    ClipLoader loader(sampler, o.setup.seed, lc);
    loader.batch(0, 0, o.batch, offsets, torch::kCPU);   // untimed: starts the workers
    t0 = time_now_s();
    for (int s = 1; s <= steps; ++s) loader.batch(s, 0, o.batch, offsets, torch::kCPU);
    const double dt = time_now_s() - t0;
    const auto st = loader.stats();
    results.push_back({{"workers", w}, {"read_clips_per_s", clips / read_s}, {"clips_per_s", clips / dt},
                       {"wait_ms_per_clip", st.wait_ms / double(st.clips)}, {"failed_reads", st.failed_reads}});
  }
  return {{"data", store->path()}, {"form", store->kind()}, {"videos", store->videos().size()}, {"frames", store->total_frames()},
          {"bytes", bytes}, {"clip", "3 frames, 4 apart"}, {"crop", o.crop}, {"clips", clips}, {"batch", o.batch},
          {"threads", torch::get_num_threads()}, {"results", results}};
}

}  // namespace corrtrack
