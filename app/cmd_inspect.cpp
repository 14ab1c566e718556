// corrtrack inspect features / tracks, bench tracks and plot: what a model learned, as files.
#include <torch/torch.h>

#include "cli_common.h"
#include "corrtrack/core.h"
#include "corrtrack/embedding_inspection.h"
#include "corrtrack/inspection.h"
#include "corrtrack/tracking.h"
#include "corrtrack/tracking_bench.h"
#include "engine_options.h"

#include <cstdio>
#include <filesystem>
#include <iostream>
#include <sstream>

namespace fs = std::filesystem;

namespace corrtrack::cli {

namespace {

// "X,Y" -> pixel coordinates; throws naming the option.
std::pair<double, double> point_parse(const std::string& text, const std::string& option) {
  double x = 0, y = 0;
  int used = 0;
  if (std::sscanf(text.c_str(), "%lf,%lf%n", &x, &y, &used) != 2 || used != int(text.size())) {
    throw Error("--" + option + " must look like X,Y (pixels), got '" + text + "'");
  }
  return {x, y};
}

std::vector<std::pair<double, double>> points_parse(const std::vector<std::string>& items, const std::string& option) {
  std::vector<std::pair<double, double>> out;
  for (const auto& s : items) out.push_back(point_parse(s, option));
  return out;
}

struct InspectFeaturesArgs {
  PropagateArgs engine;
  int64_t frame = 0, other = -1;
  std::vector<std::string> points;
  int matches = 5, grid = 0;
};

void run_inspect_features(InspectFeaturesArgs& a) {
  auto src = source_open(a.engine);
  const int64_t n = src->size();
  if (a.frame < 0 || a.frame >= n) throw Error("--frame " + std::to_string(a.frame) + " is outside '" + src->path() + "' (" + std::to_string(n) + " frames)");
  const int64_t other = a.other >= 0 ? a.other : std::min(n - 1, a.frame + 5);
  if (other >= n) throw Error("--other " + std::to_string(other) + " is outside '" + src->path() + "' (" + std::to_string(n) + " frames)");
  if (a.matches < 1 || a.grid < 0) throw Error("--matches must be >= 1 and --grid >= 0");
  auto features = make_features(a.engine);
  FeatureInspection in;
  in.a = a.frame;
  in.b = other;
  in.frame_a = src->frame(a.frame);
  in.frame_b = src->frame(other);
  in.points = points_parse(a.points, "point");
  if (in.points.empty()) in.points.emplace_back(in.frame_a.width / 2, in.frame_a.height / 2);
  in.matches = a.matches;
  in.grid_step = a.grid;
  const FeaturePair pair = feature_pair_compute(*features, in.frame_a, in.a, in.frame_b, in.b, a.engine.cfg.scale);
  StagedFolder staged(a.engine.out);   // the pictures land together or not at all
  const std::string report = features_inspect(pair, in, staged.path());
  staged.commit();
  std::cout << report;
  log_get("app")->info("pictures of {} ({}) written to {}", features->name(), features->device().str(), a.engine.out);
}

struct InspectTracksArgs {
  PropagateArgs engine;
  std::vector<std::string> points;
  int64_t first = 0, count = 0;
  double search_radius = 3.0;
};

void run_inspect_tracks(InspectTracksArgs& a) {
  if (a.engine.video.empty()) throw Error("give the video (or frame folder) with --video");
  auto src = frame_source_open(a.engine.video, source_options(a.engine));
  const auto points = points_parse(a.points, "points");
  if (points.empty()) throw Error("give the points to track with --points X,Y [X,Y ...]");
  auto features = make_features(a.engine);
  const fs::path out(a.engine.out);
  // Frame pictures are staged and land when the whole track does; the CSV comes last.
  StagedFolder frames((out / "frames").string());
  std::vector<std::vector<TrackPoint>> tracks;
  std::vector<std::string> names;
  Image last;
  points_track(*src, *features, a.engine.cfg, points, a.first, a.count, a.search_radius, [&](int64_t k, const Image& rgb, const std::vector<TrackPoint>& at) {
    tracks.push_back(at);
    names.push_back(src->frame_name(k));
    last = tracks_draw(rgb, tracks, tracks.size() - 1);
    image_write_png(frames.path() + "/" + names.back() + ".png", last);
  });
  frames.commit();
  image_write_png((out / "tracks.png").string(), last);
  std::ostringstream csv;
  csv << "frame,name,point,x,y,confidence\n";
  for (size_t t = 0; t < tracks.size(); ++t)
    for (size_t p = 0; p < tracks[t].size(); ++p) {
      char line[160];
      std::snprintf(line, sizeof line, "%lld,%s,%zu,%.2f,%.2f,%.3f\n", static_cast<long long>(a.first + int64_t(t)), names[t].c_str(),
                    p + 1, tracks[t][p].x, tracks[t][p].y, tracks[t][p].confidence);
      csv << line;
    }
  file_write_atomic((out / "tracks.csv").string(), csv.str());
  log_get("app")->info("{} points over {} frames: {}/tracks.csv, tracks.png, frames/", points.size(), tracks.size(), out.string());
}

}  // namespace

void register_inspect_commands(CLI::App& app) {
  auto* inspect = app.get_subcommand("inspect");
  {
    auto a = std::make_shared<InspectFeaturesArgs>();
    auto* c = inspect->add_subcommand("features", "Pictures of a model's features: similarity maps of points, PCA colours, correspondences");
    c->add_option("--video", a->engine.video, "Video file");
    c->add_option("--frames", a->engine.frames, "Folder of frames");
    c->add_option("--frame", a->frame, "The frame whose points are queried (K)")->capture_default_str();
    c->add_option("--other", a->other, "The other frame (K2; default K+5, or the last)");
    c->add_option("--point", a->points, "X,Y: a pixel of frame K (repeatable; default the centre)");
    c->add_option("--matches", a->matches, "Best matches ringed on each map")->capture_default_str();
    c->add_option("--grid", a->grid, "Feature cells between the correspondence picture's points (0: ~10 across)")->capture_default_str();
    c->add_option("--out", a->engine.out, "Output folder: similarity_<i>.png, pca.png, correspondences.png, inspect.json")->required();
    add_engine_options(c, a->engine);
    c->callback([a] { run_inspect_features(*a); });
  }
  {
    auto a = std::make_shared<InspectTracksArgs>();
    auto* c = inspect->add_subcommand("tracks", "Follow points through a video by the model's correspondence: trajectories drawn and as CSV");
    c->add_option("--video", a->engine.video, "Video file or folder of frames")->required();
    c->add_option("--points", a->points, "X,Y ...: pixels of the first frame to follow")->required();
    c->add_option("--first", a->first, "The frame the points are on")->capture_default_str();
    c->add_option("--frames", a->count, "Frames to follow them over, the first included (0 = to the end)")->capture_default_str();
    c->add_option("--search-radius", a->search_radius, "How far a point may move between frames, feature cells (0 = anywhere)")->capture_default_str();
    c->add_option("--out", a->engine.out, "Output folder: tracks.csv, tracks.png, frames/<name>.png")->required();
    add_engine_options(c, a->engine);
    c->callback([a] { run_inspect_tracks(*a); });
  }
  {
    struct EmbeddingArgs {
      EmbeddingInspection in;
      std::string data = "fashion-mnist", out;
      int size = 32;
      uint64_t seed = 0;
    };
    auto a = std::make_shared<EmbeddingArgs>();
    auto* c = inspect->add_subcommand("embeddings", "Pictures of an image method's embedding: retrieval grid and PCA of the test set");
    c->add_option("--checkpoint", a->in.checkpoint, "Image-method checkpoint (RUN/last.ckpt)");
    c->add_option("--features", a->in.features, "Without --checkpoint: pixels | random")->capture_default_str();
    c->add_option("--encoder", a->in.random_encoder.kind, "Encoder of --features random: convnet | resnet18")->capture_default_str();
    c->add_option("--data", a->data, "fashion-mnist or an image folder with train/ and test/")->capture_default_str();
    c->add_option("--image-size", a->size, "Image folder: images resized to this")->capture_default_str();
    c->add_option("--queries", a->in.queries, "Retrieval rows (one per class first)")->capture_default_str();
    c->add_option("--neighbours", a->in.neighbours, "Nearest training images per row")->capture_default_str();
    c->add_option("--projected", a->in.projected, "Test images in the projection")->capture_default_str();
    c->add_option("--seed", a->seed, "Seed of the random encoder")->capture_default_str();
    c->add_option("--out", a->out, "Output folder: retrieval.png, projection.png/.svg, embeddings.json")->required();
    c->callback([a] {
      if (!a->in.checkpoint.empty()) image_checkpoint_encoder(a->in.checkpoint);   // refuse a foreign one before loading data
      a->in.train = image_dataset_load(a->data, true, a->size);
      a->in.test = image_dataset_load(a->data, false, a->size);
      a->in.random_encoder.in_channels = int(a->in.train.images.size(1));
      torch::manual_seed(a->seed);
      StagedFolder staged(a->out);
      const auto report = embeddings_inspect(a->in, staged.path());
      staged.commit();
      json_emit(report);
    });
  }
  {
    auto a = std::make_shared<PropagateArgs>();
    auto b = std::make_shared<TrackBenchConfig>();
    auto* c = app.get_subcommand("bench")->add_subcommand("tracks", "Point-tracking accuracy on a synthetic pan clip: end-point error (JSON)");
    c->add_option("--width", b->width, "Clip width")->capture_default_str();
    c->add_option("--height", b->height, "Clip height")->capture_default_str();
    c->add_option("--clip-frames", b->frames, "Clip length")->capture_default_str();
    c->add_option("--dx", b->dx, "Pan, pixels per frame (horizontal)")->capture_default_str();
    c->add_option("--dy", b->dy, "Pan, pixels per frame (vertical)")->capture_default_str();
    c->add_option("--grid", b->grid, "Points per side of the tracked lattice")->capture_default_str();
    c->add_option("--clip-seed", b->seed, "Seed of the clip's texture")->capture_default_str();
    c->add_option("--search-radius", b->search_radius, "How far a point may move between frames, feature cells (0 = anywhere)")->capture_default_str();
    c->add_option("--json", a->json, "Write the JSON here instead of stdout");
    add_engine_options(c, *a);
    c->callback([a, b] {
      auto features = make_features(*a);
      json_emit(bench_tracks(*features, a->cfg, *b), a->json);
    });
  }
  {
    auto runs = std::make_shared<std::vector<std::string>>();
    auto out = std::make_shared<std::string>();
    auto x = std::make_shared<std::string>("step");
    auto* c = app.add_subcommand("plot", "Training curves of runs (metrics.jsonl) as PNG or SVG: every metric against step, loss against time");
    c->add_option("runs", *runs, "Training run folders (or metrics.jsonl files), overlaid")->required();
    c->add_option("--out", *out, "curves.png or curves.svg")->required();
    c->add_option("--x", *x, "step (every metric against step, then loss against wall time) | time (every metric against wall time)")->capture_default_str();
    c->callback([=] {
      if (*x != "step" && *x != "time") throw SettingError("x", "must be step or time, got '" + *x + "'");
      training_curves_write(*runs, *out, *x == "time");
      log_get("app")->info("curves of {} run(s) written to {}", runs->size(), *out);
    });
  }
}

}  // namespace corrtrack::cli
