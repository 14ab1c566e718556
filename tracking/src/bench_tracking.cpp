// Benchmarks of the affinity step and of whole propagations (bench affinity / bench propagate).
#include "corrtrack/tracking_bench.h"

#include "corrtrack/inspection.h"
#include "corrtrack/propagation_files.h"

#include <cmath>
#include <filesystem>
#include <random>

#include <unistd.h>

#ifdef CORRTRACK_WITH_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAFunctions.h>
#endif

namespace fs = std::filesystem;

namespace corrtrack {

namespace {

#ifdef CORRTRACK_WITH_CUDA
c10::DeviceIndex cuda_index(torch::Device device) {
  return device.has_index() ? device.index() : c10::cuda::current_device();
}
#endif

// Starts counting the peak of the memory the CUDA caching allocator hands out on `device`.
void device_peak_reset([[maybe_unused]] torch::Device device) {
#ifdef CORRTRACK_WITH_CUDA
  if (device.is_cuda()) c10::cuda::CUDACachingAllocator::resetPeakStats(cuda_index(device));
#endif
}

// Peak MB allocated on a CUDA `device` since device_peak_reset (all pools: stat 0 is the
// aggregate); null on the CPU or in a build without CUDA.
nlohmann::json device_peak_mb([[maybe_unused]] torch::Device device) {
#ifdef CORRTRACK_WITH_CUDA
  if (device.is_cuda()) {
    const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(cuda_index(device));
    return static_cast<double>(stats.allocated_bytes[0].peak) / 1048576.0;
  }
#endif
  return nullptr;
}

}  // namespace

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
  device_peak_reset(features.device());
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
          {"precision", precision_name(features.precision())},
          {"device_peak_mb", device_peak_mb(features.device())},
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
                      {"feedback", label_feedback_name(label_feedback_effective(cfg))}, {"feedback_power", cfg.feedback_power},
                      {"refine", cfg.refine_radius}, {"refine_eps", cfg.refine_eps}, {"flip", cfg.flip}, {"roi_gap", cfg.roi_gap},
                      {"long_term", cfg.long_term}, {"short_term", cfg.short_term}}},
          {"stages", stages}};
}

namespace {

// Frames of a pan over one texture, made once.
class PanClip : public FrameSource {
 public:
  PanClip(int width, int height, int frames, int dx, int dy, uint64_t seed)
      : m_w(width), m_h(height), m_n(frames), m_dx(dx), m_dy(dy), m_path("pan clip (seed " + std::to_string(seed) + ")") {
    if (width < 16 || height < 16 || frames < 1) throw Error("a pan clip needs at least 16x16 pixels and one frame");
    const int64_t travel_x = int64_t(std::abs(dx)) * (frames - 1), travel_y = int64_t(std::abs(dy)) * (frames - 1);
    if (travel_x > 8 * width || travel_y > 8 * height) throw Error("the pan travels too far for its frames");
    m_tw = int(width + travel_x);
    m_th = int(height + travel_y);
    m_texture = texture(seed);
  }
  int64_t size() override { return m_n; }
  Image frame(int64_t k) override {
    if (k < 0 || k >= m_n) throw Error("frame " + std::to_string(k) + " is outside the pan clip");
    // The window starts at the side the pan moves away from.
    const int x0 = int((m_dx >= 0 ? 0 : m_tw - m_w) + m_dx * k), y0 = int((m_dy >= 0 ? 0 : m_th - m_h) + m_dy * k);
    Image img(m_w, m_h, 3);
    for (int y = 0; y < m_h; ++y) std::copy_n(m_texture.px(x0, y0 + y), size_t(m_w) * 3, img.px(0, y));
    return img;
  }
  bool next(Image& out) override {
    if (m_pos >= m_n) return false;
    out = frame(m_pos++);
    return true;
  }
  std::vector<double> timestamps() override {
    std::vector<double> t(static_cast<size_t>(m_n));
    for (int64_t k = 0; k < m_n; ++k) t[size_t(k)] = k / 25.0;
    return t;
  }
  std::string frame_name(int64_t k) override {
    char buf[16];
    std::snprintf(buf, sizeof buf, "%05lld", static_cast<long long>(k));
    return buf;
  }
  VideoInfo info() override {
    VideoInfo v;
    v.path = m_path;
    v.container = "synthetic";
    v.width = m_w;
    v.height = m_h;
    v.fps = 25.0;
    v.frame_count = m_n;
    return v;
  }
  const std::string& path() const override { return m_path; }

 private:
  // Smooth colour fields (random colours every 24 px, bilinear) with discs of 3-9 px radius on top.
  Image texture(uint64_t seed) const {
    std::mt19937_64 rng(seed);
    std::uniform_int_distribution<int> byte(0, 255);
    Image coarse(std::max(2, m_tw / 24 + 2), std::max(2, m_th / 24 + 2), 3);
    for (auto& v : coarse.data) v = uint8_t(byte(rng));
    Image t = image_resize(coarse, m_tw, m_th);
    std::uniform_real_distribution<double> ux(0, m_tw), uy(0, m_th), ur(6, 16);
    const int64_t discs = int64_t(m_tw) * m_th / 600;
    for (int64_t i = 0; i < discs; ++i) {
      const double cx = ux(rng), cy = uy(rng), r = ur(rng);
      const uint8_t c[3] = {uint8_t(byte(rng)), uint8_t(byte(rng)), uint8_t(byte(rng))};
      for (int y = std::max(0, int(cy - r)); y <= std::min(m_th - 1, int(cy + r)); ++y)
        for (int x = std::max(0, int(cx - r)); x <= std::min(m_tw - 1, int(cx + r)); ++x)
          if ((x - cx) * (x - cx) + (y - cy) * (y - cy) <= r * r) std::copy_n(c, 3, t.px(x, y));
    }
    return t;
  }
  int m_w, m_h;
  int64_t m_n;
  int m_dx, m_dy, m_tw = 0, m_th = 0;
  int64_t m_pos = 0;
  std::string m_path;
  Image m_texture;
};

}  // namespace

std::unique_ptr<FrameSource> pan_clip_create(int width, int height, int frames, int dx, int dy, uint64_t seed) {
  return std::make_unique<PanClip>(width, height, frames, dx, dy, seed);
}

nlohmann::json bench_tracks(FeatureExtractor& features, const PropagationConfig& config, const TrackBenchConfig& b) {
  if (b.grid < 1) throw Error("the point grid needs at least one point per side");
  auto clip = pan_clip_create(b.width, b.height, b.frames, b.dx, b.dy, b.seed);
  // Points that stay at least 8 pixels inside every frame.
  const double span_x = std::abs(b.dx) * (b.frames - 1.0), span_y = std::abs(b.dy) * (b.frames - 1.0);
  const double lo_x = 8 + (b.dx > 0 ? span_x : 0), hi_x = b.width - 8 - (b.dx < 0 ? span_x : 0);
  const double lo_y = 8 + (b.dy > 0 ? span_y : 0), hi_y = b.height - 8 - (b.dy < 0 ? span_y : 0);
  if (hi_x <= lo_x || hi_y <= lo_y) throw Error("the pan moves every point out of view: fewer frames or a slower pan");
  std::vector<std::pair<double, double>> points;
  for (int i = 0; i < b.grid; ++i)
    for (int j = 0; j < b.grid; ++j)
      points.emplace_back(std::round(lo_x + (hi_x - lo_x) * (j + 0.5) / b.grid), std::round(lo_y + (hi_y - lo_y) * (i + 0.5) / b.grid));
  const double t0 = time_now_s();
  const auto tracks = points_track(*clip, features, config, points, 0, 0, b.search_radius);
  const double seconds = time_now_s() - t0;
  const double cell = features.stride() / config.scale;   // feature cell side in frame pixels
  double sum = 0, worst = 0, last = 0;
  int64_t n = 0, within = 0;
  for (size_t k = 1; k < tracks.size(); ++k) {
    double frame_sum = 0;
    for (size_t p = 0; p < points.size(); ++p) {
      const double e = std::hypot(tracks[k][p].x - (points[p].first - b.dx * double(k)), tracks[k][p].y - (points[p].second - b.dy * double(k)));
      frame_sum += e;
      worst = std::max(worst, e);
      if (k + 1 == tracks.size() && e <= cell) ++within;
    }
    sum += frame_sum;
    n += int64_t(points.size());
    if (k + 1 == tracks.size()) last = frame_sum / points.size();
  }
  const double mean = n > 0 ? sum / n : 0.0;
  return {{"benchmark", "tracks"},
          {"features", features.name()},
          {"device", features.device().str()},
          {"clip", {{"width", b.width}, {"height", b.height}, {"frames", b.frames}, {"dx", b.dx}, {"dy", b.dy}, {"seed", b.seed}}},
          {"points", points.size()},
          {"mode", propagation_mode_name(config.mode)},
          {"scale", config.scale},
          {"cell_px", cell},
          {"epe_mean_px", mean},
          {"epe_mean_cells", mean / cell},
          {"epe_last_frame_px", last},
          {"epe_max_px", worst},
          {"within_one_cell_last_frame", double(within) / points.size()},
          {"search_radius_cells", b.search_radius},
          {"seconds", seconds},
          {"fps", tracks.size() / std::max(seconds, 1e-9)}};
}

}  // namespace corrtrack
