// corrtrack propagate / eval / bench propagate.
#include <torch/torch.h>

#include "cli_common.h"
#include "corrtrack/core.h"
#include "corrtrack/tracking.h"
#include "corrtrack/video.h"

#include <cstdio>
#include <cstdlib>
#include <map>
#include <filesystem>
#include <functional>
#include <memory>
#include <sstream>

#include <unistd.h>

namespace fs = std::filesystem;

namespace corrtrack::cli {

namespace {

// Options shared by `propagate` and `bench propagate`.
struct PropagateArgs {
  std::string video, frames, mask, davis, out, overlay, overlay_frames, overlay_mode = "blend", checkpoint, json;
  std::string features = "default", sequences, size, protocol;
  // Engine options as parsed, to tell given values from defaults (a model's recommended
  // protocol fills in the ones not given).
  std::map<std::string, CLI::Option*> engine_opts;
  std::vector<std::string> anchors;
  PropagationConfig cfg;
  bool dense = false;
  uint64_t seed = 0;
  int64_t max_frames = 0;
};

void add_engine_options(CLI::App* c, PropagateArgs& a) {
  c->add_option("--features", a.features, "default (the bundled trained model) | pixels | random")->capture_default_str();
  c->add_option("--checkpoint", a.checkpoint, "Trained encoder checkpoint (overrides --features)");
  c->add_option("--seed", a.seed, "Seed of the random encoder")->capture_default_str();
  a.engine_opts["context"] = c->add_option("--context", a.cfg.context, "Recent frames in the context")->capture_default_str();
  a.engine_opts["topk"] = c->add_option("--topk", a.cfg.topk, "Affinities kept per pixel")->capture_default_str();
  a.engine_opts["radius"] = c->add_option("--radius", a.cfg.radius, "Window radius on recent frames, feature cells (0 = none)")->capture_default_str();
  a.engine_opts["temperature"] = c->add_option("--temperature", a.cfg.temperature, "Softmax temperature")->capture_default_str();
  a.engine_opts["mode"] = c->add_option("--mode", a.cfg.mode, "crw (context + top-k) | mast (long/short-term memory, ROI)")->capture_default_str();
  a.engine_opts["roi_gap"] = c->add_option("--roi-gap", a.cfg.roi_gap, "mast: references farther than this many frames get ROI localisation")->capture_default_str();
  a.engine_opts["scale"] = c->add_option("--scale", a.cfg.scale, "Internal resolution factor")->capture_default_str();
  c->add_option("--protocol", a.protocol, "Engine preset: crw (20 recent frames, top-10, radius 12) | timecycle (8 recent frames, top-5) | mast (memory + ROI); explicit options win");
  c->add_option("--tile", a.cfg.tile, "Query tile side of the local-window affinity")->capture_default_str();
  c->add_flag("--dense", a.dense, "Dense all-pairs affinity, then masked (slow; for comparison)");
  c->add_option("--size", a.size, "Resize frames on decode, WxH (e.g. 854x480)");
}

std::string default_model_path() {
  if (const char* env = std::getenv("CORRTRACK_MODEL")) return env;
  return CORRTRACK_DEFAULT_MODEL;
}

// A checkpoint may recommend engine settings ("propagation" in its metadata); options given on
// the command line win.
void apply_recommended_protocol(const std::string& checkpoint, PropagateArgs& a) {
  const auto meta = nlohmann::json::parse(checkpoint_metadata(checkpoint), nullptr, false);
  if (meta.is_discarded() || !meta.contains("propagation")) return;
  const auto& p = meta["propagation"];
  auto unset = [&](const char* key) { return p.contains(key) && a.engine_opts.count(key) && a.engine_opts[key]->count() == 0; };
  try {
    if (unset("context")) a.cfg.context = p["context"].get<int>();
    if (unset("topk")) a.cfg.topk = p["topk"].get<int>();
    if (unset("radius")) a.cfg.radius = p["radius"].get<double>();
    if (unset("temperature")) a.cfg.temperature = p["temperature"].get<double>();
    if (unset("mode")) a.cfg.mode = p["mode"].get<std::string>();
    if (unset("roi_gap")) a.cfg.roi_gap = p["roi_gap"].get<int>();
    if (unset("scale")) a.cfg.scale = p["scale"].get<double>();
  } catch (const nlohmann::json::exception& e) {
    throw Error("checkpoint '" + checkpoint + "' has an invalid 'propagation' entry: " + e.what());
  }
}

// --protocol: a published method's inference settings, for the options not given explicitly
// (it overrides a checkpoint's recommendation).
void apply_protocol_preset(PropagateArgs& a) {
  if (a.protocol.empty()) return;
  const PropagationConfig defaults;
  std::map<std::string, std::function<void()>> set;
  if (a.protocol == "crw") {
    set = {{"context", [&] { a.cfg.context = defaults.context; }}, {"topk", [&] { a.cfg.topk = defaults.topk; }},
           {"radius", [&] { a.cfg.radius = defaults.radius; }}, {"temperature", [&] { a.cfg.temperature = defaults.temperature; }},
           {"mode", [&] { a.cfg.mode = "crw"; }}};
  } else if (a.protocol == "timecycle") {
    set = {{"context", [&] { a.cfg.context = 8; }}, {"topk", [&] { a.cfg.topk = 5; }}, {"mode", [&] { a.cfg.mode = "crw"; }}};
  } else if (a.protocol == "mast") {
    set = {{"mode", [&] { a.cfg.mode = "mast"; }}};
  } else {
    throw Error("--protocol must be crw, timecycle or mast, got '" + a.protocol + "'");
  }
  for (auto& [key, apply] : set) {
    if (a.engine_opts.at(key)->count() == 0) apply();
  }
}

std::unique_ptr<FeatureExtractor> make_features(PropagateArgs& a) {
  std::string ckpt = a.checkpoint;
  if (ckpt.empty() && a.features == "default") {
    ckpt = default_model_path();
    if (!fs::exists(ckpt)) {
      throw Error("the default model '" + ckpt + "' is missing: use --features pixels|random or --checkpoint FILE");
    }
  }
  if (ckpt.empty()) {
    apply_protocol_preset(a);
    return feature_extractor_create(a.features, a.seed);
  }
  auto f = feature_extractor_load(ckpt);
  apply_recommended_protocol(ckpt, a);
  apply_protocol_preset(a);
  log_get("app")->info("features: {} ({}), mode {}, scale {}, radius {}, top-k {}, T {}", f->name(), ckpt, a.cfg.mode,
                       a.cfg.scale, a.cfg.radius, a.cfg.topk, a.cfg.temperature);
  return f;
}

FrameSourceOptions source_options(const PropagateArgs& a) {
  FrameSourceOptions o;
  if (!a.size.empty()) {
    int w = 0, h = 0;
    if (std::sscanf(a.size.c_str(), "%dx%d", &w, &h) != 2 || w <= 0 || h <= 0) {
      throw Error("--size must look like 854x480, got '" + a.size + "'");
    }
    o.width = w;
    o.height = h;
  }
  return o;
}

// The first `limit` frames of another source (benchmarks on a prefix of a long video).
class PrefixSource : public FrameSource {
 public:
  PrefixSource(std::unique_ptr<FrameSource> inner, int64_t limit) : m_inner(std::move(inner)), m_limit(limit) {}
  int64_t size() override { return std::min(m_limit, m_inner->size()); }
  Image frame(int64_t k) override {
    if (k >= size()) throw Error("frame " + std::to_string(k) + " is past the first " + std::to_string(size()) + " frames");
    return m_inner->frame(k);
  }
  bool next(Image& out) override {
    if (m_read >= m_limit || !m_inner->next(out)) return false;
    ++m_read;
    return true;
  }
  std::vector<double> timestamps() override {
    auto t = m_inner->timestamps();
    t.resize(size_t(size()));
    return t;
  }
  std::string frame_name(int64_t k) override { return m_inner->frame_name(k); }
  VideoInfo info() override { return m_inner->info(); }
  const std::string& path() const override { return m_inner->path(); }
 private:
  std::unique_ptr<FrameSource> m_inner;
  int64_t m_limit;
  int64_t m_read = 0;
};

Image read_anchor_mask(const std::string& path, const Image& frame, const std::string& source) {
  Image m = mask_read(path);
  if (m.width != frame.width || m.height != frame.height) {
    throw Error("mask '" + path + "' is " + std::to_string(m.width) + "x" + std::to_string(m.height) + " but the frames of '" +
                source + "' are " + std::to_string(frame.width) + "x" + std::to_string(frame.height));
  }
  if (mask_num_objects(m) == 0) throw Error("mask '" + path + "' has no objects (every pixel is 0 or 255)");
  return m;
}

std::vector<Anchor> collect_anchors(const PropagateArgs& a, FrameSource& src) {
  std::vector<std::pair<int64_t, std::string>> specs;
  if (!a.mask.empty()) specs.emplace_back(0, a.mask);
  for (const auto& s : a.anchors) {
    const auto colon = s.find(':');
    int64_t f = -1;
    try {
      size_t used = 0;
      f = std::stoll(s.substr(0, colon), &used);
      if (used != colon) f = -1;
    } catch (const std::exception&) {
    }
    if (colon == std::string::npos || f < 0) throw Error("--anchor must be FRAME:PNG with FRAME >= 0, got '" + s + "'");
    specs.emplace_back(f, s.substr(colon + 1));
  }
  if (specs.empty()) throw Error("give the annotated first frame with --mask PNG (or --anchor FRAME:PNG)");
  const int64_t n = src.size();
  std::vector<Anchor> anchors;
  for (const auto& [f, path] : specs) {
    if (f >= n) {
      throw Error("--anchor frame " + std::to_string(f) + " is past the end of '" + src.path() + "' (" + std::to_string(n) + " frames)");
    }
    anchors.push_back(Anchor{f, read_anchor_mask(path, src.frame(f), src.path())});
  }
  return anchors;
}

OverlayMode overlay_mode(const std::string& s) {
  if (s == "blend") return OverlayMode::Blend;
  if (s == "contour") return OverlayMode::Contour;
  if (s == "fade") return OverlayMode::FadeBackground;
  if (s == "mask") return OverlayMode::MaskOnly;
  throw Error("--overlay-mode must be blend, contour, fade or mask, got '" + s + "'");
}

// Propagates one source into `out_dir` (staged, committed at the end), optionally with an
// overlay video; returns the engine's result.
PropagationResult propagate_one(FrameSource& src, const std::vector<Anchor>& anchors, FeatureExtractor& feats,
                                const PropagationConfig& cfg, const std::string& out_dir, const std::string& overlay,
                                OverlayMode mode, const std::string& overlay_frames = "") {
  StagedFolder staged(out_dir);
  std::unique_ptr<StagedFolder> staged_overlays;
  if (!overlay_frames.empty()) staged_overlays = std::make_unique<StagedFolder>(overlay_frames);
  std::unique_ptr<VideoWriter> writer;
  // The overlay video needs frames in order; forward runs arrive in order, frames before the
  // first anchor arrive backward and wait here.
  std::map<int64_t, Image> out_of_order;
  int64_t next_overlay = 0;
  if (!overlay.empty()) {
    const VideoInfo vi = src.info();
    writer = std::make_unique<VideoWriter>(overlay, vi.width, vi.height, vi.fps > 0 ? vi.fps : 25.0);
  }
  LabelPropagator prop(feats, cfg);
  auto sink = [&](int64_t k, const Image& mask, const Image& rgb) {
    mask_write(staged.path() + "/" + src.frame_name(k) + ".png", mask);
    if (staged_overlays) image_write_png(staged_overlays->path() + "/" + src.frame_name(k) + ".png", overlay_render(rgb, mask, mode));
    if (writer) {
      out_of_order[k] = overlay_render(rgb, mask, mode);
      while (!out_of_order.empty() && out_of_order.begin()->first == next_overlay) {
        writer->write(out_of_order.begin()->second);
        out_of_order.erase(out_of_order.begin());
        ++next_overlay;
      }
    }
  };
  PropagationResult r = prop.run(src, anchors, sink);
  if (writer) writer->close();
  staged.commit();
  if (staged_overlays) staged_overlays->commit();
  return r;
}

std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) if (!item.empty()) out.push_back(item);
  return out;
}

void run_propagate(PropagateArgs& a) {
  a.cfg.local_window = !a.dense;
  if (a.out.empty()) throw Error("--out DIR is required");
  const OverlayMode mode = overlay_mode(a.overlay_mode);
  auto feats = make_features(a);
  if (!a.davis.empty()) {
    if (!a.video.empty() || !a.frames.empty() || !a.mask.empty()) throw Error("--davis cannot be combined with --video/--frames/--mask");
    const auto seqs = a.sequences.empty() ? davis_sequences(a.davis) : split_list(a.sequences);
    dir_ensure_writable(a.out);
    for (const auto& seq : seqs) {
      auto src = frame_source_open(davis_sequence_dir(a.davis, "JPEGImages", seq), source_options(a));
      const std::string ann = davis_sequence_dir(a.davis, "Annotations", seq);
      const std::string first_mask = ann + "/" + src->frame_name(0) + ".png";
      std::vector<Anchor> anchors{Anchor{0, read_anchor_mask(first_mask, src->frame(0), src->path())}};
      const auto r = propagate_one(*src, anchors, *feats, a.cfg, a.out + "/" + seq, "", mode);
      log_get("app")->info("{}: {} frames in {:.1f} s ({:.2f} fps)", seq, r.frames, r.seconds, r.frames / r.seconds);
    }
    log_get("app")->info("masks written to {}", a.out);
    return;
  }
  if (a.video.empty() == a.frames.empty()) throw Error("give exactly one of --video FILE, --frames DIR or --davis ROOT");
  auto src = frame_source_open(a.video.empty() ? a.frames : a.video, source_options(a));
  auto anchors = collect_anchors(a, *src);
  const auto r = propagate_one(*src, anchors, *feats, a.cfg, a.out, a.overlay, mode, a.overlay_frames);
  log_get("app")->info("{} masks in {:.1f} s ({:.2f} fps) written to {}{}", r.frames, r.seconds, r.frames / r.seconds,
                       a.out, a.overlay.empty() ? "" : ", overlay video " + a.overlay);
}

void print_eval(const DavisEvaluation& ev) {
  std::printf("--------------------------- Global results ---------------------------\n");
  for (const auto& g : ev.global) std::printf("%-10s", g.first.c_str());
  std::printf("\n");
  for (const auto& g : ev.global) std::printf("%-10.3f", g.second);
  std::printf("\n---------------------- Per sequence (object) results ----------------\n");
  std::printf("%-28s %-8s %-8s\n", "Sequence", "J-Mean", "F-Mean");
  for (const auto& po : ev.per_object) std::printf("%-28s %-8.3f %-8.3f\n", po.first.c_str(), po.second.first, po.second.second);
}

nlohmann::json eval_json(const DavisEvaluation& ev) {
  nlohmann::json j;
  for (const auto& g : ev.global) j["global"][g.first] = g.second;
  for (const auto& po : ev.per_object) j["per_object"][po.first] = {{"J-Mean", po.second.first}, {"F-Mean", po.second.second}};
  for (const auto& s : ev.sequences) j["per_frame"][s.name] = {{"J", s.J}, {"F", s.F}};
  return j;
}

}  // namespace

void register_tracking_commands(CLI::App& app) {
  {
    auto a = std::make_shared<PropagateArgs>();
    auto* c = app.add_subcommand("propagate", "Propagate annotated masks through a video, a frame folder or a DAVIS set");
    c->add_option("--video", a->video, "Video file");
    c->add_option("--frames", a->frames, "Folder of frames (*.jpg/*.png, sorted by name)");
    c->add_option("--mask", a->mask, "Palette PNG annotating frame 0");
    c->add_option("--anchor", a->anchors, "FRAME:PNG, an annotated frame (repeatable)");
    c->add_option("--davis", a->davis, "DAVIS-layout root: every sequence, first annotation as anchor");
    c->add_option("--sequences", a->sequences, "Comma-separated sequences of --davis");
    c->add_option("--out", a->out, "Output folder for palette PNGs")->required();
    c->add_option("--overlay", a->overlay, "Also write an overlay video (.mp4, .mkv, .avi)");
    c->add_option("--overlay-frames", a->overlay_frames, "Also write overlay frames as PNGs into this folder");
    c->add_option("--overlay-mode", a->overlay_mode, "blend | contour | fade | mask")->capture_default_str();
    add_engine_options(c, *a);
    c->callback([a] { run_propagate(*a); });
  }
  {
    auto root = std::make_shared<std::string>(), results = std::make_shared<std::string>();
    auto seqs = std::make_shared<std::string>(), json = std::make_shared<std::string>();
    auto* c = app.add_subcommand("eval", "DAVIS J&F (semi-supervised, official definition) of result masks");
    c->add_option("--davis", *root, "DAVIS-layout root with Annotations/")->required();
    c->add_option("--results", *results, "Folder with <seq>/<frame>.png predictions")->required();
    c->add_option("--sequences", *seqs, "Comma-separated subset of sequences");
    c->add_option("--json", *json, "Also write global, per-object and per-frame values (fractions) as JSON");
    c->callback([=] {
      if (!fs::is_directory(*results)) throw Error("results folder '" + *results + "' does not exist");
      const auto list = seqs->empty() ? davis_sequences(*root) : split_list(*seqs);
      const DavisEvaluation ev = davis_evaluate(*root, *results, list);
      davis_write_csv(ev, *results);
      print_eval(ev);
      if (!json->empty()) json_emit(eval_json(ev), *json);
    });
  }
  {
    // Affinity alone: local window vs dense all-pairs masked, on random L2-normalised features.
    struct AffArgs { int channels = 256, height = 60, width = 107, topk = 10, tile = 8, repeats = 3; double radius = 12; bool dense = true; };
    auto a = std::make_shared<AffArgs>();
    auto* c = app.get_subcommand("bench")->add_subcommand("affinity", "Top-k affinity of one frame pair: local window vs dense (JSON)");
    c->add_option("--channels", a->channels, "Feature channels")->capture_default_str();
    c->add_option("--height", a->height, "Feature map height (60 = 480 px at stride 8)")->capture_default_str();
    c->add_option("--width", a->width, "Feature map width (107 = 854 px at stride 8)")->capture_default_str();
    c->add_option("--topk", a->topk, "k")->capture_default_str();
    c->add_option("--radius", a->radius, "Window radius, cells")->capture_default_str();
    c->add_option("--tile", a->tile, "Query tile side")->capture_default_str();
    c->add_option("--repeats", a->repeats, "Timed repetitions (best is reported)")->capture_default_str();
    c->add_flag("!--no-dense", a->dense, "Skip the dense comparison");
    c->callback([a] {
      torch::manual_seed(0);
      auto norm = [](torch::Tensor t) { return t / t.norm(2, 0, true); };
      auto q = norm(torch::randn({a->channels, a->height, a->width}));
      auto k = norm(torch::randn({a->channels, a->height, a->width}));
      auto best_of = [&](bool local) {
        double best = 1e30;
        torch::Tensor v;
        for (int r = 0; r < std::max(1, a->repeats); ++r) {
          const double t0 = time_now_s();
          v = affinity_topk(q, k, a->topk, a->radius, local, a->tile).first;
          best = std::min(best, time_now_s() - t0);
        }
        return std::make_pair(best, v);
      };
      const auto [local_s, local_v] = best_of(true);
      nlohmann::json j = {{"benchmark", "affinity"}, {"channels", a->channels}, {"height", a->height}, {"width", a->width},
                          {"topk", a->topk}, {"radius", a->radius}, {"tile", a->tile}, {"threads", torch::get_num_threads()},
                          {"local_ms", local_s * 1000.0}};
      if (a->dense) {
        const auto [dense_s, dense_v] = best_of(false);
        j["dense_ms"] = dense_s * 1000.0;
        j["speedup"] = dense_s / local_s;
        // Both compute the same top-k: report the largest difference as a check.
        auto finite = torch::isfinite(dense_v);
        j["max_abs_diff"] = (dense_v.masked_select(finite) - local_v.masked_select(finite)).abs().max().item<double>();
      }
      j["peak_rss_mb"] = peak_rss_bytes() / 1048576.0;
      json_emit(j);
    });
  }
  {
    auto* bench = app.get_subcommand("bench");
    auto a = std::make_shared<PropagateArgs>();
    auto* c = bench->add_subcommand("propagate", "Propagation fps, peak RSS and time per stage (JSON)");
    c->add_option("--video", a->video, "Video file");
    c->add_option("--frames", a->frames, "Folder of frames");
    c->add_option("--mask", a->mask, "Palette PNG for frame 0 (default: a box in the centre)");
    c->add_option("--max-frames", a->max_frames, "Only the first N frames");
    c->add_option("--json", a->json, "Write the JSON here instead of stdout");
    add_engine_options(c, *a);
    c->callback([a] {
      a->cfg.local_window = !a->dense;
      if (a->video.empty() == a->frames.empty()) throw Error("give exactly one of --video FILE or --frames DIR");
      std::unique_ptr<FrameSource> src = frame_source_open(a->video.empty() ? a->frames : a->video, source_options(*a));
      if (a->max_frames > 0) src = std::make_unique<PrefixSource>(std::move(src), a->max_frames);
      auto feats = make_features(*a);
      std::vector<Anchor> anchors;
      const Image f0 = src->frame(0);
      if (a->mask.empty()) {
        Image box(f0.width, f0.height, 1, 0);
        for (int y = f0.height / 3; y < 2 * f0.height / 3; ++y)
          for (int x = f0.width / 3; x < 2 * f0.width / 3; ++x) box.px(x, y)[0] = 1;
        anchors.push_back(Anchor{0, box});
      } else {
        anchors.push_back(Anchor{0, read_anchor_mask(a->mask, f0, src->path())});
      }
      const int64_t rss_before = current_rss_bytes();
      peak_rss_reset();
      const std::string tmp = (fs::temp_directory_path() / ("corrtrack-bench-" + std::to_string(::getpid()))).string();
      PropagationResult r;
      try {
        r = propagate_one(*src, anchors, *feats, a->cfg, tmp, "", OverlayMode::Blend);
      } catch (...) {
        fs::remove_all(tmp);
        throw;
      }
      fs::remove_all(tmp);
      const int64_t propagated = std::max<int64_t>(1, r.frames - 1);
      nlohmann::json stages;
      for (const auto& [name, secs] : r.stages.stages()) stages[name] = {{"seconds", secs}, {"ms_per_frame", 1000.0 * secs / propagated}};
      nlohmann::json j = {{"benchmark", "propagate"},
                          {"source", src->path()},
                          {"features", feats->name()},
                          {"width", f0.width},
                          {"height", f0.height},
                          {"frames", r.frames},
                          {"seconds", r.seconds},
                          {"fps", r.frames / r.seconds},
                          {"peak_rss_mb", peak_rss_bytes() / 1048576.0},
                          {"rss_before_mb", rss_before / 1048576.0},
                          {"threads", torch::get_num_threads()},
                          {"config", {{"context", a->cfg.context}, {"topk", a->cfg.topk}, {"radius", a->cfg.radius},
                                      {"temperature", a->cfg.temperature}, {"local_window", a->cfg.local_window},
                                      {"tile", a->cfg.tile}, {"scale", a->cfg.scale}}},
                          {"stages", stages}};
      json_emit(j, a->json);
    });
  }
}

}  // namespace corrtrack::cli
