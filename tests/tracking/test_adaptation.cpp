// Adapting the bundled model to one video (adaptation.h): its encoder is loaded into the training
// method exactly, a short fine-tune on the sample video lowers the method's own loss on clips of
// that video, the model file is left as it was, and a cancelled adaptation returns nothing.
#include "test_support.h"

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
