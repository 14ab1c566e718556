// Benchmarks of the affinity step and of whole propagations (bench affinity / bench propagate).
#include "corrtrack/tracking_bench.h"

#include "corrtrack/propagation_files.h"

#include <filesystem>

#include <unistd.h>

namespace fs = std::filesystem;

namespace corrtrack {

nlohmann::json bench_affinity(const AffinityBenchConfig& a) {
  torch::manual_seed(0);
  auto q = l2_normalise(torch::randn({a.channels, a.height, a.width}), 0);
  auto k = l2_normalise(torch::randn({a.channels, a.height, a.width}), 0);
  auto best_of = [&](bool local) {
    double best = 1e30;
    torch::Tensor v;
    for (int r = 0; r < std::max(1, a.repeats); ++r) {
      const double t0 = time_now_s();
      v = affinity_topk(q, k, a.topk, a.radius, local, a.tile).first;
      best = std::min(best, time_now_s() - t0);
    }
    return std::make_pair(best, v);
  };
  const auto [local_s, local_v] = best_of(true);
  nlohmann::json j = {{"benchmark", "affinity"}, {"channels", a.channels}, {"height", a.height}, {"width", a.width},
                      {"topk", a.topk}, {"radius", a.radius}, {"tile", a.tile}, {"threads", torch::get_num_threads()},
                      {"omp_wait_policy", omp_wait_policy()}, {"local_ms", local_s * 1000.0}};
  if (a.dense) {
    const auto [dense_s, dense_v] = best_of(false);
    j["dense_ms"] = dense_s * 1000.0;
    j["speedup"] = dense_s / local_s;
    // Both compute the same top-k: report the largest difference as a check.
    auto finite = torch::isfinite(dense_v);
    j["max_abs_diff"] = (dense_v.masked_select(finite) - local_v.masked_select(finite)).abs().max().item<double>();
  }
  j["peak_rss_mb"] = peak_rss_bytes() / 1048576.0;
  return j;
}

nlohmann::json bench_propagate(FrameSource& src, const std::vector<Anchor>& anchors, FeatureExtractor& features,
                               const PropagationConfig& cfg) {
  const Image f0 = src.frame(0);
  const int64_t rss_before = current_rss_bytes();
  peak_rss_reset();
  const std::string tmp = (fs::temp_directory_path() / ("corrtrack-bench-" + std::to_string(::getpid()))).string();
  PropagationResult r;
  try {
    r = propagate_to_files(src, anchors, features, cfg, PropagationOutput{tmp});
  } catch (...) {
    fs::remove_all(tmp);
    throw;
  }
  fs::remove_all(tmp);
  const int64_t propagated = std::max<int64_t>(1, r.frames - 1);
  nlohmann::json stages;
  for (const auto& [name, secs] : r.stages.stages()) stages[name] = {{"seconds", secs}, {"ms_per_frame", 1000.0 * secs / propagated}};
  return {{"benchmark", "propagate"},
          {"source", src.path()},
          {"features", features.name()},
          {"device", features.device().str()},
          {"width", f0.width},
          {"height", f0.height},
          {"frames", r.frames},
          {"objects", anchors.empty() ? 0 : mask_num_objects(anchors.front().mask)},
          {"seconds", r.seconds},
          {"fps", r.frames / r.seconds},
          {"peak_rss_mb", peak_rss_bytes() / 1048576.0},
          {"rss_before_mb", rss_before / 1048576.0},
          {"threads", torch::get_num_threads()},
          {"omp_wait_policy", omp_wait_policy()},
          {"config", {{"mode", propagation_mode_name(cfg.mode)}, {"context", cfg.context}, {"topk", cfg.topk},
                      {"radius", cfg.radius}, {"temperature", cfg.temperature}, {"local_window", cfg.local_window},
                      {"tile", cfg.tile}, {"scale", cfg.scale},
                      {"feedback", label_feedback_name(label_feedback_effective(cfg))}, {"roi_gap", cfg.roi_gap},
                      {"long_term", cfg.long_term}, {"short_term", cfg.short_term}}},
          {"stages", stages}};
}

}  // namespace corrtrack
