// Inspection: similarity maps, PCA pictures, grid correspondences, point tracks on a pan clip,
// tolerant metrics reading and the charts drawn from it. Values are checked against what the
// definitions give on inputs whose answer is known.
#include "corrtrack/contrastive.h"
#include "corrtrack/drawing.h"
#include "corrtrack/embedding_inspection.h"
#include "corrtrack/image_eval.h"
#include "corrtrack/inspection.h"
#include "corrtrack/tracking.h"
#include "corrtrack/tracking_bench.h"

#include "test_support.h"

#include <gtest/gtest.h>

#include <fstream>
#include <regex>
#include <set>

using namespace corrtrack;
using corrtrack::test::TempDir;

namespace {

// A frame with structure everywhere (random features of it differ from cell to cell).
Image textured_frame(int w = 96, int h = 64) { return pan_clip_create(w, h, 1, 0, 0, 7)->frame(0); }

void write_text(const std::string& path, const std::string& text) { std::ofstream(path) << text; }

}  // namespace

TEST(Colormap, ViridisEndsAndMiddleAreMatplotlibsValues) {
  EXPECT_EQ(colormap_viridis(0.0), (Rgb{68, 1, 84}));
  EXPECT_EQ(colormap_viridis(0.5), (Rgb{33, 145, 140}));
  EXPECT_EQ(colormap_viridis(1.0), (Rgb{253, 231, 37}));
  EXPECT_EQ(colormap_viridis(7.0), colormap_viridis(1.0));   // clamped
  // Half-way between the first two samples (0 and 1/8): the mean of their colours.
  EXPECT_EQ(colormap_viridis(1.0 / 16), (Rgb{70, 23, 104}));
}

TEST(Inspection, SimilarityMapPeaksAtTheQueryOnIdenticalFrames) {
  auto random = feature_extractor_create("random");
  const Image f = textured_frame();
  const FeaturePair pair = feature_pair_compute(*random, f, 0, f, 1, 1.0);   // two frames, same pixels
  for (auto [x, y] : {std::pair{5.0, 7.0}, std::pair{50.0, 30.0}, std::pair{90.0, 60.0}}) {
    for (bool on_b : {false, true}) {
      const auto map = similarity_map(pair, on_b, x, y, f.width, f.height);
      ASSERT_EQ(map.size(0), f.height);
      ASSERT_EQ(map.size(1), f.width);
      // The query's own cell (8x8 pixels) holds the maximum, 1 (L2-normalised features).
      const int cx = int(x) / 8 * 8, cy = int(y) / 8 * 8;
      EXPECT_NEAR(map[cy][cx].item<float>(), 1.0f, 1e-5);
      EXPECT_NEAR(map.max().item<float>(), 1.0f, 1e-5);
      const auto best = best_matches(map, 3, 16);
      ASSERT_EQ(best.size(), 3u);
      EXPECT_EQ(best[0].first / 8 * 8, cx);
      EXPECT_EQ(best[0].second / 8 * 8, cy);
      // The others are at least 16 pixels from the first.
      EXPECT_GE(std::hypot(best[1].first - best[0].first, best[1].second - best[0].second), 16.0);
    }
  }
}

TEST(Inspection, HeatOverlayScalesTheMapsRangeToViridis) {
  Image frame(4, 1, 3, 0);
  auto map = torch::tensor({-0.2f, 0.1f, 0.4f, 0.7f}).reshape({1, 4});
  const Image out = heat_overlay(frame, map, 1.0f);
  auto expect_colour = [&](int x, Rgb want) {
    EXPECT_NEAR(out.px(x, 0)[0], want.r, 1);
    EXPECT_NEAR(out.px(x, 0)[1], want.g, 1);
    EXPECT_NEAR(out.px(x, 0)[2], want.b, 1);
  };
  expect_colour(0, colormap_viridis(0.0));       // the minimum
  expect_colour(1, colormap_viridis(1.0 / 3));   // a third of the way
  expect_colour(3, colormap_viridis(1.0));       // the maximum
}

TEST(Inspection, PcaWithAJointBasisColoursEqualFeaturesEqually) {
  // Left half one feature, right half another: two colours, the same in both pictures.
  auto f = torch::zeros({4, 2, 4});
  f.index_put_({0, torch::indexing::Slice(), torch::indexing::Slice(0, 2)}, 1.0);
  f.index_put_({1, torch::indexing::Slice(), torch::indexing::Slice(2, 4)}, 1.0);
  const Image a = pca_image(f, 32, 16, f);
  EXPECT_EQ(a.width, 32);
  const uint8_t* left = a.px(2, 8);
  const uint8_t* right = a.px(29, 8);
  EXPECT_NE(std::vector<uint8_t>(left, left + 3), std::vector<uint8_t>(right, right + 3));
  // The first component separates the halves: one end of the range on each side.
  EXPECT_EQ(std::abs(int(left[0]) - int(right[0])), 255);
}

TEST(Inspection, CorrespondencesOfAFrameWithItselfAreTheIdentityAndMutual) {
  auto random = feature_extractor_create("random");
  const Image f = textured_frame();
  const FeaturePair pair = feature_pair_compute(*random, f, 0, f, 1, 1.0);
  const auto corr = correspondences_grid(pair, 2);
  ASSERT_EQ(corr.size(), 4u * 6u);   // 8x12 cells, every 2nd from cell 1
  for (const auto& c : corr) {
    EXPECT_DOUBLE_EQ(c.ax, c.bx);
    EXPECT_DOUBLE_EQ(c.ay, c.by);
    EXPECT_NEAR(c.similarity, 1.0f, 1e-5);
    EXPECT_TRUE(c.mutual);
  }
  EXPECT_DOUBLE_EQ(corr[0].ax, 12.0);   // cell 1's centre: (1 + 0.5) * 8
}

TEST(Inspection, FeaturesInspectWritesItsPicturesAndReport) {
  TempDir tmp;
  auto pixels = feature_extractor_create("pixels");
  auto clip = pan_clip_create(96, 64, 6, 2, 0, 3);
  FeatureInspection in;
  in.frame_a = clip->frame(0);
  in.frame_b = clip->frame(5);
  in.b = 5;
  in.points = {{40, 30}};
  in.grid_step = 4;
  const FeaturePair pair = feature_pair_compute(*pixels, in.frame_a, 0, in.frame_b, 5, 1.0);
  const auto report = nlohmann::json::parse(features_inspect(pair, in, tmp.path()));
  for (const char* name : {"similarity_1.png", "pca.png", "correspondences.png", "inspect.json"}) {
    EXPECT_TRUE(std::filesystem::exists(tmp / name)) << name;
  }
  const Image sim = image_read(tmp / "similarity_1.png");
  EXPECT_EQ(sim.width, 2 * 96 + 2 * 72);
  // On frame A the best match is the query's own cell (similarity 1).
  EXPECT_NEAR(report["points"][0]["frame"][0]["similarity"].get<double>(), 1.0, 1e-5);
  EXPECT_EQ(report["points"][0]["frame"][0]["x"].get<int>() / 8, 40 / 8);
  EXPECT_EQ(report["correspondences"]["points"].get<int>(), 2 * 3);
  // A point outside the frame is refused, naming it.
  in.points = {{500, 30}};
  try {
    features_inspect(pair, in, tmp.path());
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("500,30"), std::string::npos) << e.what();
  }
}

TEST(Inspection, PixelsTrackAPannedPointWithinOneCellOver20Frames) {
  auto pixels = feature_extractor_create("pixels");
  TrackBenchConfig b;   // 320x240, 20 frames, 5x5 points
  b.dx = 2;             // the clip pans 2 px per frame: points move 38 px (~5 cells) left in all
  b.dy = 0;
  const auto r = bench_tracks(*pixels, PropagationConfig{}, b);
  EXPECT_EQ(r["points"].get<int>(), 25);
  EXPECT_LT(r["epe_mean_px"].get<double>(), 4.0);                  // half a cell, over frames and points
  EXPECT_GE(r["within_one_cell_last_frame"].get<double>(), 0.9);   // after 20 frames
}

TEST(Inspection, RandomFeaturesTrackEveryPannedPointWithinOneCell) {
  auto random = feature_extractor_create("random");
  const auto r = bench_tracks(*random, PropagationConfig{}, TrackBenchConfig{});
  EXPECT_LT(r["epe_max_px"].get<double>(), 8.0);
  EXPECT_DOUBLE_EQ(r["within_one_cell_last_frame"].get<double>(), 1.0);
}

TEST(Inspection, TracksStayPutOnAStillClipAndCallTheSink) {
  auto pixels = feature_extractor_create("pixels");
  auto still = pan_clip_create(96, 64, 5, 0, 0, 1);
  int calls = 0;
  const auto tracks = points_track(*still, *pixels, PropagationConfig{}, {{20.0, 20.0}, {71.5, 40.25}}, 1, 3, 3.0,
                                   [&](int64_t k, const Image& rgb, const std::vector<TrackPoint>& at) {
                                     EXPECT_EQ(k, 1 + calls++);
                                     EXPECT_EQ(rgb.width, 96);
                                     EXPECT_EQ(at.size(), 2u);
                                   });
  EXPECT_EQ(calls, 3);
  ASSERT_EQ(tracks.size(), 3u);
  // Exact on the first frame; then within half a pixel: the top-k softmax spreads a label a little
  // onto similar neighbouring cells, which moves the centre by a fraction of a pixel.
  EXPECT_DOUBLE_EQ(tracks[0][1].x, 71.5);
  EXPECT_DOUBLE_EQ(tracks[0][1].y, 40.25);
  for (const auto& frame : tracks) {
    EXPECT_NEAR(frame[0].x, 20.0, 0.5);
    EXPECT_NEAR(frame[0].y, 20.0, 0.5);
    EXPECT_NEAR(frame[1].x, 71.5, 0.5);
    EXPECT_NEAR(frame[1].y, 40.25, 0.5);
  }
  EXPECT_THROW(points_track(*still, *pixels, PropagationConfig{}, {{96.0, 10.0}}, 0, 0), Error);   // outside
  EXPECT_THROW(points_track(*still, *pixels, PropagationConfig{}, {{1.0, 1.0}}, 5, 0), Error);     // no frame 5
  EXPECT_THROW(points_track(*still, *pixels, PropagationConfig{}, {}, 0, 0), Error);               // no point
}

TEST(Plot, MetricsWithMissingValuesAndACutLastLineAreRead) {
  TempDir tmp;
  write_text(tmp / "metrics.jsonl",
             "{\"step\":10,\"loss\":2.0,\"elapsed_s\":1.0,\"acc\":0.5}\n"
             "{\"step\":20,\"loss\":1.5,\"elapsed_s\":2.0}\n"
             "{\"step\":30,\"loss\":1.0,\"elapsed_s\":3.0,\"acc\":0.7,\"note\":\"text\"}\n"
             "{\"step\":40,\"loss\":0.");   // killed mid-line
  const MetricsLog log = metrics_read(tmp.path());
  EXPECT_EQ(log.rows.size(), 3u);
  EXPECT_EQ(log.skipped, 1);
  EXPECT_EQ(log.rows[2].count("note"), 0u);   // not a number
  const auto panels = training_curves({log});
  ASSERT_EQ(panels.size(), 3u);   // loss, acc, loss against wall time
  EXPECT_EQ(panels[0].title, "loss");
  EXPECT_EQ(panels[0].series[0].y, (std::vector<double>{2.0, 1.5, 1.0}));
  EXPECT_EQ(panels[1].title, "acc");
  EXPECT_EQ(panels[1].series[0].x, (std::vector<double>{10, 30}));   // only the lines that have it
  EXPECT_EQ(panels[2].x_label, "minutes");
  EXPECT_DOUBLE_EQ(panels[2].series[0].x[2], 3.0 / 60);
  // Against time: the same metrics, each against minutes, and no extra wall-time panel.
  const auto timed = training_curves({log}, /*against_time=*/true);
  ASSERT_EQ(timed.size(), 2u);
  EXPECT_EQ(timed[1].title, "acc");
  EXPECT_EQ(timed[1].x_label, "minutes");
  EXPECT_EQ(timed[1].series[0].x, (std::vector<double>{1.0 / 60, 3.0 / 60}));
  EXPECT_EQ(timed[1].series[0].y, (std::vector<double>{0.5, 0.7}));
  // A log without a loss (evaluations of checkpoints) gets no empty loss panel.
  MetricsLog evals;
  evals.rows = {{{"step", 100}, {"elapsed_s", 30}, {"knn_top1", 0.8}}};
  const auto knn = training_curves({evals}, true);
  ASSERT_EQ(knn.size(), 1u);
  EXPECT_EQ(knn[0].title, "knn_top1");
  // Both formats are written; the SVG holds one polyline per panel with all of its points.
  training_curves_write({tmp.path()}, tmp / "c.svg");
  training_curves_write({tmp.path()}, tmp / "c.png");
  std::ifstream svg(tmp / "c.svg");
  const std::string text((std::istreambuf_iterator<char>(svg)), std::istreambuf_iterator<char>());
  const std::regex poly("<polyline");
  EXPECT_EQ(std::distance(std::sregex_iterator(text.begin(), text.end(), poly), std::sregex_iterator()), 3);
  EXPECT_NE(text.find(">acc</text>"), std::string::npos);
  const Image png = image_read(tmp / "c.png");
  EXPECT_EQ(png.width, 2 * 420);
  EXPECT_EQ(png.height, 2 * 300);
  // The curve is drawn in the first chart colour somewhere.
  const Rgb c = chart_color(0);
  bool found = false;
  for (int y = 0; y < png.height && !found; ++y)
    for (int x = 0; x < png.width && !found; ++x) found = png.px(x, y)[0] == c.r && png.px(x, y)[1] == c.g && png.px(x, y)[2] == c.b;
  EXPECT_TRUE(found);
}

// A file named without a folder (`plot simclr.jsonl` in its own folder) is read, labelled by its
// name; a bare metrics.jsonl by the current folder's name.
TEST(Plot, AFileNamedWithoutAFolderIsReadFromTheCurrentOne) {
  TempDir tmp;
  write_text(tmp / "simclr.jsonl", "{\"step\":1,\"knn_top1\":0.8}\n");
  write_text(tmp / "metrics.jsonl", "{\"step\":2,\"loss\":1.0}\n");
  const auto cwd = std::filesystem::current_path();
  std::filesystem::current_path(tmp.path());
  MetricsLog named, bare;
  try {
    named = metrics_read("simclr.jsonl");
    bare = metrics_read("metrics.jsonl");
  } catch (...) {
    std::filesystem::current_path(cwd);
    throw;
  }
  std::filesystem::current_path(cwd);
  EXPECT_EQ(named.run, "simclr");
  ASSERT_EQ(named.rows.size(), 1u);
  EXPECT_EQ(named.rows[0].at("knn_top1"), 0.8);
  EXPECT_EQ(bare.run, std::filesystem::path(tmp.path()).filename().string());
}

TEST(Plot, UnreadableRunsAreErrorsNamingTheFile) {
  TempDir tmp;
  try {
    metrics_read(tmp / "nothing");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("nothing"), std::string::npos);
  }
  write_text(tmp / "metrics.jsonl", "not json\n");
  EXPECT_THROW(metrics_read(tmp.path()), Error);
  EXPECT_THROW(chart_write(tmp / "c.jpg", {ChartPanel{"t", "x", "", {}}}, 1), Error);
}

TEST(Chart, TicksAreRoundStepsCoveringTheRange) {
  auto expect_ticks = [](const std::vector<double>& got, const std::vector<double>& want) {
    ASSERT_EQ(got.size(), want.size());
    for (size_t i = 0; i < want.size(); ++i) EXPECT_NEAR(got[i], want[i], 1e-9);
  };
  expect_ticks(chart_ticks(0, 1), {0, 0.2, 0.4, 0.6, 0.8, 1});
  expect_ticks(chart_ticks(0, 97), {0, 20, 40, 60, 80, 100});
  expect_ticks(chart_ticks(-0.013, 0.011), {-0.015, -0.01, -0.005, 0, 0.005, 0.01, 0.015});
  EXPECT_EQ(chart_ticks(3, 3.9).front(), 3.0);
  EXPECT_GE(chart_ticks(3, 3.9).back(), 3.9);
}

// Property: a legend wider than the panel wraps onto more rows instead of running off the edge:
// every entry's label is drawn inside the panel, on two rows for six long labels at 420 px.
TEST(Chart, LegendWrapsInsideThePanel) {
  TempDir tmp;
  ChartPanel panel;
  panel.title = "knn_top1";
  for (int i = 0; i < 6; ++i) panel.series.push_back({"a-long-series-" + std::to_string(i), {0, 1}, {0.5, 0.6}});
  chart_write(tmp / "legend.svg", {panel}, 1, 420, 300);
  std::ifstream in(tmp / "legend.svg");
  const std::string svg((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const std::regex label(R"re(<text x="([0-9.]+)" y="([0-9.]+)"[^>]*>a-long-series-\d</text>)re");
  const double label_width = SvgPainter(420, 300).text_width("a-long-series-0", 11.0);   // the legend's font
  std::set<double> rows;
  int labels = 0;
  for (auto it = std::sregex_iterator(svg.begin(), svg.end(), label); it != std::sregex_iterator(); ++it, ++labels) {
    const double x = std::stod((*it)[1]);
    EXPECT_LT(x + label_width, 420.0) << "label starting at x " << x << " runs past the panel";
    rows.insert(std::stod((*it)[2]));
  }
  EXPECT_EQ(labels, 6);
  EXPECT_GE(rows.size(), 2u);
}

namespace {

// Three classes of 8x8 grey images: dark, mid and bright, each image with its own small offset.
ImageDataset grey_levels(int per_class, int offset) {
  ImageDataset d;
  d.name = "grey levels";
  d.classes = {"dark", "mid", "bright"};
  d.images = torch::zeros({3 * per_class, 1, 8, 8}, torch::kUInt8);
  d.labels = torch::zeros({3 * per_class}, torch::kLong);
  for (int c = 0; c < 3; ++c)
    for (int i = 0; i < per_class; ++i) {
      const int64_t n = c * per_class + i;
      d.images[n].fill_(40 + 80 * c + (i * 7 + offset) % 20);
      d.images[n][0][0][0] = uint8_t(i * 13 % 256);   // images of a class differ in one pixel
      d.labels[n] = c;
    }
  return d;
}

}  // namespace

TEST(Embeddings, RetrievalNeighboursAreTheKnnEvaluationsNeighbours) {
  TempDir tmp;
  EmbeddingInspection in;
  in.train = grey_levels(10, 0);
  in.test = grey_levels(4, 3);
  in.queries = 5;
  in.neighbours = 4;
  in.cell = 16;
  const auto report = embeddings_inspect(in, tmp.path());
  for (const char* name : {"retrieval.png", "projection.png", "projection.svg", "embeddings.json"}) {
    EXPECT_TRUE(std::filesystem::exists(tmp / name)) << name;
  }
  // Rows: the first test image of each class, then the next unused ones.
  ASSERT_EQ(report["rows"].size(), 5u);
  std::vector<int64_t> rows;
  for (const auto& r : report["rows"]) rows.push_back(r["test_index"].get<int64_t>());
  EXPECT_EQ(rows, (std::vector<int64_t>{0, 4, 8, 1, 2}));
  // The same neighbours as knn_neighbours on the same features, in the same order.
  const auto [ftr, fte] = image_embed("", "pixels", in.random_encoder, in.train.images, in.test.images, ImageEvalOptions{});
  const auto [sims, idx] = knn_neighbours(ftr, fte.index_select(0, torch::tensor(rows, torch::kLong)), 4);
  for (size_t r = 0; r < rows.size(); ++r)
    for (int j = 0; j < 4; ++j) {
      EXPECT_EQ(report["rows"][r]["neighbours"][j]["train_index"].get<int64_t>(), idx[int64_t(r)][j].item<int64_t>());
      EXPECT_NEAR(report["rows"][r]["neighbours"][j]["similarity"].get<double>(), sims[int64_t(r)][j].item<double>(), 1e-6);
    }
  EXPECT_DOUBLE_EQ(report["knn_top1_k20"].get<double>(), knn_top1(ftr, in.train.labels, fte, in.test.labels, 20, 0.07, 3));
  EXPECT_EQ(report["projection"]["points"].get<int>(), 12);
  const Image grid = image_read(tmp / "retrieval.png");
  EXPECT_EQ(grid.height, 26 + 5 * (16 + 6));
}
