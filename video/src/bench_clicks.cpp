// corrtrack bench clicks: click to segment against DAVIS first-frame masks (see video_bench.h).
#include "corrtrack/click_segment.h"
#include "corrtrack/core.h"
#include "corrtrack/video_bench.h"

#include <algorithm>
#include <chrono>
#include <filesystem>

namespace fs = std::filesystem;

namespace corrtrack {

namespace {

std::string first_file(const fs::path& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.is_regular_file()) names.push_back(e.path().string());
  }
  if (names.empty()) throw Error("'" + dir.string() + "' holds no files");
  return *std::min_element(names.begin(), names.end());
}

}  // namespace

nlohmann::json bench_clicks(const std::string& davis_root, int max_clicks, double target, const ClickSegmentParams& params) {
  if (max_clicks < 1) throw Error("--max-clicks must be at least 1");
  const fs::path root = davis_root;
  if (!fs::is_directory(root / "JPEGImages") || !fs::is_directory(root / "Annotations")) {
    throw Error("'" + davis_root + "' is not a DAVIS root (needs JPEGImages/ and Annotations/)");
  }
  std::vector<std::string> seqs;
  for (const auto& e : fs::directory_iterator(root / "Annotations")) {
    if (e.is_directory() && fs::is_directory(root / "JPEGImages" / e.path().filename())) seqs.push_back(e.path().filename().string());
  }
  std::sort(seqs.begin(), seqs.end());
  if (seqs.empty()) throw Error("'" + davis_root + "' holds no sequence with both frames and annotations");
  nlohmann::json per = nlohmann::json::array();
  std::vector<double> sum_iou(size_t(max_clicks), 0.0);
  double sum_noc = 0, sum_ms = 0;
  int64_t clicks_made = 0;
  for (const auto& seq : seqs) {
    const Image frame = image_read(first_file(root / "JPEGImages" / seq));
    const Image truth = mask_read(first_file(root / "Annotations" / seq));
    Image pred(truth.width, truth.height, 1, 0);
    std::vector<Click> clicks;
    std::vector<double> ious;
    std::string signs;
    int noc = max_clicks + 1;
    double ms = 0;
    for (int k = 0; k < max_clicks; ++k) {
      auto c = click_next(truth, pred);
      if (c) {   // else the mask is exact: it stays so
        clicks.push_back(*c);
        signs += c->positive ? '+' : '-';
        const auto t0 = std::chrono::steady_clock::now();
        pred = click_segment(frame, clicks, params);
        ms += std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
      }
      ious.push_back(mask_iou(pred, truth));
      if (noc > max_clicks && ious.back() >= target) noc = k + 1;
      sum_iou[size_t(k)] += ious.back();
    }
    sum_noc += noc;
    sum_ms += ms;
    clicks_made += int64_t(clicks.size());
    per.push_back({{"sequence", seq}, {"iou", ious}, {"clicks", signs}, {"noc", noc}, {"reached", noc <= max_clicks},
                   {"ms_per_click", clicks.empty() ? 0.0 : ms / double(clicks.size())}});
  }
  std::vector<double> mean_iou;
  for (double v : sum_iou) mean_iou.push_back(v / double(seqs.size()));
  int reached = 0;
  for (const auto& p : per) reached += p["reached"].get<bool>() ? 1 : 0;
  return {{"benchmark", "clicks"}, {"root", davis_root}, {"method", "grabcut"}, {"work_side", params.work_side}, {"iterations", params.iterations},
          {"prior_radius", params.prior_radius}, {"colour_weight", params.colour_weight},
          {"max_clicks", max_clicks}, {"target_iou", target}, {"sequences", per},
          {"mean_iou_per_click", mean_iou}, {"mean_noc", sum_noc / double(seqs.size())}, {"reached", reached},
          {"ms_per_click", clicks_made ? sum_ms / double(clicks_made) : 0.0}};
}

}  // namespace corrtrack
