// Data-parallel training over c10d Gloo on loopback, with real processes: this executable starts
// copies of itself as ranks (CORRTRACK_DIST_WORKER names what a rank does) through the same
// launcher as `corrtrack train --nproc`, and compares what they wrote with one process training
// the global batch.
#include "corrtrack/contrastive.h"
#include "corrtrack/distributed.h"
#include "corrtrack/image_methods.h"
#include "corrtrack/train.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <string>

namespace fs = std::filesystem;
namespace nn = torch::nn;
using namespace corrtrack;

namespace {

// ---------------------------------------------------------------------------------------------
// What the ranks train: a tiny regression (with or without BatchNorm) and MoCo.
// ---------------------------------------------------------------------------------------------

class TinyNetImpl : public nn::Module {
 public:
  explicit TinyNetImpl(bool batch_norm) {
    torch::manual_seed(7);
    conv = register_module("conv", nn::Conv2d(nn::Conv2dOptions(2, 6, 3).padding(1)));
    if (batch_norm) bn = register_module("bn", SyncBatchNorm2d(6));
    fc = register_module("fc", nn::Linear(6, 1));
  }
  torch::Tensor forward(torch::Tensor x) {
    x = conv(x);
    if (bn) x = bn(x);
    return fc(torch::relu(x).mean({2, 3}));
  }
  nn::Conv2d conv{nullptr};
  SyncBatchNorm2d bn{nullptr};
  nn::Linear fc{nullptr};
};
TORCH_MODULE(TinyNet);

// Regression of a fixed data set; each rank takes its slice of one permutation per step (as the
// image methods do), so 2 ranks x B see the same samples as 1 rank x 2B.
class TinyRegression : public TrainableMethod {
 public:
  TinyRegression(bool batch_norm, int batch) : m_net(batch_norm), m_batch(batch) {
    auto g = at::make_generator<at::CPUGeneratorImpl>(3);
    m_x = at::normal(0.0, 1.0, {64, 2, 4, 4}, g);
    m_y = m_x.mean({1, 2, 3}).unsqueeze(1) * 3.0 + 0.5;
  }
  std::string name() const override { return "tiny"; }
  nn::Module& module() override { return *m_net; }
  StepOutput step(int64_t, torch::Generator& gen) override {
    const int64_t first = int64_t(distributed().rank()) * m_batch;
    auto idx = at::randperm(64, gen, torch::TensorOptions().dtype(torch::kLong)).slice(0, first, first + m_batch);
    auto loss = torch::mse_loss(m_net(m_x.index_select(0, idx)), m_y.index_select(0, idx));
    return {loss, {}, m_batch};
  }
  CheckpointInfo checkpoint_info() const override {
    CheckpointInfo i;
    i.method = "tiny";
    return i;
  }
 private:
  TinyNet m_net;
  int m_batch;
  torch::Tensor m_x, m_y;
};

ImageMethodConfig image_config(const std::string& method, int batch) {
  ImageMethodConfig c;
  c.method = method;
  c.encoder.in_channels = 1;
  c.encoder.width = 4;
  c.batch = batch;
  c.queue = 64;
  c.proj_dim = 16;
  c.seed = 5;
  c.clusters = 5;
  // Views without randomness, so that both runs see identical inputs whatever the generator.
  c.augment = AugmentConfig{16, 1.0, 1.0, 0.0, false, false};
  return c;
}

torch::Tensor images() {
  auto g = at::make_generator<at::CPUGeneratorImpl>(11);
  return at::randint(0, 256, {64, 1, 16, 16}, g, torch::TensorOptions().dtype(torch::kLong)).to(torch::kUInt8);
}

// Steps of every comparison: past the first epoch of 64 images at 16 a step, so that SwAV's
// prototypes (frozen for the first epoch) train too.
constexpr int kSteps = 6;

std::unique_ptr<TrainableMethod> make_method(const std::string& what, int batch) {
  if (what == "tiny") return std::make_unique<TinyRegression>(false, batch);
  if (what == "tiny_bn") return std::make_unique<TinyRegression>(true, batch);
  return image_method_create(image_config(what, batch), images(), torch::zeros({64}, torch::kLong));
}

void train(TrainableMethod& m, const std::string& dir, int steps) {
  TrainOptions o;
  o.out_dir = dir;
  o.steps = steps;
  o.checkpoint_every = steps;
  o.log_every = 1;
  o.seed = 9;
  o.progress = [](const ProgressInfo&) {};
  // SGD: Adam would turn the rounding noise in the gradient of a bias that BatchNorm removes
  // (exactly 0 in theory) into full-size steps, in one run and not the other.
  OptimizerConfig opt;
  opt.name = "sgd";
  opt.lr = 0.05;
  train_run(m, opt, LrSchedule{"constant"}, o);
}

// ---------------------------------------------------------------------------------------------
// Worker side: what one rank does, then exit (0 = success).
// ---------------------------------------------------------------------------------------------

std::shared_ptr<Distributed> join() {
  DistConfig c = dist_config_from_env(DistConfig{});
  c.timeout_s = 60;
  return dist_connect(c);
}

// Collectives with known answers, written to OUT/rank<r>.pt for the parent to check.
void worker_collectives(const std::string& out) {
  auto d = join();
  const double r = d->rank();
  std::vector<torch::Tensor> sum{torch::tensor({r + 1.0, 10.0 * (r + 1.0)})};
  d->all_reduce_sum(sum);
  auto gathered = d->all_gather(torch::full({1, 2}, r));
  std::vector<torch::Tensor> bc{torch::full({3}, r + 5.0)};
  d->broadcast(bc, 0);
  // Gradient through the gather: loss = Σ w ⊙ gather(x) on every rank with w = [1, 2, 3, 4].
  auto x = torch::full({2}, r + 1.0, torch::kDouble).requires_grad_(true);
  auto w = torch::arange(1, 5, torch::kDouble);
  (all_gather_grad(*d, x) * w).sum().backward();
  // Synchronised BatchNorm on this rank's rows of one global batch.
  auto g = at::make_generator<at::CPUGeneratorImpl>(21);
  auto global = at::normal(0.0, 2.0, {6, 3, 2, 2}, g);
  SyncBatchNorm2d bn(3);
  batch_norm_synchronise(*bn, d);
  auto y = bn(global.narrow(0, d->rank() * 3, 3));
  torch::save(std::vector<torch::Tensor>{sum[0], gathered, bc[0], x.grad(), y.detach(), bn->running_mean, bn->running_var},
              out + "/rank" + std::to_string(d->rank()) + ".pt");
}

void worker_train(const std::string& what, const std::string& out) {
  auto d = join();
  auto m = make_method(what, 8);   // this rank's share of 16
  m->set_distributed(d);
  train(*m, out + "/run", kSteps);
}

int worker_main(const std::string& scenario) {
  try {
    const char* out = std::getenv("CORRTRACK_DIST_OUT");
    if (!out) throw Error("CORRTRACK_DIST_OUT is not set");
    torch::set_num_threads(1);
    if (scenario == "collectives") worker_collectives(out);
    else worker_train(scenario, out);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "worker %s: %s\n", scenario.c_str(), e.what());
    return 1;
  }
}

// ---------------------------------------------------------------------------------------------
// Parent side
// ---------------------------------------------------------------------------------------------

struct TempDir {
  fs::path path = fs::temp_directory_path() / ("corrtrack-dist-" + std::to_string(::getpid()) + "-" + std::to_string(rand()));
  TempDir() { fs::create_directories(path); }
  ~TempDir() { std::error_code ec; fs::remove_all(path, ec); }
};

// Runs `scenario` in `world` processes writing under `out`.
void run_ranks(const std::string& scenario, int world, const fs::path& out) {
  ::setenv("CORRTRACK_DIST_WORKER", scenario.c_str(), 1);
  ::setenv("CORRTRACK_DIST_OUT", out.c_str(), 1);
  try {
    dist_launch_local({"/proc/self/exe"}, world, free_tcp_port());
  } catch (...) {
    ::unsetenv("CORRTRACK_DIST_WORKER");
    throw;
  }
  ::unsetenv("CORRTRACK_DIST_WORKER");
}

std::vector<torch::Tensor> load_tensors(const fs::path& p) {
  std::vector<torch::Tensor> v;
  torch::load(v, p.string());
  return v;
}

void expect_close(const torch::Tensor& a, const torch::Tensor& b, double tol, const std::string& what) {
  ASSERT_EQ(a.sizes(), b.sizes()) << what;
  const double diff = (a.to(torch::kDouble) - b.to(torch::kDouble)).abs().max().item<double>();
  EXPECT_LE(diff, tol) << what << " differs by " << diff;
}

// The module of `what` after the checkpoint in `dir`, and the same trained by one process with
// the global batch: every parameter and buffer within `tol`.
void expect_same_training(const std::string& what, double tol) {
  TempDir two, one;
  run_ranks(what, 2, two.path);
  auto single = make_method(what, 16);
  train(*single, (one.path / "run").string(), kSteps);
  auto reloaded = make_method(what, 16);
  checkpoint_load((two.path / "run" / "last.ckpt").string(), reloaded->module());
  auto mine = single->module().named_parameters(), theirs = reloaded->module().named_parameters();
  ASSERT_EQ(mine.size(), theirs.size());
  for (const auto& p : mine) expect_close(p.value(), theirs[p.key()], tol, what + " parameter " + p.key());
  auto mb = single->module().named_buffers(), tb = reloaded->module().named_buffers();
  for (const auto& b : mb) expect_close(b.value(), tb[b.key()], tol, what + " buffer " + b.key());
  // The parameters moved: a run that did nothing would also "agree".
  auto fresh = make_method(what, 16);
  double moved = 0;
  for (const auto& p : fresh->module().named_parameters()) moved += (p.value() - mine[p.key()]).abs().sum().item<double>();
  EXPECT_GT(moved, 1e-3) << what;
}

}  // namespace

TEST(Distributed, CollectivesGiveKnownAnswers) {
  TempDir t;
  run_ranks("collectives", 2, t.path);
  auto r0 = load_tensors(t.path / "rank0.pt"), r1 = load_tensors(t.path / "rank1.pt");
  for (auto* r : {&r0, &r1}) {
    expect_close((*r)[0], torch::tensor({3.0, 30.0}), 0, "all-reduce");
    expect_close((*r)[1], torch::tensor({{0.0, 0.0}, {1.0, 1.0}}), 0, "all-gather");
    expect_close((*r)[2], torch::full({3}, 5.0), 0, "broadcast from rank 0");
  }
  // d/dx of Σ_ranks Σ w ⊙ gather(x): twice this rank's slice of w.
  expect_close(r0[3], torch::tensor({2.0, 4.0}, torch::kDouble), 0, "gather gradient rank 0");
  expect_close(r1[3], torch::tensor({6.0, 8.0}, torch::kDouble), 0, "gather gradient rank 1");
  // Synchronised BatchNorm equals torch's BatchNorm over the global batch, rows split by rank.
  auto g = at::make_generator<at::CPUGeneratorImpl>(21);
  auto global = at::normal(0.0, 2.0, {6, 3, 2, 2}, g);
  nn::BatchNorm2d bn(3);
  auto y = bn(global);
  expect_close(torch::cat({r0[4], r1[4]}), y.detach(), 1e-5, "synchronised BatchNorm output");
  for (auto* r : {&r0, &r1}) {
    expect_close((*r)[5], bn->running_mean, 1e-6, "running mean");
    expect_close((*r)[6], bn->running_var, 1e-6, "running variance (unbiased over the global batch)");
  }
}

TEST(Distributed, TwoRanksTrainAsOneWithTheGlobalBatch) {
  expect_same_training("tiny", 1e-5);
}

TEST(Distributed, SynchronisedBatchNormTrainsAsOneWithTheGlobalBatch) {
  expect_same_training("tiny_bn", 1e-5);
}

// MoCo: 2 ranks x 8 images give the encoder, the key encoder and the queue (keys of both ranks,
// rank 0's first, and the pointer) of one process with 16.
TEST(Distributed, MoCoQueueHoldsEveryRanksKeys) {
  expect_same_training("moco", 1e-4);
}

// SimCLR: every rank's views are negatives of every other rank's (gathered with gradient).
TEST(Distributed, SimClrNegativesSpanTheGlobalBatch) {
  expect_same_training("simclr", 1e-4);
}

// SwAV: Sinkhorn normalises the codes over the global batch.
TEST(Distributed, SwavSinkhornSpansTheGlobalBatch) {
  expect_same_training("swav", 1e-4);
}

// IIC: the joint distribution of the paired assignments is the global batch's.
TEST(Distributed, IicJointSpansTheGlobalBatch) {
  expect_same_training("iic", 1e-4);
}

// PCL: the same prototypes on every rank (k-means of identical features with the step's
// generator), the queue as MoCo's.
TEST(Distributed, PclPrototypesAgreeAcrossRanks) {
  expect_same_training("pcl", 1e-4);
}

TEST(Distributed, RankGeneratorsDifferPerRankAndRepeatPerStep) {
  struct Fake : public Distributed {
    int r;
    explicit Fake(int rank) : r(rank) {}
    int rank() const override { return r; }
    int world_size() const override { return 2; }
    void all_reduce_sum(std::vector<torch::Tensor>&) override {}
    torch::Tensor all_gather(const torch::Tensor& x) override { return x; }
    void broadcast(std::vector<torch::Tensor>&, int) override {}
    void barrier() override {}
    std::string backend() const override { return "fake"; }
  };
  auto draw = [](const Distributed& d) {
    torch::Generator step = at::make_generator<at::CPUGeneratorImpl>(seed_for_step(1, 5));
    auto g = d.rank_generator(step);
    return at::randint(1 << 30, {4}, g, torch::TensorOptions().dtype(torch::kLong));
  };
  EXPECT_TRUE(torch::equal(draw(Fake(0)), draw(Fake(0))));
  EXPECT_FALSE(torch::equal(draw(Fake(0)), draw(Fake(1))));
  // One process draws from the step's generator itself, as it always did.
  torch::Generator step = at::make_generator<at::CPUGeneratorImpl>(42);
  torch::Generator same = dist_single()->rank_generator(step);
  torch::Generator ref = at::make_generator<at::CPUGeneratorImpl>(42);
  EXPECT_TRUE(torch::equal(at::randint(1000, {3}, same, torch::kLong), at::randint(1000, {3}, ref, torch::kLong)));
}

TEST(Distributed, BadSettingsAreRefusedWithTheOption) {
  DistConfig c;
  c.world_size = 2;
  c.rank = 2;
  try {
    dist_config_validate(c);
    FAIL() << "rank 2 of 2 accepted";
  } catch (const SettingError& e) {
    EXPECT_NE(std::string(e.what()).find("rank"), std::string::npos) << e.what();
  }
  c.rank = 0;
  c.master_port = 70000;
  EXPECT_THROW(dist_config_validate(c), SettingError);
  c.master_port = 29500;
  c.timeout_s = 0;
  EXPECT_THROW(dist_config_validate(c), SettingError);
  // The environment fills what flags did not give; a given flag wins.
  ::setenv("WORLD_SIZE", "4", 1);
  ::setenv("RANK", "3", 1);
  const DistConfig e = dist_config_from_env(DistConfig{}, {"rank"});
  ::unsetenv("WORLD_SIZE");
  ::unsetenv("RANK");
  EXPECT_EQ(e.world_size, 4);
  EXPECT_EQ(e.rank, 0);
}

int main(int argc, char** argv) {
  if (const char* scenario = std::getenv("CORRTRACK_DIST_WORKER")) return worker_main(scenario);
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
