// corrtrack propagate / eval / bench propagate.
#include <torch/torch.h>

#include "cli_common.h"
#include "engine_options.h"
#include "corrtrack/adaptation.h"
#include "corrtrack/core.h"
#include "corrtrack/propagation_files.h"
#include "corrtrack/tracking.h"
#include "corrtrack/tracking_bench.h"
#include "corrtrack/video.h"

#include <cmath>
#include <cstdio>
#include <tuple>
#include <cstdlib>
#include <map>
#include <cctype>
#include <filesystem>
#include <functional>
#include <memory>
#include <sstream>

#include <optional>
#include <set>

namespace fs = std::filesystem;

namespace corrtrack::cli {

void add_engine_options(CLI::App* c, PropagateArgs& a) {
  using S = PropagationSetting;
  c->add_option("--features", a.model.features, "default (the bundled trained model) | pixels | random")->capture_default_str();
  c->add_option("--checkpoint", a.model.checkpoint, "Trained encoder checkpoint (overrides --features)");
  c->add_option("--seed", a.model.seed, "Seed of the random encoder and of --adapt's draws (clips, warps)")->capture_default_str();
  c->add_option("--device", a.device, "cpu | cuda | auto (CUDA when this build and machine have it)")->capture_default_str();
  c->add_option("--precision", a.precision, "Encoder arithmetic: fp32 | bf16 (BatchNorm folded, bfloat16; fast on CPUs with AMX/AVX512-BF16) | auto (bf16 where the CPU has it natively, else fp32)")->capture_default_str();
  a.engine_opts[S::Context] = c->add_option("--context", a.cfg.context, "Recent frames in the context")->capture_default_str();
  a.engine_opts[S::TopK] = c->add_option("--topk", a.cfg.topk, "Affinities kept per pixel over every reference (mast: 0 = all keys, MAST's full softmax)")->capture_default_str();
  a.engine_opts[S::Radius] = c->add_option("--radius", a.cfg.radius, "Window radius on recent frames, feature cells (0 = none)")->capture_default_str();
  a.engine_opts[S::Temperature] = c->add_option("--temperature", a.cfg.temperature, "Softmax temperature")->capture_default_str();
  a.engine_opts[S::Mode] = c->add_option("--mode", a.mode, "crw (context + top-k) | mast (long/short-term memory, ROI)")->capture_default_str();
  a.engine_opts[S::RoiGap] = c->add_option("--roi-gap", a.cfg.roi_gap, "mast: references farther than this many frames get ROI localisation")->capture_default_str();
  a.engine_opts[S::Scale] = c->add_option("--scale", a.cfg.scale, "Internal resolution factor")->capture_default_str();
  c->add_option("--long-term", a.long_term, "mast: long-term references, positions in the segment (0 = the anchor); 'none' for none")->capture_default_str();
  c->add_option("--short-term", a.short_term, "mast: short-term references, frames back from the predicted one; 'none' for none")->capture_default_str();
  c->add_option("--feedback", a.feedback, "What predicted frames remember: soft labels (CRW) | hard one-hot argmax (MAST's code) | auto (soft in crw mode, hard in mast mode)")->capture_default_str();
  c->add_option("--protocol", a.protocol, "Engine preset: crw (20 recent frames, top-10, radius 12) | timecycle (8 recent frames, top-5) | mast (MAST's memory + ROI, top-10, hard labels; 1.4 J&F below crw on DAVIS-2016 val-dev, see README) | fast (crw with radius 8: 1.5x faster, 0.45 J&F below crw on val-dev) | quality (crw with 80 recent frames and radius 16: 1.1 J&F above crw on val-dev with the default model, 1.7x the time); explicit options win");
  c->add_option("--label-resize", a.label_resize, "How an anchor mask reaches the feature grid: bilinear (the 2x2 pixels at each cell's centre, CRW's and MAST's code) | area (each cell's mean)")->capture_default_str();
  a.engine_opts[S::Refine] = c->add_option("--refine", a.cfg.refine_radius, "Edge refinement of the masks: guided-filter radius in frame pixels, the frame's colours as guide (0 = off; the default model recommends 12: +1.7 J&F on DAVIS-2016 val-dev at about the same speed, measured with its GPU-trained first stage)")->capture_default_str();
  a.engine_opts[S::FeedbackPower] = c->add_option("--feedback-power", a.cfg.feedback_power, "Sharpen the soft labels a predicted frame leaves in memory: each cell's labels to this power, renormalised (1 = as predicted, CRW's protocol; in (0, 16]; the default model recommends 1.5: +0.26 J&F on DAVIS-2016 val-dev, +0.36 with --protocol quality, at the same speed)")->capture_default_str();
  a.engine_opts[S::RefineEps] = c->add_option("--refine-eps", a.cfg.refine_eps, "The refinement's eps (colours in [0, 1]): larger follows colour edges less (the default model recommends 3e-4)")->capture_default_str();
  c->add_flag("--flip", a.cfg.flip, "Average each frame's features with those of its mirror image (test-time flip, 1.4x the time: on DAVIS-2016 val-dev +0.6 J&F with the GPU-trained model, -0.3 with the fine-tuned default)");
  c->add_option("--tile", a.cfg.tile, "Query tile side of the local-window affinity")->capture_default_str();
  c->add_flag("--dense", a.dense, "Dense all-pairs affinity, then masked (slow; for comparison)");
  c->add_option("--size", a.size, "Resize frames on decode, WxH (e.g. 854x480)");
}

// "1,3,5" -> {1, 3, 5}; "none" or "" -> {}; throws SettingError naming the option otherwise.
std::vector<int> int_list_parse(const std::string& text, const std::string& option) {
  std::vector<int> out;
  if (text.empty() || text == "none") return out;
  std::stringstream ss(text);
  for (std::string item; std::getline(ss, item, ',');) {
    size_t used = 0;
    int v = 0;
    try {
      v = std::stoi(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (item.empty() || used != item.size()) {
      throw SettingError(option, "must be comma-separated integers or 'none', got '" + text + "'");
    }
    out.push_back(v);
  }
  return out;
}

// The feature extractor, and the engine settings resolved from the model's recommendation, the
// --protocol preset and the options given (propagation_settings.h says the order).
std::unique_ptr<FeatureExtractor> make_features(PropagateArgs& a) {
  a.cfg.local_window = !a.dense;
  a.cfg.mode = propagation_mode_parse(a.mode);
  a.cfg.feedback = label_feedback_parse(a.feedback);
  a.cfg.long_term = int_list_parse(a.long_term, "long-term");
  a.cfg.short_term = int_list_parse(a.short_term, "short-term");
  if (a.label_resize != "bilinear" && a.label_resize != "area") {
    throw SettingError("label-resize", "must be bilinear or area, got '" + a.label_resize + "'");
  }
  a.cfg.area_labels = a.label_resize == "area";
  std::optional<PropagationProtocol> protocol;
  if (!a.protocol.empty()) protocol = propagation_protocol_parse(a.protocol);
  std::set<PropagationSetting> given;
  for (const auto& [setting, opt] : a.engine_opts) if (opt->count() > 0) given.insert(setting);
  const Precision precision = precision_parse(a.precision);
  auto features = feature_extractor_open(a.model, device_parse(a.device), precision);
  a.cfg = propagation_config_resolve(a.cfg, given, model_hints(a.model), protocol);
  propagation_config_validate(a.cfg);
  log_get("app")->info("features: {} on {} ({}), mode {}, scale {}, radius {}, top-k {}, T {}, feedback {} (power {}), refine {}, flip {}", features->name(),
                       features->device().str(), precision_name(features->precision()), propagation_mode_name(a.cfg.mode), a.cfg.scale, a.cfg.radius, a.cfg.topk,
                       a.cfg.temperature, label_feedback_name(label_feedback_effective(a.cfg)), a.cfg.feedback_power, a.cfg.refine_radius,
                       a.cfg.flip ? "on" : "off");
  return features;
}

FrameSourceOptions source_options(const PropagateArgs& a) {
  FrameSourceOptions o;
  if (!a.size.empty()) std::tie(o.width, o.height) = parse_size(a.size, "--size");
  return o;
}

std::unique_ptr<FrameSource> source_open(const PropagateArgs& a) {
  if (a.video.empty() == a.frames.empty()) throw Error("give exactly one of --video FILE or --frames DIR");
  return frame_source_open(a.video.empty() ? a.frames : a.video, source_options(a));
}

std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) if (!item.empty()) out.push_back(item);
  return out;
}

namespace {

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
    anchors.push_back(Anchor{f, anchor_mask_read(path, src, f)});
  }
  return anchors;
}

// Objects 1..n as boxes tiling the middle third of the frame in a near-square grid (bench
// propagate without --mask; n = 1 is one box over the whole middle third).
Image box_grid_mask(const Image& f0, int n) {
  Image m(f0.width, f0.height, 1, 0);
  const int cols = static_cast<int>(std::ceil(std::sqrt(double(n)))), rows = (n + cols - 1) / cols;
  const int x0 = f0.width / 3, x1 = 2 * f0.width / 3, y0 = f0.height / 3, y1 = 2 * f0.height / 3;
  for (int i = 0; i < n; ++i) {
    const int cx = i % cols, cy = i / cols;
    for (int y = y0 + (y1 - y0) * cy / rows; y < y0 + (y1 - y0) * (cy + 1) / rows; ++y)
      for (int x = x0 + (x1 - x0) * cx / cols; x < x0 + (x1 - x0) * (cx + 1) / cols; ++x) m.px(x, y)[0] = uint8_t(i + 1);
  }
  return m;
}

OverlayMode overlay_mode(const std::string& s) {
  if (s == "blend") return OverlayMode::Blend;
  if (s == "contour") return OverlayMode::Contour;
  if (s == "fade") return OverlayMode::FadeBackground;
  if (s == "mask") return OverlayMode::MaskOnly;
  throw Error("--overlay-mode must be blend, contour, fade or mask, got '" + s + "'");
}

// The overlay video's container, refused before anything is computed or written.
void overlay_video_check(const std::string& path) {
  if (path.empty()) return;
  std::string ext = fs::path(path).extension().string();
  for (auto& ch : ext) ch = char(std::tolower(static_cast<unsigned char>(ch)));
  if (ext != ".mp4" && ext != ".mkv" && ext != ".avi") {
    throw Error("--overlay '" + path + "': the overlay video must be .mp4, .mkv or .avi (for frames as PNGs: --overlay-frames DIR)");
  }
}

// --adapt: the model's encoder fine-tuned on `video` first (adaptation.h), on the device and in
// the precision of `base`; the model file is only read. Without --adapt: null (use `base`).
// With --adapt-anchor > 0 the anchors' frames and masks also teach it (the anchor term).
std::unique_ptr<FeatureExtractor> adapted_features(const PropagateArgs& a, FrameSource& video, const std::vector<Anchor>& anchors,
                                                   const FeatureExtractor& base) {
  if (!(a.adapt > 0.0)) return nullptr;
  const std::string ckpt = model_checkpoint(a.model);
  AdaptConfig c;
  c.seconds = a.adapt;
  c.frames = video.size();   // counted already (the anchors were checked against it)
  c.lr = a.adapt_lr;
  c.freeze_batch_norm = a.adapt_bn == "frozen";
  c.device = base.device();
  c.seed = a.model.seed;
  c.anchor_weight = a.adapt_anchor;
  if (c.anchor_weight > 0.0) {
    for (const auto& an : anchors) c.anchors.push_back(AdaptAnchor{video.frame(an.frame), an.mask});
  }
  adaptation_readout(c, a.cfg);
  AdaptResult r;
  auto f = feature_extractor_adapted(ckpt, video.path(), c, base.precision(), &r);
  log_get("app")->info("adapted {} to {}: {} steps in {:.0f} s ({}), training loss {:.4f}", ckpt, video.path(), r.steps, r.seconds,
                       precision_name(base.precision()), r.final_loss);
  return f;
}

void run_propagate(PropagateArgs& a) {
  if (a.out.empty()) throw Error("--out DIR is required");
  auto folder = [](std::string p) {
    while (p.size() > 1 && p.back() == '/') p.pop_back();
    return std::filesystem::weakly_canonical(p);
  };
  if (!a.soft.empty() && folder(a.soft) == folder(a.out)) {
    throw Error("--soft '" + a.soft + "' must be another folder than --out");
  }
  overlay_video_check(a.overlay);
  const OverlayMode mode = overlay_mode(a.overlay_mode);
  if (a.adapt < 0.0 || !std::isfinite(a.adapt)) throw SettingError("adapt", "must be 0 (off) or a positive number of seconds");
  if (a.adapt_bn != "train" && a.adapt_bn != "frozen") throw SettingError("adapt-bn", "must be train or frozen, got '" + a.adapt_bn + "'");
  if (!(a.adapt_anchor >= 0.0) || !std::isfinite(a.adapt_anchor)) {
    throw SettingError("adapt-anchor", "must be a number >= 0 (0: the model's objective alone), got " + std::to_string(a.adapt_anchor));
  }
  if (a.adapt > 0.0 && model_checkpoint(a.model).empty()) {
    throw Error("--adapt fine-tunes a trained model: give --features default or --checkpoint, not --features " + a.model.features);
  }
  auto feats = make_features(a);
  if (!a.davis.empty()) {
    if (!a.video.empty() || !a.frames.empty() || !a.mask.empty()) throw Error("--davis cannot be combined with --video/--frames/--mask");
    if (!a.coco.empty()) throw Error("--coco writes one video's masks; it cannot be combined with --davis");
    if (!a.soft.empty()) throw Error("--soft writes one video's masks; it cannot be combined with --davis");
    const auto seqs = a.sequences.empty() ? davis_sequences(a.davis) : split_list(a.sequences);
    // Every sequence is opened and its first annotation read before any is propagated, so a bad
    // name or a missing annotation fails before results are written.
    struct Job {
      std::string seq;
      std::unique_ptr<FrameSource> src;
      std::vector<Anchor> anchors;
    };
    std::vector<Job> jobs;
    for (const auto& seq : seqs) {
      auto src = frame_source_open(davis_sequence_dir(a.davis, "JPEGImages", seq), source_options(a));
      const std::string first_mask = davis_sequence_dir(a.davis, "Annotations", seq) + "/" + src->frame_name(0) + ".png";
      std::vector<Anchor> anchors{Anchor{0, anchor_mask_read(first_mask, *src, 0)}};
      jobs.push_back(Job{seq, std::move(src), std::move(anchors)});
    }
    dir_ensure_writable(a.out);
    for (auto& job : jobs) {
      auto adapted = adapted_features(a, *job.src, job.anchors, *feats);
      const auto r = propagate_to_files(*job.src, job.anchors, adapted ? *adapted : *feats, a.cfg, PropagationOutput{a.out + "/" + job.seq, "", "", mode});
      log_get("app")->info("{}: {} frames in {:.1f} s ({:.2f} fps)", job.seq, r.frames, r.seconds, r.frames / r.seconds);
    }
    log_get("app")->info("masks written to {}", a.out);
    return;
  }
  if (a.video.empty() == a.frames.empty()) throw Error("give exactly one of --video FILE, --frames DIR or --davis ROOT");
  auto src = frame_source_open(a.video.empty() ? a.frames : a.video, source_options(a));
  auto anchors = collect_anchors(a, *src);
  auto adapted = adapted_features(a, *src, anchors, *feats);
  const auto r = propagate_to_files(*src, anchors, adapted ? *adapted : *feats, a.cfg,
                                    PropagationOutput{a.out, a.overlay, a.overlay_frames, mode, a.coco, a.soft});
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
    c->add_option("--coco", a->coco, "Also write the masks as a COCO data set (JSON: an image per frame, a category per object, RLE annotations)");
    c->add_option("--soft", a->soft, "Also write soft masks: DIR/object_<id>/<frame>.png, 8-bit probability of the object (255 = certain)");
    c->add_option("--overlay-mode", a->overlay_mode, "blend | contour | fade | mask")->capture_default_str();
    c->add_option("--adapt", a->adapt, "Seconds of fine-tuning of the model on each video before propagating (its training objective on the video's own clips, plus the anchor term of --adapt-anchor; the model file is only read; 0 = off)")->capture_default_str();
    c->add_option("--adapt-anchor", a->adapt_anchor, "Weight of --adapt's anchor term: the annotated frames' masks propagated to warped copies of themselves, teaching the model this video's objects (0 = the training objective alone)")->capture_default_str();
    c->add_option("--adapt-lr", a->adapt_lr, "Learning rate of --adapt (Adam)")->capture_default_str();
    c->add_option("--adapt-bn", a->adapt_bn, "Batch norm during --adapt: train (its running statistics follow the video's clips) | frozen (the model's statistics kept, as train --freeze-bn)")
        ->capture_default_str();
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
    auto a = std::make_shared<AffinityBenchConfig>();
    auto* c = app.get_subcommand("bench")->add_subcommand("affinity", "Top-k affinity of one frame pair: local window vs dense (JSON)");
    c->add_option("--channels", a->channels, "Feature channels")->capture_default_str();
    c->add_option("--height", a->height, "Feature map height (60 = 480 px at stride 8)")->capture_default_str();
    c->add_option("--width", a->width, "Feature map width (107 = 854 px at stride 8)")->capture_default_str();
    c->add_option("--topk", a->topk, "k")->capture_default_str();
    c->add_option("--radius", a->radius, "Window radius, cells")->capture_default_str();
    c->add_option("--tile", a->tile, "Query tile side")->capture_default_str();
    c->add_option("--repeats", a->repeats, "Timed repetitions (best is reported)")->capture_default_str();
    c->add_flag("!--no-dense", a->dense, "Skip the dense comparison");
    c->callback([a] { json_emit(bench_affinity(*a)); });
  }
  {
    auto* bench = app.get_subcommand("bench");
    auto a = std::make_shared<PropagateArgs>();
    auto* c = bench->add_subcommand("propagate", "Propagation fps, peak RSS and time per stage (JSON)");
    c->add_option("--video", a->video, "Video file");
    c->add_option("--frames", a->frames, "Folder of frames");
    c->add_option("--mask", a->mask, "Palette PNG for frame 0 (default: boxes in the centre, see --objects)");
    c->add_option("--objects", a->objects, "Without --mask: this many box objects (1-254) tiling the middle third")->capture_default_str();
    c->add_option("--max-frames", a->max_frames, "Only the first N frames");
    c->add_option("--json", a->json, "Write the JSON here instead of stdout");
    add_engine_options(c, *a);
    c->callback([a] {
      if (a->objects < 1 || a->objects > 254) throw Error("--objects must be in [1, 254], got " + std::to_string(a->objects));
      if (!a->mask.empty() && a->objects != 1) throw Error("--objects makes synthetic masks: give it without --mask");
      std::unique_ptr<FrameSource> src = source_open(*a);
      if (a->max_frames > 0) {
        const int64_t n = std::min(a->max_frames, src->size());
        src = std::make_unique<FrameRangeSource>(std::move(src), 0, n - 1);
      }
      auto feats = make_features(*a);
      std::vector<Anchor> anchors{Anchor{0, a->mask.empty() ? box_grid_mask(src->frame(0), a->objects) : anchor_mask_read(a->mask, *src, 0)}};
      json_emit(bench_propagate(*src, anchors, *feats, a->cfg), a->json);
    });
  }
}

}  // namespace corrtrack::cli
