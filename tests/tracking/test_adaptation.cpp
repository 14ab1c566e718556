// Adapting the bundled model to one video (adaptation.h): its encoder is loaded into the training
// method exactly, a short fine-tune on the sample video lowers the method's own loss on clips of
// that video, the model file is left as it was, and a cancelled adaptation returns nothing. The
// anchor term: its loss against the definition, and that it teaches a DAVIS object so that later
// frames of the video (their true masks, never trained on) are read out better than without it.
#include "test_support.h"

#include "anchor_term.h"
#include "label_grid.h"

#include "corrtrack/adaptation.h"
#include "corrtrack/tracking.h"
#include "corrtrack/training_setup.h"

#include <fstream>
#include <iterator>

using namespace corrtrack;
using corrtrack::test::TempDir;
namespace fs = std::filesystem;

namespace {

const std::string kSample = std::string(CORRTRACK_TEST_SOURCE_DIR) + "/assets/sample/city.mp4";
const std::string kModel = std::string(CORRTRACK_TEST_SOURCE_DIR) + "/assets/models/default.ckpt";

std::string file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// MAST on the sample video (streamed), small clips so that a test step is quick.
std::unique_ptr<TrainableMethod> mast_on_sample(const std::string& run_dir) {
  TrainingSetup s;
  s.method = "mast";
  s.data = {kSample};
  s.data_mode = "stream";
  s.run_dir = run_dir;
  s.cache_size = 128;
  s.video.sampler.crop = 96;
  s.batch = 2;
  return training_method_create(s);
}

// The method's training loss (train mode, as the loop computes it) averaged over `n` batches
// drawn with seeds the adaptation never uses.
double mean_loss(TrainableMethod& m, int n) {
  torch::NoGradGuard ng;
  m.module().train();
  double sum = 0;
  for (int i = 0; i < n; ++i) {
    const uint64_t seed = seed_for_step(987654321, i);
    torch::manual_seed(seed);
    torch::Generator g(at::make_generator<at::CPUGeneratorImpl>(seed));
    sum += m.step(100000 + i, g).loss.item<double>();
  }
  return sum / n;
}

// An adaptation of `steps` steps at the small test size (the time budget never ends it).
AdaptConfig small_adaptation(int64_t steps) {
  AdaptConfig cfg;
  cfg.seconds = 600;
  cfg.max_steps = steps;   // the same run on any machine
  cfg.batch = 2;
  cfg.crop = 96;
  cfg.cache_size = 128;
  return cfg;
}

}  // namespace

TEST(Adaptation, InitLoadsTheModelsEncoderExactly) {
  if (!fs::exists(kModel)) GTEST_SKIP() << "no bundled model at " << kModel;
  TempDir dir;
  auto m = mast_on_sample(dir / "run");
  method_init_encoder(*m, kModel);
  ResNet want(ResNetConfig::stride4_64d());
  checkpoint_load(kModel, *want);
  const auto got = m->module().named_parameters();
  for (const auto& p : want->named_parameters()) {
    ASSERT_TRUE(got.contains("encoder." + p.key())) << p.key();
    EXPECT_TRUE(torch::equal(got["encoder." + p.key()], p.value())) << p.key();
  }
  // Another encoder (the CRW-shaped random baseline) is refused, naming the file.
  feature_extractor_save_random(dir / "random.ckpt", 1);
  try {
    method_init_encoder(*m, dir / "random.ckpt");
    FAIL() << "a foreign encoder was loaded";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("random.ckpt"), std::string::npos) << e.what();
  }
}

// In float32 and with the encoder in bfloat16 (what propagate --adapt does in --precision bf16).
class AdaptationPrecision : public ::testing::TestWithParam<bool> {};

TEST_P(AdaptationPrecision, LowersTheLossOnItsVideoAndLeavesTheModel) {
  if (!fs::exists(kModel)) GTEST_SKIP() << "no bundled model at " << kModel;
  torch::set_num_threads(2);
  const std::string before = file_bytes(kModel);
  TempDir dir;
  const int64_t steps = 40;
  AdaptConfig cfg = small_adaptation(steps);
  cfg.bf16 = GetParam();
  cfg.lr = 1e-4;
  const AdaptResult r = encoder_adapt(kModel, kSample, dir / "work", cfg);
  EXPECT_FALSE(r.cancelled);
  ASSERT_EQ(r.steps, steps);
  ASSERT_EQ(r.checkpoint, dir / "work/adapted.ckpt");
  EXPECT_EQ(checkpoint_info_read(dir / "work/run/last.ckpt").record.value("precision", ""), GetParam() ? "bf16" : "fp32");
  EXPECT_EQ(file_bytes(kModel), before);   // the model file is only read
  // The adapted file keeps the model's recommended engine settings.
  EXPECT_EQ(checkpoint_info_read(r.checkpoint).propagation.scale, checkpoint_info_read(kModel).propagation.scale);

  auto original = mast_on_sample(dir / "a");
  method_init_encoder(*original, kModel);
  auto adapted = mast_on_sample(dir / "b");
  method_init_encoder(*adapted, r.checkpoint);
  const double l0 = mean_loss(*original, 8), l1 = mean_loss(*adapted, 8);
  std::printf("adaptation: %lld steps in %.1f s; loss on held-out clips of the video %.4f -> %.4f\n",
              static_cast<long long>(r.steps), r.seconds, l0, l1);
  EXPECT_LT(l1, l0);

  // The adapted features moved, but stay close to the model's.
  auto f0 = feature_extractor_load(kModel), f1 = feature_extractor_load(r.checkpoint);
  auto src = frame_source_open(kSample);
  const Image frame = src->frame(0);
  const double cosine = (f0->extract(frame) * f1->extract(frame)).sum(0).mean().item<double>();
  EXPECT_LT(cosine, 0.9999);
  EXPECT_GT(cosine, 0.5);
}

INSTANTIATE_TEST_SUITE_P(Adaptation, AdaptationPrecision, ::testing::Bool(),
                         [](const auto& info) { return info.param ? "bf16" : "fp32"; });

TEST(Adaptation, CancelledReturnsNothingAndCleansUp) {
  if (!fs::exists(kModel)) GTEST_SKIP() << "no bundled model at " << kModel;
  auto count_work_dirs = [] {
    int n = 0;
    for (const auto& e : fs::directory_iterator(fs::temp_directory_path())) n += e.path().filename().string().rfind("corrtrack-adapt-", 0) == 0;
    return n;
  };
  const int dirs = count_work_dirs();
  AdaptConfig cfg;
  cfg.seconds = 600;
  cfg.cancel = [] { return true; };
  AdaptResult r;
  EXPECT_EQ(feature_extractor_adapted(kModel, kSample, cfg, Precision::Float32, &r), nullptr);
  EXPECT_TRUE(r.cancelled);
  EXPECT_EQ(r.steps, 0);
  EXPECT_EQ(count_work_dirs(), dirs);
  cfg.seconds = -1;
  EXPECT_THROW(encoder_adapt(kModel, kSample, "unused", cfg), SettingError);
}

// propagate --adapt-bn frozen: the adapted encoder normalises with the model's batch-norm
// statistics (every running mean and variance bit-equal to the model's) while its weights move;
// with the default (train) the statistics follow the video's clips.
TEST(Adaptation, FrozenBatchNormKeepsTheModelsStatistics) {
  if (!fs::exists(kModel)) GTEST_SKIP() << "no bundled model at " << kModel;
  torch::set_num_threads(2);
  ResNet model(ResNetConfig::stride4_64d());
  checkpoint_load(kModel, *model);
  for (const bool freeze : {true, false}) {
    TempDir dir;
    AdaptConfig cfg = small_adaptation(3);
    cfg.freeze_batch_norm = freeze;
    const AdaptResult r = encoder_adapt(kModel, kSample, dir / "work", cfg);
    ASSERT_EQ(r.steps, 3);
    ResNet adapted(ResNetConfig::stride4_64d());
    checkpoint_load(r.checkpoint, *adapted);
    const auto got = adapted->named_buffers();
    int statistics = 0, same = 0;
    for (const auto& b : model->named_buffers()) {
      if (b.key().find("running_") == std::string::npos) continue;
      ++statistics;
      same += torch::equal(got[b.key()], b.value());
    }
    ASSERT_GT(statistics, 20) << "the encoder's batch norms";
    if (freeze) EXPECT_EQ(same, statistics);
    else EXPECT_EQ(same, 0);
    const auto params = adapted->named_parameters();
    EXPECT_FALSE(torch::equal(params["conv1.weight"], model->named_parameters()["conv1.weight"])) << "freeze=" << freeze;
  }
}

// anchor_term.h's loss, computed by hand: three keys (background, object, half of each), queries
// whose top-2 keys and softmax weights follow from the dot products.
TEST(AnchorTerm, ReadoutLossByDefinition) {
  const auto keys = torch::tensor({1.0f, 0.0f, 0.6f, 0.0f, 1.0f, 0.8f}).view({2, 3});   // columns (1,0) (0,1) (0.6,0.8)
  const auto key_labels = torch::tensor({1.0f, 0.0f, 0.0f, 1.0f, 0.5f, 0.5f}).view({3, 2});
  const auto queries = torch::tensor({1.0f, 0.0f, 0.0f, 1.0f}).view({2, 2});              // columns (1,0) (0,1)
  const auto query_labels = torch::tensor({1.0f, 0.0f, 0.0f, 1.0f}).view({2, 2});         // background, object
  const auto valid = torch::tensor({true, true});
  const double T = 0.5;
  // Query 0: affinities 1, 0, 0.6 -> top-2 keys 0 and 2; p(background) = w0 + w2 / 2.
  const double w0 = std::exp(1 / T) / (std::exp(1 / T) + std::exp(0.6 / T)), w2 = 1 - w0;
  const double ce0 = -std::log(w0 + w2 / 2);
  // Query 1: affinities 0, 1, 0.8 -> keys 1 and 2; p(object) = v1 + v2 / 2.
  const double v1 = std::exp(1 / T) / (std::exp(1 / T) + std::exp(0.8 / T)), v2 = 1 - v1;
  const double ce1 = -std::log(v1 + v2 / 2);
  const auto loss = corrtrack::detail::anchor_readout_loss(keys, key_labels, queries, query_labels, valid, 2, T);
  EXPECT_NEAR(loss.item<double>(), (ce0 + ce1) / 2, 1e-6);

  // Class-balanced: a second background query with the same cross-entropy leaves the loss as it was.
  const auto q3 = torch::cat({queries, queries.narrow(1, 0, 1)}, 1);
  const auto l3 = torch::cat({query_labels, query_labels.narrow(0, 0, 1)}, 0);
  EXPECT_NEAR(corrtrack::detail::anchor_readout_loss(keys, key_labels, q3, l3, torch::tensor({true, true, true}), 2, T).item<double>(),
              (ce0 + ce1) / 2, 1e-6);
  // An invalid cell does not count: the object's query alone.
  EXPECT_NEAR(corrtrack::detail::anchor_readout_loss(keys, key_labels, queries, query_labels, torch::tensor({false, true}), 2, T).item<double>(),
              ce1, 1e-6);
  // top-k 0 reads out from every key: query 1 then has weight on all three.
  const double e0 = std::exp(0.0), e1 = std::exp(1 / T), e2 = std::exp(0.8 / T);
  const double all1 = -std::log((e1 + e2 / 2) / (e0 + e1 + e2));
  EXPECT_NEAR(corrtrack::detail::anchor_readout_loss(keys, key_labels, queries, query_labels, torch::tensor({false, true}), 0, T).item<double>(),
              all1, 1e-6);
  // The gradient reaches the features.
  auto q = queries.clone().requires_grad_(true);
  corrtrack::detail::anchor_readout_loss(keys, key_labels, q, query_labels, valid, 2, T).backward();
  EXPECT_GT(q.grad().abs().sum().item<double>(), 0.0);
}

// anchor_term.h's warp: the identity leaves input and labels as they are; a zoom out by 0.8 brings
// in zeros (the standardised input's mean colour, not black) and marks them outside; a mirror
// reverses the columns; the contrast gain scales the lightness alone for Lab, every channel for RGB.
TEST(AnchorTerm, WarpByDefinition) {
  using corrtrack::detail::AnchorWarp;
  using corrtrack::detail::anchor_warp;
  const auto input = torch::arange(3 * 8 * 10, torch::kFloat).view({1, 3, 8, 10}) / 100.0 + 0.5;   // all > 0
  const auto labels = torch::zeros({1, 2, 8, 10});
  labels.select(1, 0).fill_(1.0);
  labels.select(1, 0).narrow(2, 0, 5).fill_(0.0);
  labels.select(1, 1).narrow(2, 0, 5).fill_(1.0);   // object: the left half
  const auto same = anchor_warp(input, labels, AnchorWarp{}, true);
  EXPECT_TRUE(torch::allclose(same.input, input, 1e-5, 1e-5));
  EXPECT_TRUE(torch::allclose(same.labels, labels, 1e-5, 1e-5));
  EXPECT_NEAR(same.inside.min().item<double>(), 1.0, 1e-6);

  AnchorWarp out;
  out.scale = 0.8;   // the frame shrinks to the middle 80 %: a border of 1 pixel per side of 10 is outside
  const auto zoomed = anchor_warp(input, labels, out, true);
  EXPECT_NEAR(zoomed.inside[0][0][0][0].item<double>(), 0.0, 1e-6);
  EXPECT_NEAR(zoomed.input.select(3, 0).abs().max().item<double>(), 0.0, 1e-6);   // the mean colour, in every channel
  EXPECT_NEAR(zoomed.labels.select(3, 0).abs().max().item<double>(), 0.0, 1e-6);
  EXPECT_NEAR(zoomed.inside[0][0][4][5].item<double>(), 1.0, 1e-6);

  AnchorWarp mirror;
  mirror.mirror = true;
  EXPECT_TRUE(torch::allclose(anchor_warp(input, labels, mirror, true).input, input.flip({3}), 1e-5, 1e-5));

  AnchorWarp contrast;
  contrast.contrast = 1.1;
  const auto lab = anchor_warp(input, labels, contrast, true).input;
  EXPECT_TRUE(torch::allclose(lab.select(1, 0), 1.1 * input.select(1, 0), 1e-5, 1e-5));
  EXPECT_TRUE(torch::allclose(lab.narrow(1, 1, 2), input.narrow(1, 1, 2), 1e-5, 1e-5));
  EXPECT_TRUE(torch::allclose(anchor_warp(input, labels, contrast, false).input, 1.1 * input, 1e-5, 1e-5));
}

TEST(AnchorTerm, RefusesBadAnchors) {
  if (!fs::exists(kModel)) GTEST_SKIP() << "no bundled model at " << kModel;
  TempDir dir;
  auto src = frame_source_open(kSample);
  const Image frame = src->frame(0);
  AdaptConfig cfg = small_adaptation(1);
  cfg.anchors = {AdaptAnchor{frame, Image(frame.width / 2, frame.height, 1)}};   // a mask of another size
  EXPECT_THROW(encoder_adapt(kModel, kSample, dir / "a", cfg), Error);
  cfg.anchors = {AdaptAnchor{frame, Image(frame.width, frame.height, 1)}};       // no object in it
  EXPECT_THROW(encoder_adapt(kModel, kSample, dir / "b", cfg), Error);
  cfg.anchor_weight = -1;
  EXPECT_THROW(encoder_adapt(kModel, kSample, dir / "c", cfg), SettingError);
}

namespace {

// The anchor term's readout from frame 0 of a DAVIS sequence (its true mask) to frame `k` (its
// true mask) with the encoder of `checkpoint`, at full resolution: the loss the term lowers on the
// anchor frame, measured on a frame it never saw.
double readout_loss(const std::string& checkpoint, FrameSource& frames, const std::string& masks, int64_t k) {
  auto f = feature_extractor_load(checkpoint);
  auto labels_of = [&](int64_t t, torch::Tensor& features) {
    const Image frame = frames.frame(t);
    features = f->extract(frame);
    corrtrack::detail::LabelGrid grid;
    grid.set_frame(frame.width, frame.height, 1.0);
    grid.stride = f->stride();
    grid.h = features.size(1);
    grid.w = features.size(2);
    return grid.labels_from_mask(mask_read(masks + "/" + frames.frame_name(t) + ".png"), 2).flatten(1).t();
  };
  torch::Tensor keys, queries;
  const auto key_labels = labels_of(0, keys), query_labels = labels_of(k, queries);
  const auto valid = torch::ones({query_labels.size(0)}, torch::kBool);
  return corrtrack::detail::anchor_readout_loss(keys.flatten(1), key_labels, queries.flatten(1), query_labels, valid, 10, 0.05).item<double>();
}

}  // namespace

// On a DAVIS training video (bear, 427x240): the adaptation with the anchor term reads frame 20's
// true mask out of frame 0 better than the model did and better than the same adaptation without
// the term (the objective alone), and logs the term as it trains.
TEST(AnchorTerm, TeachesTheObjectOnLaterFrames) {
  if (!fs::exists(kModel)) GTEST_SKIP() << "no bundled model at " << kModel;
  CORRTRACK_REQUIRE_DATA(data);
  torch::set_num_threads(2);
  const std::string seq = data + "/davis2016-train-240p/JPEGImages/bear", masks = data + "/davis2016-train-240p/Annotations/bear";
  auto frames = frame_source_open(seq);
  TempDir dir;
  auto adapted = [&](double weight, const std::string& work) {
    AdaptConfig cfg = small_adaptation(12);
    cfg.anchors = {AdaptAnchor{frames->frame(0), mask_read(masks + "/00000.png")}};
    cfg.anchor_weight = weight;
    cfg.scale = 1.0;
    return encoder_adapt(kModel, seq, dir / work, cfg);
  };
  const AdaptResult with = adapted(1.0, "with"), without = adapted(0.0, "without");
  ASSERT_EQ(with.steps, 12);
  const double l_model = readout_loss(kModel, *frames, masks, 20);
  const double l_with = readout_loss(with.checkpoint, *frames, masks, 20);
  const double l_without = readout_loss(without.checkpoint, *frames, masks, 20);
  std::printf("readout loss frame 0 -> 20 of bear: model %.4f, adapted without the term %.4f, with it %.4f\n", l_model, l_without,
              l_with);
  EXPECT_LT(l_with, l_model);
  EXPECT_LT(l_with, l_without);
  // The term is logged with every step; without it, it is not.
  std::ifstream log(dir / "with/run/metrics.jsonl");
  std::string all((std::istreambuf_iterator<char>(log)), std::istreambuf_iterator<char>());
  EXPECT_NE(all.find("\"anchor\""), std::string::npos);
  std::ifstream log0(dir / "without/run/metrics.jsonl");
  std::string all0((std::istreambuf_iterator<char>(log0)), std::istreambuf_iterator<char>());
  EXPECT_EQ(all0.find("\"anchor\""), std::string::npos);
}
