// Click to segment with GrabCut, and the click simulator (see click_segment.h).
#include "corrtrack/click_segment.h"

#include "corrtrack/core.h"

#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <queue>

namespace corrtrack {

namespace {

cv::Mat view(const Image& img, int type) { return cv::Mat(img.height, img.width, type, const_cast<uint8_t*>(img.data.data())); }

// Keeps the 8-connected components of `fg` (CV_8U, 0/1) that contain one of `seeds`.
cv::Mat keep_seeded_components(const cv::Mat& fg, const std::vector<cv::Point>& seeds) {
  cv::Mat labels;
  const int n = cv::connectedComponents(fg, labels, 8, CV_32S);
  std::vector<uint8_t> keep(size_t(n), 0);
  for (const auto& s : seeds) {
    const int l = labels.at<int>(s);
    if (l > 0) keep[size_t(l)] = 1;
  }
  cv::Mat out(fg.size(), CV_8U);
  for (int y = 0; y < fg.rows; ++y) {
    const int* lr = labels.ptr<int>(y);
    uint8_t* o = out.ptr<uint8_t>(y);
    for (int x = 0; x < fg.cols; ++x) o[x] = keep[size_t(lr[x])];
  }
  return out;
}

// Sets the background regions of `fg` (0/1) that neither touch the image border nor hold one of
// `keep_out` (negative clicks: a hole the user asked for) to 1.
void fill_holes(cv::Mat& fg, const std::vector<cv::Point>& keep_out) {
  cv::Mat bg = 1 - fg, labels;
  const int n = cv::connectedComponents(bg, labels, 4, CV_32S);
  std::vector<uint8_t> outside(size_t(n), 0);
  for (int x = 0; x < fg.cols; ++x) outside[size_t(labels.at<int>(0, x))] = outside[size_t(labels.at<int>(fg.rows - 1, x))] = 1;
  for (int y = 0; y < fg.rows; ++y) outside[size_t(labels.at<int>(y, 0))] = outside[size_t(labels.at<int>(y, fg.cols - 1))] = 1;
  for (const auto& p : keep_out) outside[size_t(labels.at<int>(p))] = 1;
  for (int y = 0; y < fg.rows; ++y) {
    const int* lr = labels.ptr<int>(y);
    uint8_t* f = fg.ptr<uint8_t>(y);
    for (int x = 0; x < fg.cols; ++x) {
      if (!f[x] && !outside[size_t(lr[x])]) f[x] = 1;
    }
  }
}

// Within `fg` (0/1), the pixels geodesically nearer a negative click than a positive one are
// cleared. Distance along a 4-connected path: each step costs 1 + colour_weight × the colour
// difference (Euclidean, 0–441) of its two pixels, so a path pays for crossing edges. A negative
// click thus takes back the whole spilled region around it, not only its disc.
void clear_nearer_negative(cv::Mat& fg, const cv::Mat& bgr, const std::vector<cv::Point>& positives,
                           const std::vector<cv::Point>& negatives, int seed_radius, double colour_weight) {
  if (negatives.empty()) return;
  const int w = fg.cols, h = fg.rows;
  // Paths run through the object and through the clicks' own discs (a negative disc is
  // background, yet its paths must reach the spill around it).
  cv::Mat walk = fg.clone();
  for (const auto* set : {&positives, &negatives}) {
    for (const auto& p : *set) cv::circle(walk, p, seed_radius + 1, cv::Scalar(1), cv::FILLED);
  }
  std::vector<float> dist(size_t(w) * h, std::numeric_limits<float>::infinity());
  std::vector<int8_t> owner(size_t(w) * h, 0);  // +1 positive, -1 negative
  using Item = std::pair<float, int>;
  std::priority_queue<Item, std::vector<Item>, std::greater<Item>> queue;
  auto seed = [&](const cv::Point& p, int8_t who) {
    const int i = p.y * w + p.x;
    if (dist[size_t(i)] == 0.f) return;
    dist[size_t(i)] = 0.f;
    owner[size_t(i)] = who;
    queue.emplace(0.f, i);
  };
  for (const auto& p : positives) seed(p, 1);
  for (const auto& p : negatives) seed(p, -1);
  const cv::Vec3b* px = bgr.ptr<cv::Vec3b>(0);
  while (!queue.empty()) {
    const auto [d, i] = queue.top();
    queue.pop();
    if (d > dist[size_t(i)]) continue;
    const int x = i % w, y = i / w;
    const int next[4][2] = {{x + 1, y}, {x - 1, y}, {x, y + 1}, {x, y - 1}};
    for (const auto& n : next) {
      if (n[0] < 0 || n[1] < 0 || n[0] >= w || n[1] >= h) continue;
      const int j = n[1] * w + n[0];
      if (!walk.data[j]) continue;
      const cv::Vec3i diff = cv::Vec3i(px[i]) - cv::Vec3i(px[j]);
      const float step = 1.f + float(colour_weight * std::sqrt(double(diff.dot(diff))));
      if (d + step < dist[size_t(j)]) {
        dist[size_t(j)] = d + step;
        owner[size_t(j)] = owner[size_t(i)];
        queue.emplace(d + step, j);
      }
    }
  }
  for (size_t i = 0; i < owner.size(); ++i) {
    if (owner[i] < 0) fg.data[i] = 0;
  }
}

// Distance of each set pixel of `region` (0/1) to the nearest unset pixel or the image border.
cv::Mat inner_distance(const cv::Mat& region) {
  cv::Mat padded;
  cv::copyMakeBorder(region, padded, 1, 1, 1, 1, cv::BORDER_CONSTANT, 0);
  cv::Mat dist;
  cv::distanceTransform(padded, dist, cv::DIST_L2, cv::DIST_MASK_PRECISE);
  return dist(cv::Rect(1, 1, region.cols, region.rows)).clone();
}

}  // namespace

Image click_segment(const Image& frame, const std::vector<Click>& clicks, const ClickSegmentParams& params) {
  if (frame.channels != 3 || frame.empty()) throw Error("click segmentation needs an RGB frame");
  Image result(frame.width, frame.height, 1, 0);
  const double scale = std::min(1.0, double(std::max(1, params.work_side)) / std::max(frame.width, frame.height));
  const int w = std::max(1, int(std::lround(frame.width * scale))), h = std::max(1, int(std::lround(frame.height * scale)));
  std::vector<cv::Point> positives, negatives;
  std::vector<std::pair<cv::Point, bool>> inside;
  for (const auto& c : clicks) {
    if (!(c.x >= 0 && c.y >= 0 && c.x < frame.width && c.y < frame.height)) continue;
    const cv::Point p(std::min(w - 1, int(c.x * scale)), std::min(h - 1, int(c.y * scale)));
    inside.emplace_back(p, c.positive);
    (c.positive ? positives : negatives).push_back(p);
  }
  if (positives.empty()) return result;

  cv::Mat bgr;
  cv::Mat rgb = view(frame, CV_8UC3);
  cv::cvtColor(rgb, bgr, cv::COLOR_RGB2BGR);
  if (scale < 1.0) cv::resize(bgr, bgr, cv::Size(w, h), 0, 0, cv::INTER_AREA);

  const double diagonal = std::hypot(w, h);
  const int seed = std::max(1, int(std::lround(params.seed_radius * diagonal)));
  const int prior = std::max(seed + 1, int(std::lround(params.prior_radius * diagonal)));
  cv::Mat labels(h, w, CV_8U, cv::Scalar(cv::GC_PR_BGD));
  for (const auto& p : positives) cv::circle(labels, p, prior, cv::Scalar(cv::GC_PR_FGD), cv::FILLED);
  // Negative discs are drawn after the positive priors so that a "not here" always wins over
  // "probably"; each click's own seed is drawn last, in the order clicked.
  for (const auto& [p, pos] : inside) {
    if (!pos) cv::circle(labels, p, prior / 2, cv::Scalar(cv::GC_PR_BGD), cv::FILLED);
  }
  for (const auto& [p, pos] : inside) cv::circle(labels, p, seed, cv::Scalar(pos ? cv::GC_FGD : cv::GC_BGD), cv::FILLED);

  cv::Mat bgd_model, fgd_model;
  cv::theRNG().state = 0x12345678;   // GrabCut seeds its k-means from the global RNG: same clicks, same mask
  cv::grabCut(bgr, labels, cv::Rect(), bgd_model, fgd_model, std::max(1, params.iterations), cv::GC_INIT_WITH_MASK);
  cv::Mat fg = (labels == cv::GC_FGD) | (labels == cv::GC_PR_FGD);
  fg = fg / 255;
  clear_nearer_negative(fg, bgr, positives, negatives, seed, params.colour_weight);
  fg = keep_seeded_components(fg, positives);
  if (params.fill_holes) fill_holes(fg, negatives);

  cv::Mat out = view(result, CV_8U);
  if (scale < 1.0) {
    cv::Mat soft;
    fg.convertTo(soft, CV_32F);
    cv::resize(soft, soft, cv::Size(frame.width, frame.height), 0, 0, cv::INTER_LINEAR);
    cv::Mat set = soft >= 0.5f;
    cv::Mat ones = set / 255;
    ones.copyTo(out);
  } else {
    fg.copyTo(out);
  }
  return result;
}

std::optional<Click> click_next(const Image& truth, const Image& predicted) {
  if (truth.channels != 1 || predicted.channels != 1 || truth.width != predicted.width || truth.height != predicted.height) {
    throw Error("click_next needs two 1-channel masks of one size");
  }
  const cv::Mat t = view(truth, CV_8U) != 0, p = view(predicted, CV_8U) != 0;
  const cv::Mat missed = (t & ~p) / 255, extra = (p & ~t) / 255;
  const cv::Mat dm = inner_distance(missed), de = inner_distance(extra);
  double max_m = 0, max_e = 0;
  cv::Point at_m, at_e;
  cv::minMaxLoc(dm, nullptr, &max_m, nullptr, &at_m);
  cv::minMaxLoc(de, nullptr, &max_e, nullptr, &at_e);
  if (max_m <= 0 && max_e <= 0) return std::nullopt;
  const bool positive = max_m >= max_e;
  const cv::Point at = positive ? at_m : at_e;
  return Click{at.x + 0.5, at.y + 0.5, positive};
}

double mask_iou(const Image& a, const Image& b) {
  if (a.data.size() != b.data.size()) throw Error("mask_iou needs two masks of one size");
  int64_t inter = 0, uni = 0;
  for (size_t i = 0; i < a.data.size(); ++i) {
    inter += (a.data[i] && b.data[i]) ? 1 : 0;
    uni += (a.data[i] || b.data[i]) ? 1 : 0;
  }
  return uni == 0 ? 1.0 : double(inter) / double(uni);
}

}  // namespace corrtrack
