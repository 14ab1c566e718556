// Training machinery: local-window attention against a dense masked reference, schedules, LARS,
// k-means, and the loop's resume / non-finite-loss / existing-run behaviour on a toy method.
#include "corrtrack/train.h"
#include "test_support.h"
#include "train_support.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <fstream>
#include <limits>

using namespace corrtrack;
using corrtrack::test::TempDir;

namespace {

// Dense reference: all pairs, keys outside the (2r+1)^2 square masked, softmax, weighted sum.
torch::Tensor dense_window_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, int r,
                                     double scale) {
  const int64_t b = q.size(0), c = q.size(1), h = q.size(2), w = q.size(3);
  auto s = torch::bmm(q.reshape({b, c, h * w}).transpose(1, 2), k.reshape({b, c, h * w})) * scale;  // [B, HW, HW]
  auto ys = torch::arange(h).repeat_interleave(w), xs = torch::arange(w).repeat(h);
  auto near = ((ys.unsqueeze(1) - ys.unsqueeze(0)).abs() <= r) & ((xs.unsqueeze(1) - xs.unsqueeze(0)).abs() <= r);
  s = s.masked_fill(~near.unsqueeze(0), -std::numeric_limits<float>::infinity());
  auto a = torch::softmax(s, 2);
  return torch::bmm(v.reshape({b, v.size(1), h * w}), a.transpose(1, 2)).reshape({b, v.size(1), h, w});
}

}  // namespace

// Property: the shifted-view implementation equals the dense masked definition, values and gradients.
TEST(LocalWindow, MatchesDenseMaskedAttention) {
  torch::manual_seed(3);
  auto q = torch::randn({2, 5, 6, 7}, torch::requires_grad());
  auto k = torch::randn({2, 5, 6, 7}, torch::requires_grad());
  auto v = torch::randn({2, 3, 6, 7}, torch::requires_grad());
  auto out = local_window_attention(q, k, v, 2, 0.5);
  auto ref = dense_window_attention(q, k, v, 2, 0.5);
  EXPECT_LT((out - ref).abs().max().item<double>(), 1e-5);
  auto w = torch::randn_like(out);
  auto g1 = torch::autograd::grad({(out * w).sum()}, {q, k, v});
  auto g2 = torch::autograd::grad({(ref * w).sum()}, {q, k, v});
  for (int i = 0; i < 3; ++i) EXPECT_LT((g1[i] - g2[i]).abs().max().item<double>(), 1e-5) << "gradient " << i;
}

// Property: scores are scale * q.k at each offset, -inf outside the frame; offsets row-major.
TEST(LocalWindow, ScoresByHand) {
  auto q = torch::arange(1, 5, torch::kFloat).view({1, 1, 2, 2});   // [[1,2],[3,4]]
  auto k = torch::arange(5, 9, torch::kFloat).view({1, 1, 2, 2});   // [[5,6],[7,8]]
  auto s = local_window_scores(q, k, 1, 2.0);                      // [1, 9, 2, 2]
  ASSERT_EQ(s.size(1), 9);
  // Offset (0,0) is index 4: 2 * q * k.
  EXPECT_FLOAT_EQ(s[0][4][0][0].item<float>(), 2 * 1 * 5);
  EXPECT_FLOAT_EQ(s[0][4][1][1].item<float>(), 2 * 4 * 8);
  // Offset (dy=+1, dx=+1) is index 8: query (0,0) sees key (1,1) = 8.
  EXPECT_FLOAT_EQ(s[0][8][0][0].item<float>(), 2 * 1 * 8);
  // Offset (dy=-1, dx=0) (index 1) from the top row leaves the frame.
  EXPECT_TRUE(std::isinf(s[0][1][0][1].item<float>()));
  EXPECT_LT(s[0][1][0][1].item<float>(), 0);
  // Uniform weights over a full interior window average the values.
  auto v = torch::arange(0, 25, torch::kFloat).view({1, 1, 5, 5});
  auto wts = torch::full({1, 9, 5, 5}, 1.0 / 9.0);
  auto g = local_window_gather(wts, v, 1);
  EXPECT_NEAR(g[0][0][2][2].item<float>(), 12.0, 1e-5);  // mean of the 3x3 around the centre
}

// Property: warm-up is linear from base/warmup, cosine ends at the floor, step multiplies by gamma.
TEST(Schedule, KnownValues) {
  LrSchedule s;
  s.kind = "cosine";
  s.warmup_steps = 10;
  EXPECT_DOUBLE_EQ(s.lr_at(1.0, 0, 110), 0.1);
  EXPECT_DOUBLE_EQ(s.lr_at(1.0, 9, 110), 1.0);
  EXPECT_DOUBLE_EQ(s.lr_at(1.0, 10, 110), 1.0);
  EXPECT_NEAR(s.lr_at(1.0, 60, 110), 0.5, 1e-12);   // half way through the cosine
  EXPECT_NEAR(s.lr_at(1.0, 110, 110), 0.0, 1e-12);
  LrSchedule st;
  st.kind = "step";
  st.milestones = {5, 8};
  st.gamma = 0.5;
  EXPECT_DOUBLE_EQ(st.lr_at(2.0, 4, 10), 2.0);
  EXPECT_DOUBLE_EQ(st.lr_at(2.0, 5, 10), 1.0);
  EXPECT_DOUBLE_EQ(st.lr_at(2.0, 9, 10), 0.5);
  LrSchedule bad;
  bad.kind = "linear-ish";
  EXPECT_THROW(bad.lr_at(1.0, 0, 10), Error);
}

namespace {
// One LARS step (no momentum, no weight decay) of w = [3, 4] (|w| = 5) with gradient [0.6, 0.8]
// (|g| = 1): the trust is eta * 5, and w moves by rate * g.
torch::Tensor lars_step(double lr, double eta, bool clip) {
  auto w = torch::tensor({{3.0f, 4.0f}}).requires_grad_();
  OptimizerConfig cfg;
  cfg.name = "lars";
  cfg.lr = lr;
  cfg.momentum = 0.0;
  cfg.lars_eta = eta;
  cfg.lars_clip = clip;
  Optimizer opt({w}, cfg);
  w.mutable_grad() = torch::tensor({{0.6f, 0.8f}});
  opt.step();
  return w.detach();
}
void expect_moved_by(const torch::Tensor& w, double rate, const std::string& what) {
  EXPECT_NEAR(w[0][0].item<float>(), 3.0 - rate * 0.6, 1e-6) << what;
  EXPECT_NEAR(w[0][1].item<float>(), 4.0 - rate * 0.8, 1e-6) << what;
}
}  // namespace

// Property: LARS scales the step by eta * |w| / |g| (no weight decay): w - lr * eta * 5 / 1 * g,
// linear in eta (0.02 moves 20 times as far as 0.001); clipped, the rate is min(trust, lr) (at
// lr 0.05 the trust of 0.1 is above it: plain SGD, where unclipped gives 0.05 * 0.1); unknown
// optimisers and a trust coefficient that is not a positive number are refused by name.
TEST(Optimizer, LarsTrustRatio) {
  expect_moved_by(lars_step(1.0, 0.001, false), 0.005, "eta 0.001");
  expect_moved_by(lars_step(1.0, 0.02, false), 0.1, "eta 0.02");
  expect_moved_by(lars_step(1.0, 0.02, true), 0.1, "eta 0.02, clipped at lr 1: trust 0.1 is below it");
  expect_moved_by(lars_step(0.05, 0.02, true), 0.05, "clipped at lr 0.05");
  expect_moved_by(lars_step(0.05, 0.02, false), 0.005, "unclipped at lr 0.05");
  auto w = torch::zeros({1, 2}).requires_grad_();
  OptimizerConfig cfg;
  cfg.name = "rmsprop";
  EXPECT_THROW(Optimizer({w}, cfg), Error);
  cfg.name = "lars";
  for (double bad : {0.0, -0.001, std::nan("")}) {
    cfg.lars_eta = bad;
    try {
      Optimizer({w}, cfg);
      FAIL() << "lars_eta " << bad << " accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("lars-eta"), std::string::npos) << e.what();
    }
  }
}

// Property: with exactly k distinct values, k-means returns them; assignment is the nearest centre.
TEST(KMeans, RecoversDistinctClusters) {
  std::vector<float> pts;
  for (int i = 0; i < 30; ++i) {
    const float cx = float(i % 3) * 10.0f;
    pts.push_back(cx + 0.1f * float(i % 2));  // two values per cluster: mean offset 0.05
    pts.push_back(-cx);
  }
  auto x = torch::tensor(pts).view({30, 2});
  auto gen = at::make_generator<at::CPUGeneratorImpl>(7);
  torch::Generator g(gen);
  auto c = kmeans(x, 3, 20, g);
  auto order = c.select(1, 0).argsort();
  c = c.index({order});
  for (int j = 0; j < 3; ++j) {
    EXPECT_NEAR(c[j][0].item<float>(), j * 10.0f + 0.05f, 1e-4);
    EXPECT_NEAR(c[j][1].item<float>(), -j * 10.0f, 1e-4);
  }
  auto a = kmeans_assign(torch::tensor({{19.0f, -21.0f}}), c);
  EXPECT_EQ(a[0].item<int64_t>(), 2);
  EXPECT_THROW(kmeans(x.slice(0, 0, 2), 3, 5, g), Error);
}

// ---------------------------------------------------------------------------------------------
// The training loop on a toy method: fit y = 2x + 1 from batches drawn with the step generator.
// ---------------------------------------------------------------------------------------------

namespace {

class ToyModelImpl : public torch::nn::Module {
 public:
  ToyModelImpl() : fc(register_module("fc", torch::nn::Linear(1, 1))) {}
  torch::nn::Linear fc;
};
TORCH_MODULE(ToyModel);

class ToyMethod : public TrainableMethod {
 public:
  explicit ToyMethod(int64_t nan_from = -1, std::string name = "toy") : m_nan_from(nan_from), m_name(std::move(name)) {
    torch::NoGradGuard ng;
    m_model->fc->weight.fill_(0.0);
    m_model->fc->bias.fill_(0.0);
  }
  std::string name() const override { return m_name; }
  torch::nn::Module& module() override { return *m_model; }
  void set_device(torch::Device d) override { m_model->to(d); }
  StepOutput step(int64_t step, torch::Generator& gen) override {
    auto x = at::empty({16, 1}).uniform_(-1.0, 1.0, gen);
    auto y = 2.0 * x + 1.0;
    auto loss = (m_model->fc->forward(x) - y).pow(2).mean();
    if (m_nan_from >= 0 && step >= m_nan_from) loss = loss * std::numeric_limits<double>::quiet_NaN();
    return {loss, {{"w", m_model->fc->weight.item<double>()}}, 16};
  }
  CheckpointInfo checkpoint_info() const override {
    CheckpointInfo info;
    info.method = m_name;
    return info;
  }
  double weight() const { return m_model->fc->weight.item<double>(); }
  double bias() const { return m_model->fc->bias.item<double>(); }

 private:
  ToyModel m_model;
  int64_t m_nan_from;
  std::string m_name;
};

TrainOptions toy_options(const std::string& dir, int64_t steps) {
  TrainOptions o;
  o.out_dir = dir;
  o.steps = steps;
  o.checkpoint_every = 5;
  o.log_every = 5;
  o.seed = 11;
  o.progress = [](const ProgressInfo&) {};
  return o;
}

OptimizerConfig toy_adam() {
  OptimizerConfig o;
  o.lr = 0.05;
  return o;
}

}  // namespace

// Property: the loss falls, and a run stopped at step 20 and resumed ends bit-identical to an
// uninterrupted run (same batches per step, optimiser state restored), with one metrics line per
// logged step.
TEST(TrainLoop, ResumeEqualsUninterrupted) {
  TempDir a, b;
  ToyMethod straight;
  const auto s1 = train_run(straight, toy_adam(), LrSchedule{}, toy_options(a.path(), 40));
  EXPECT_EQ(s1.last_step, 40);
  auto m1 = corrtrack::test::metrics_read(a / "metrics.jsonl");
  ASSERT_EQ(m1.size(), 8u);
  EXPECT_LT(m1.back()["loss"].get<double>(), 0.25 * m1.front()["loss"].get<double>());

  ToyMethod first;
  auto opts = toy_options(b.path(), 40);
  int calls = 0;
  opts.cancel = [&calls] { return ++calls > 20; };  // stop after 20 steps
  const auto s2 = train_run(first, toy_adam(), LrSchedule{}, opts);
  EXPECT_TRUE(s2.cancelled);
  EXPECT_EQ(s2.last_step, 20);
  EXPECT_EQ(nlohmann::json::parse(checkpoint_metadata(b / "last.ckpt"))["step"].get<int64_t>(), 20);

  ToyMethod resumed;
  auto ropts = toy_options(b.path(), 40);
  ropts.resume = true;
  const auto s3 = train_run(resumed, toy_adam(), LrSchedule{}, ropts);
  EXPECT_EQ(s3.first_step, 20);
  EXPECT_EQ(s3.last_step, 40);
  EXPECT_DOUBLE_EQ(resumed.weight(), straight.weight());
  EXPECT_DOUBLE_EQ(resumed.bias(), straight.bias());
  auto m2 = corrtrack::test::metrics_read(b / "metrics.jsonl");
  ASSERT_EQ(m2.size(), 8u);
  for (size_t i = 0; i < m2.size(); ++i) EXPECT_EQ(m2[i]["step"].get<int64_t>(), int64_t(5 * (i + 1)));
}

// Property: lines a killed run logged past its last checkpoint are dropped on resume, as is a torn line.
TEST(TrainLoop, ResumeTrimsMetricsPastCheckpoint) {
  TempDir d;
  ToyMethod m;
  auto o = toy_options(d.path(), 10);
  train_run(m, toy_adam(), LrSchedule{}, o);
  {
    std::ofstream out(d / "metrics.jsonl", std::ios::app);
    out << R"({"step":15,"loss":1})" << "\n" << R"({"step":2)";
  }
  ToyMethod r;
  auto ro = toy_options(d.path(), 15);
  ro.resume = true;
  train_run(r, toy_adam(), LrSchedule{}, ro);
  auto lines = corrtrack::test::metrics_read(d / "metrics.jsonl");
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[2]["step"].get<int64_t>(), 15);
  EXPECT_NE(lines[2]["loss"].get<double>(), 1.0);
}

// Property: non-finite losses are skipped; after max_bad_steps in a row the run stops with an
// error naming the last good checkpoint, which stays at the last good step.
TEST(TrainLoop, NonFiniteLossStopsAndKeepsLastCheckpoint) {
  TempDir d;
  ToyMethod m(/*nan_from=*/7);
  auto o = toy_options(d.path(), 40);
  o.max_bad_steps = 3;
  try {
    train_run(m, toy_adam(), LrSchedule{}, o);
    FAIL() << "expected the run to stop";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("not finite"), std::string::npos) << msg;
    EXPECT_NE(msg.find("(step 5)"), std::string::npos) << msg;
  }
  EXPECT_EQ(nlohmann::json::parse(checkpoint_metadata(d / "last.ckpt"))["step"].get<int64_t>(), 5);
  EXPECT_TRUE(std::isfinite(m.weight()));
}

// Property: an existing run is never overwritten, and --resume refuses another method's checkpoint.
TEST(TrainLoop, RefusesExistingRunAndForeignCheckpoint) {
  TempDir d;
  ToyMethod m;
  train_run(m, toy_adam(), LrSchedule{}, toy_options(d.path(), 5));
  ToyMethod again;
  EXPECT_THROW(train_run(again, toy_adam(), LrSchedule{}, toy_options(d.path(), 5)), Error);
  ToyMethod other(-1, "other");
  auto o = toy_options(d.path(), 10);
  o.resume = true;
  try {
    train_run(other, toy_adam(), LrSchedule{}, o);
    FAIL() << "expected a method mismatch";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'toy'"), std::string::npos) << e.what();
  }
  TempDir empty;
  auto eo = toy_options(empty.path(), 5);
  eo.resume = true;
  EXPECT_THROW(train_run(again, toy_adam(), LrSchedule{}, eo), Error);
}
