// DAVIS J&F exactly as davis2017-evaluation computes it in the semi-supervised mode:
// per-object IoU and boundary F (seg2bmap boundaries, disk dilation), first and last frames
// excluded, void treated as background, statistics with 4-bin decay.
#include "corrtrack/tracking.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>

namespace fs = std::filesystem;

namespace corrtrack {

namespace {

void check_same_size(const Image& a, const Image& b) {
  if (a.width != b.width || a.height != b.height) {
    throw Error("masks differ in size: " + std::to_string(a.width) + "x" + std::to_string(a.height) + " vs " +
                std::to_string(b.width) + "x" + std::to_string(b.height));
  }
}

// One-pixel boundary of a binary mask: a pixel differs from its east, south or south-east
// neighbour; last row compares east only, last column south only, bottom-right is never set.
std::vector<uint8_t> seg2bmap(const uint8_t* seg, int w, int h) {
  std::vector<uint8_t> b(size_t(w) * h, 0);
  auto at = [&](int x, int y) -> uint8_t { return seg[size_t(y) * w + x] ? 1 : 0; };
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) {
      const uint8_t s = at(x, y);
      uint8_t v;
      if (x == w - 1 && y == h - 1) v = 0;
      else if (x == w - 1) v = s ^ at(x, y + 1);
      else if (y == h - 1) v = s ^ at(x + 1, y);
      else v = (s ^ at(x + 1, y)) | (s ^ at(x, y + 1)) | (s ^ at(x + 1, y + 1));
      b[size_t(y) * w + x] = v;
    }
  }
  return b;
}

// Number of boundary pixels of `a` that lie within the disk of radius r of some boundary pixel
// of `b` (= sum(a & dilate(b, disk(r)))). Boundaries are sparse, so look around each pixel.
int64_t count_matched(const std::vector<uint8_t>& a, const std::vector<uint8_t>& b, int w, int h,
                      const std::vector<std::pair<int, int>>& disk) {
  int64_t n = 0;
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) {
      if (!a[size_t(y) * w + x]) continue;
      for (const auto& [dx, dy] : disk) {
        const int xx = x + dx, yy = y + dy;
        if (xx >= 0 && yy >= 0 && xx < w && yy < h && b[size_t(yy) * w + xx]) { ++n; break; }
      }
    }
  }
  return n;
}

std::vector<std::pair<int, int>> disk_offsets(int r) {
  std::vector<std::pair<int, int>> d;
  for (int dy = -r; dy <= r; ++dy)
    for (int dx = -r; dx <= r; ++dx)
      if (dx * dx + dy * dy <= r * r) d.emplace_back(dx, dy);
  // Nearest first: a match is usually close, so the search stops early.
  std::stable_sort(d.begin(), d.end(), [](auto a, auto b) { return a.first * a.first + a.second * a.second < b.first * b.first + b.second * b.second; });
  return d;
}

double jaccard_raw(const uint8_t* p, const uint8_t* g, size_t n) {
  int64_t inter = 0, uni = 0;
  for (size_t i = 0; i < n; ++i) {
    const bool a = p[i] != 0, b = g[i] != 0;
    inter += a && b;
    uni += a || b;
  }
  return uni == 0 ? 1.0 : static_cast<double>(inter) / static_cast<double>(uni);
}

double boundary_f_raw(const uint8_t* pred, const uint8_t* gt, int w, int h, double bound_th) {
  const double bound_pix = bound_th >= 1 ? bound_th : std::ceil(bound_th * std::sqrt(double(h) * h + double(w) * w));
  const auto fg = seg2bmap(pred, w, h);
  const auto gb = seg2bmap(gt, w, h);
  int64_t n_fg = 0, n_gt = 0;
  for (uint8_t v : fg) n_fg += v;
  for (uint8_t v : gb) n_gt += v;
  double precision, recall;
  if (n_fg == 0 && n_gt > 0) { precision = 1; recall = 0; }
  else if (n_fg > 0 && n_gt == 0) { precision = 0; recall = 1; }
  else if (n_fg == 0 && n_gt == 0) { precision = 1; recall = 1; }
  else {
    const auto disk = disk_offsets(static_cast<int>(bound_pix));
    precision = static_cast<double>(count_matched(fg, gb, w, h, disk)) / static_cast<double>(n_fg);
    recall = static_cast<double>(count_matched(gb, fg, w, h, disk)) / static_cast<double>(n_gt);
  }
  return precision + recall == 0 ? 0.0 : 2 * precision * recall / (precision + recall);
}

double nanmean(const std::vector<double>& v, size_t lo, size_t hi) {
  double s = 0;
  size_t n = 0;
  for (size_t i = lo; i < hi && i < v.size(); ++i) if (!std::isnan(v[i])) { s += v[i]; ++n; }
  return n ? s / n : std::numeric_limits<double>::quiet_NaN();
}

std::vector<std::string> list_pngs(const std::string& dir) {
  std::vector<std::string> names;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    if (e.is_regular_file() && e.path().extension() == ".png") names.push_back(e.path().stem().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

// Binary mask of object `id` (void 255 counts as background, as in the official code).
Image object_mask(const Image& m, int id) {
  Image b(m.width, m.height, 1);
  for (size_t i = 0; i < m.data.size(); ++i) b.data[i] = m.data[i] == id ? 1 : 0;
  return b;
}

}  // namespace

double davis_jaccard(const Image& pred, const Image& gt) {
  check_same_size(pred, gt);
  return jaccard_raw(pred.data.data(), gt.data.data(), gt.data.size());
}

double davis_boundary_f(const Image& pred, const Image& gt, double bound_th) {
  check_same_size(pred, gt);
  return boundary_f_raw(pred.data.data(), gt.data.data(), gt.width, gt.height, bound_th);
}

DavisStatistics davis_statistics(const std::vector<double>& values) {
  DavisStatistics s;
  const size_t n = values.size();
  s.mean = nanmean(values, 0, n);
  // np.nanmean(values > 0.5): NaN > 0.5 is False, so every frame counts in the denominator.
  size_t above = 0;
  for (double v : values) above += v > 0.5;
  s.recall = n ? static_cast<double>(above) / n : std::numeric_limits<double>::quiet_NaN();
  // ids = round(linspace(1, n, 5) + 1e-10) - 1; bins are inclusive at both ends. The official
  // code stores ids as uint8 (wrapping past 256 frames); we keep the true indices.
  size_t ids[5];
  const double step = (static_cast<double>(n) - 1.0) / 4.0;
  for (int i = 0; i < 5; ++i) {
    const double v = (i == 4 ? static_cast<double>(n) : 1.0 + i * step) + 1e-10;
    ids[i] = static_cast<size_t>(std::max(0.0, std::nearbyint(v) - 1.0));
  }
  s.decay = nanmean(values, ids[0], ids[1] + 1) - nanmean(values, ids[3], ids[4] + 1);
  return s;
}

double DavisEvaluation::global_value(const std::string& key) const {
  for (const auto& g : global) if (g.first == key) return g.second;
  throw Error("no global measure named '" + key + "'");
}

std::string davis_sequence_dir(const std::string& root, const std::string& kind, const std::string& seq) {
  for (const std::string& d : {root + "/" + kind + "/" + seq, root + "/" + kind + "/480p/" + seq}) {
    if (fs::is_directory(d)) return d;
  }
  throw Error("sequence '" + seq + "' has no folder " + root + "/" + kind + "/" + seq + " (nor " + kind + "/480p/" + seq + ")");
}

std::vector<std::string> davis_sequences(const std::string& root) {
  if (!fs::is_directory(root)) throw Error("DAVIS root '" + root + "' is not a folder");
  for (const std::string& list : {root + "/ImageSets.txt", root + "/ImageSets/2017/val.txt", root + "/ImageSets/2016/val.txt"}) {
    std::ifstream f(list);
    if (!f) continue;
    std::vector<std::string> seqs;
    std::string line;
    while (std::getline(f, line)) {
      line.erase(line.find_last_not_of(" \t\r\n") + 1);
      if (!line.empty()) seqs.push_back(line);
    }
    if (!seqs.empty()) return seqs;
  }
  std::string ann = root + "/Annotations";
  if (fs::is_directory(ann + "/480p")) ann += "/480p";
  std::vector<std::string> seqs;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(ann, ec)) if (e.is_directory()) seqs.push_back(e.path().filename().string());
  std::sort(seqs.begin(), seqs.end());
  if (seqs.empty()) throw Error("DAVIS root '" + root + "' has no sequences (no ImageSets.txt and no Annotations/<seq> folders)");
  return seqs;
}

DavisEvaluation davis_evaluate(const std::string& root, const std::string& results,
                               const std::vector<std::string>& sequences, const ProgressCallback& progress) {
  if (!fs::is_directory(results)) throw Error("results folder '" + results + "' does not exist");
  DavisEvaluation ev;
  int64_t total_frames = 0;
  std::vector<std::vector<std::string>> frame_names;
  for (const auto& seq : sequences) {
    frame_names.push_back(list_pngs(davis_sequence_dir(root, "Annotations", seq)));
    if (frame_names.back().size() < 3) throw Error("sequence '" + seq + "' needs at least 3 annotated frames to be scored");
    total_frames += static_cast<int64_t>(frame_names.back().size()) - 2;
  }
  ProgressMeter meter(total_frames, "frames", progress);
  for (size_t si = 0; si < sequences.size(); ++si) {
    const std::string& seq = sequences[si];
    const std::string gt_dir = davis_sequence_dir(root, "Annotations", seq);
    const std::string res_dir = results + "/" + seq;
    if (!fs::is_directory(res_dir)) throw Error("results for sequence '" + seq + "' are missing: no folder " + res_dir);
    const auto& names = frame_names[si];
    // Number of objects: largest index of the first annotation, void set to background.
    Image first = mask_read(gt_dir + "/" + names.front() + ".png");
    for (auto& v : first.data) if (v == 255) v = 0;
    const int num_objects = mask_num_objects(first);
    const size_t n = names.size() - 2;
    std::vector<Image> gts(n), preds(n);
    std::vector<std::string> errors(n);
    at::parallel_for(0, static_cast<int64_t>(n), 1, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        try {
          const std::string& name = names[size_t(i) + 1];
          gts[size_t(i)] = mask_read(gt_dir + "/" + name + ".png");
          const std::string rp = res_dir + "/" + name + ".png";
          if (!fs::exists(rp)) throw Error("result mask '" + rp + "' is missing");
          preds[size_t(i)] = mask_read(rp);
          if (preds[size_t(i)].width != gts[size_t(i)].width || preds[size_t(i)].height != gts[size_t(i)].height) {
            throw Error("result mask '" + rp + "' is " + std::to_string(preds[size_t(i)].width) + "x" +
                        std::to_string(preds[size_t(i)].height) + " but the annotation is " +
                        std::to_string(gts[size_t(i)].width) + "x" + std::to_string(gts[size_t(i)].height));
          }
        } catch (const std::exception& ex) {
          errors[size_t(i)] = ex.what();
        }
      }
    });
    for (const auto& e : errors) if (!e.empty()) throw Error(e);
    int res_objects = 0;
    for (const auto& p : preds) for (uint8_t v : p.data) res_objects = std::max<int>(res_objects, v);
    if (res_objects > num_objects) {
      throw Error("results of sequence '" + seq + "' contain object index " + std::to_string(res_objects) +
                  " but the annotation has only " + std::to_string(num_objects) + " objects");
    }
    DavisSequenceScore sc;
    sc.name = seq;
    sc.num_objects = num_objects;
    sc.J.assign(size_t(num_objects), std::vector<double>(n));
    sc.F.assign(size_t(num_objects), std::vector<double>(n));
    at::parallel_for(0, static_cast<int64_t>(n), 1, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        for (int obj = 1; obj <= num_objects; ++obj) {
          const Image g = object_mask(gts[size_t(i)], obj), p = object_mask(preds[size_t(i)], obj);
          sc.J[size_t(obj - 1)][size_t(i)] = jaccard_raw(p.data.data(), g.data.data(), g.data.size());
          sc.F[size_t(obj - 1)][size_t(i)] = boundary_f_raw(p.data.data(), g.data.data(), g.width, g.height, 0.008);
        }
      }
    });
    meter.step(static_cast<int64_t>(n));
    ev.sequences.push_back(std::move(sc));
  }
  std::vector<double> JM, JR, JD, FM, FR, FD;
  for (const auto& sc : ev.sequences) {
    for (int obj = 0; obj < sc.num_objects; ++obj) {
      const auto j = davis_statistics(sc.J[size_t(obj)]);
      const auto f = davis_statistics(sc.F[size_t(obj)]);
      JM.push_back(j.mean); JR.push_back(j.recall); JD.push_back(j.decay);
      FM.push_back(f.mean); FR.push_back(f.recall); FD.push_back(f.decay);
      ev.per_object.push_back({sc.name + "_" + std::to_string(obj + 1), {j.mean, f.mean}});
    }
  }
  auto mean = [](const std::vector<double>& v) {
    double s = 0;
    for (double x : v) s += x;
    return v.empty() ? std::numeric_limits<double>::quiet_NaN() : s / v.size();
  };
  ev.global = {{"J&F-Mean", (mean(JM) + mean(FM)) / 2.0}, {"J-Mean", mean(JM)}, {"J-Recall", mean(JR)},
               {"J-Decay", mean(JD)}, {"F-Mean", mean(FM)}, {"F-Recall", mean(FR)}, {"F-Decay", mean(FD)}};
  return ev;
}

void davis_write_csv(const DavisEvaluation& ev, const std::string& dir) {
  dir_ensure_writable(dir);
  auto fmt = [](double v) {
    char buf[32];
    std::snprintf(buf, sizeof(buf), "%.6f", v);
    return std::string(buf);
  };
  std::ostringstream g;
  for (size_t i = 0; i < ev.global.size(); ++i) g << ev.global[i].first << (i + 1 < ev.global.size() ? "," : "\n");
  for (size_t i = 0; i < ev.global.size(); ++i) g << fmt(ev.global[i].second) << (i + 1 < ev.global.size() ? "," : "\n");
  file_write_atomic(dir + "/global_results.csv", g.str());
  std::ostringstream s;
  s << "Sequence,J-Mean,F-Mean\n";
  for (const auto& po : ev.per_object) s << po.first << "," << fmt(po.second.first) << "," << fmt(po.second.second) << "\n";
  file_write_atomic(dir + "/per-sequence_results.csv", s.str());
}

}  // namespace corrtrack
