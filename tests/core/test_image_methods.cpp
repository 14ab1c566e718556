// Image methods: every method trains on a small synthetic set and its loss falls; augmentation
// and evaluation measures on hand-checkable cases.
#include "corrtrack/cluster_head.h"
#include "corrtrack/contrastive.h"
#include "corrtrack/image_methods.h"
#include "corrtrack/video.h"
#include "test_support.h"
#include "train_support.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <fstream>
#include <map>

using namespace corrtrack;
using corrtrack::test::TempDir;

namespace {

// 4 classes of 16x16 gray images: a bright bar at one of four orientations/positions plus noise.
std::pair<torch::Tensor, torch::Tensor> toy_images(int n, uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  auto labels = at::randint(4, {n}, gen, torch::TensorOptions().dtype(torch::kLong));
  auto img = at::empty({n, 1, 16, 16}).uniform_(0.0, 60.0, gen);
  for (int i = 0; i < n; ++i) {
    const int64_t c = labels[i].item<int64_t>();
    if (c == 0) img[i][0].slice(0, 6, 10).fill_(230);                   // horizontal bar
    if (c == 1) img[i][0].slice(1, 6, 10).fill_(230);                   // vertical bar
    if (c == 2) img[i][0].slice(0, 0, 8).slice(1, 0, 8).fill_(230);    // top-left block
    if (c == 3) img[i][0].slice(0, 8, 16).slice(1, 8, 16).fill_(230);  // bottom-right block
  }
  return {img.to(torch::kUInt8), labels};
}

std::vector<double> train_losses(const std::string& method, int steps, const torch::Tensor& images, const torch::Tensor& labels,
                                 int batch = 64) {
  ImageMethodConfig cfg;
  cfg.method = method;
  cfg.encoder.width = 8;
  cfg.batch = batch;
  cfg.augment.size = int(images.size(2));
  cfg.queue = 256;
  cfg.clusters = method == "iic" ? 4 : 8;
  cfg.total_steps = steps;
  auto m = image_method_create(cfg, images, labels);
  TempDir d;
  return corrtrack::test::train_losses(*m, d.path(), steps, 3e-3);
}

double mean_of(const std::vector<double>& v, size_t from, size_t to) {
  double s = 0;
  for (size_t i = from; i < to; ++i) s += v[i];
  return s / double(to - from);
}

// 40 steps of `method`: every loss finite, the mean of the last 10 below that of the first 10.
// MoCo and PCL start with a queue of random keys (easy negatives), so their first window begins
// once the queue (256 keys) holds only real keys.
void expect_loss_falls(const std::string& method, const torch::Tensor& images, const torch::Tensor& labels, int batch) {
  const auto losses = train_losses(method, 40, images, labels, batch);
  ASSERT_EQ(losses.size(), 40u);
  for (double l : losses) ASSERT_TRUE(std::isfinite(l));
  const size_t from = (method == "moco" || method == "pcl") ? size_t((256 + batch - 1) / batch) : 0;
  const double first = mean_of(losses, from, from + 10), last = mean_of(losses, 30, 40);
  EXPECT_LT(last, first) << method << ": first " << first << " last " << last;
}

// Rows of x grouped by their offset x - out (under a per-group centring f, each row's offset is
// its group's mean); sizes sorted, and asserts that the offset is each group's mean of x.
std::vector<int64_t> centring_groups(const torch::Tensor& x, const torch::Tensor& out) {
  const auto d = x - out;
  std::map<int64_t, std::vector<int64_t>> groups;
  for (int64_t i = 0; i < x.size(0); ++i) groups[std::llround(d[i][0].item<double>() * 1e9)].push_back(i);
  std::vector<int64_t> sizes;
  for (const auto& [key, rows] : groups) {
    const auto idx = torch::tensor(rows, torch::kLong);
    EXPECT_TRUE(torch::allclose(x.index_select(0, idx).mean(0), d[rows[0]], 1e-9, 1e-12));
    EXPECT_TRUE(torch::allclose(d.index_select(0, idx), d[rows[0]].expand({int64_t(rows.size()), x.size(1)}), 1e-9, 1e-12));
    sizes.push_back(int64_t(rows.size()));
  }
  std::sort(sizes.begin(), sizes.end());
  return sizes;
}

}  // namespace

// MoCo's shuffled key groups: identity comes back as x (row order restored); a centring f (what
// BatchNorm does to the mean) leaves each row minus the mean of its own group, groups of near-equal
// size; the group count is capped at rows / 2; one group is f(x).
TEST(ShuffledGroups, RowsComeBackInOrderWithTheirGroupsStatistics) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(3);
  const auto x = at::randn({25, 3}, gen, torch::kDouble);
  const auto centre = [](const torch::Tensor& v) { return v - v.mean(0, true); };
  EXPECT_TRUE(torch::equal(apply_in_shuffled_groups(x, 4, gen, [](const torch::Tensor& v) { return v.clone(); }), x));
  EXPECT_EQ(centring_groups(x, apply_in_shuffled_groups(x, 4, gen, centre)), (std::vector<int64_t>{6, 6, 6, 7}));
  EXPECT_EQ(centring_groups(x.slice(0, 0, 5), apply_in_shuffled_groups(x.slice(0, 0, 5), 10, gen, centre)), (std::vector<int64_t>{2, 3}));
  EXPECT_TRUE(torch::allclose(apply_in_shuffled_groups(x, 1, gen, centre), centre(x)));
  // Two draws shuffle differently (the groups are random, not fixed slices).
  const auto a = apply_in_shuffled_groups(x, 4, gen, centre), b = apply_in_shuffled_groups(x, 4, gen, centre);
  EXPECT_FALSE(torch::allclose(a, b));
}

class ImageMethodLoss : public ::testing::TestWithParam<std::string> {};

// Property: over 40 steps the mean loss of the last 10 is below that of the first 10. DeepCluster
// re-clusters and resets its classifier every epoch and SeLa re-labels, so their 40 steps are kept
// inside one epoch.
TEST_P(ImageMethodLoss, Falls) {
  const bool dc = GetParam() == "deepcluster" || GetParam() == "sela";  // re-label every epoch
  auto [images, labels] = toy_images(dc ? 1280 : 512, 1);
  expect_loss_falls(GetParam(), images, labels, dc ? 32 : 64);
}

INSTANTIATE_TEST_SUITE_P(AllMethods, ImageMethodLoss,
                         ::testing::Values("simclr", "moco", "byol", "swav", "npid", "sela", "deepcluster", "iic", "pcl",
                                           "supcon", "cpc"));

// Property: one seed gives one run, bit for bit, whatever state the process's global generator is
// in (LibTorch seeds it nondeterministically; the encoder used to be initialised from it before
// the run's seed was set): 3 steps of every method give identical losses twice.
TEST_P(ImageMethodLoss, SameSeedSameLossesBitForBit) {
  auto [images, labels] = toy_images(256, 2);
  torch::manual_seed(11);
  const auto a = train_losses(GetParam(), 3, images, labels, 32);
  torch::manual_seed(424242);
  const auto b = train_losses(GetParam(), 3, images, labels, 32);
  EXPECT_EQ(a, b) << GetParam();
}

class ImageMethodLossFashionMnist : public ::testing::TestWithParam<std::string> {};

// Property: the same on real images: 40 steps on the first 2048 Fashion-MNIST training images
// (28x28, batch 64; DeepCluster and SeLa batch 32 so that their 40 steps stay inside one epoch:
// each re-labels the set every epoch, which resets what the loss measures).
TEST_P(ImageMethodLossFashionMnist, Falls) {
  ImageDataset data;
  try {
    data = image_dataset_load("fashion-mnist", /*train=*/true, 28);
  } catch (const Error& e) {
    GTEST_SKIP() << "Fashion-MNIST not installed (Debian package dataset-fashion-mnist): " << e.what();
  }
  const bool dc = GetParam() == "deepcluster" || GetParam() == "sela";  // re-label every epoch
  expect_loss_falls(GetParam(), data.images.slice(0, 0, 2048), data.labels.slice(0, 0, 2048), dc ? 32 : 64);
}

INSTANTIATE_TEST_SUITE_P(AllMethods, ImageMethodLossFashionMnist,
                         ::testing::Values("simclr", "moco", "byol", "swav", "npid", "sela", "deepcluster", "iic", "pcl",
                                           "supcon", "cpc"));

// Property: augmentation keeps shape and normalisation; with min_scale 1, no jitter, no blur and
// a square image, a view is the image or its mirror.
TEST(Augment, FullCropIsIdentityOrMirror) {
  auto [images, labels] = toy_images(8, 2);
  AugmentConfig a;
  a.size = 16;
  a.min_scale = 1.0;
  a.aspect = 1.0;
  a.jitter = 0.0;
  a.blur = false;
  auto gen = at::make_generator<at::CPUGeneratorImpl>(3);
  torch::Generator g(gen);
  auto v = augment_batch(images, a, {0.0}, {1.0}, g);
  auto x = images.to(torch::kFloat) / 255.0;
  ASSERT_EQ(v.sizes(), x.sizes());
  for (int i = 0; i < 8; ++i) {
    const double same = (v[i] - x[i]).abs().max().item<double>(), mirror = (v[i] - x[i].flip({-1})).abs().max().item<double>();
    EXPECT_LT(std::min(same, mirror), 1e-4) << i;
  }
}

// Property: raw-pixel evaluation of a separable toy set scores near-perfect kNN and NMI well above
// chance; an unknown feature kind and a video checkpoint are refused.
TEST(ImageEval, PixelsOnToySetAndBadInput) {
  auto [tr, ytr] = toy_images(400, 4);
  auto [te, yte] = toy_images(200, 5);
  ImageEvalOptions o;
  o.linear_epochs = 5;
  const auto r = image_evaluate("", "pixels", {}, tr, ytr, te, yte, 4, o);
  EXPECT_GT(r.knn_top1_k20, 0.95);
  EXPECT_GT(r.linear_top1, 0.95);
  EXPECT_GT(r.nmi_kmeans, 0.5);
  EXPECT_GE(r.alignment, 0.0);
  EXPECT_LE(r.alignment, 4.0);
  EXPECT_LT(r.uniformity, 0.0);
  EXPECT_THROW(image_evaluate("", "sift", {}, tr, ytr, te, yte, 4, o), Error);
  TempDir d;
  ResNet net(ResNetConfig::crw_res3());
  checkpoint_save(d / "video.ckpt", *net, R"({"method":"random"})");
  EXPECT_THROW(image_evaluate(d / "video.ckpt", "", {}, tr, ytr, te, yte, 4, o), Error);
}

// Property: the cluster head read back for evaluation computes what the saved head computed (eval
// mode: BatchNorm with the running statistics of its training batches), in the current form (MLP
// neck + linear layer) and in the form before the neck (one linear layer); a head of another
// shape is an error, not a silent mismatch.
TEST(ClusterHead, LoadsTheCurrentAndThePreNeckForm) {
  torch::manual_seed(3);
  TempDir d;
  auto f = torch::randn({7, 16});
  torch::nn::Module with_neck;
  auto head = with_neck.register_module("cluster_head", ClusterClassifier(16, 5));
  head->train();
  head->forward(torch::randn({32, 16}) * 3 + 1);   // running statistics away from their initial 0 / 1
  head->eval();
  checkpoint_save(d / "neck.ckpt", with_neck, R"({"method":"deepcluster"})");
  auto loaded = cluster_head_load(d / "neck.ckpt", "cluster_head", 16, 5, torch::kCPU);
  torch::NoGradGuard ng;
  EXPECT_TRUE(torch::allclose(loaded(f), head->forward(f), 1e-5, 1e-6));

  torch::nn::Module old;
  auto linear = old.register_module("cluster_head", torch::nn::Linear(16, 5));
  checkpoint_save(d / "old.ckpt", old, R"({"method":"sela"})");
  EXPECT_TRUE(torch::allclose(cluster_head_load(d / "old.ckpt", "cluster_head", 16, 5, torch::kCPU)(f), linear->forward(f), 1e-5, 1e-6));
  EXPECT_THROW(cluster_head_load(d / "old.ckpt", "cluster_head", 16, 4, torch::kCPU), Error);
  EXPECT_THROW(cluster_head_load(d / "neck.ckpt", "cluster_head", 16, 4, torch::kCPU), Error);
}
