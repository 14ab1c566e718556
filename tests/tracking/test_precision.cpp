// Reduced precision: the folded encoder against the module it came from, the bfloat16 encoder and
// products against float32, reflect padding against torch's, and the precision names.
#include "inference_encoder.h"
#include "windowed_affinity.h"

#include "test_support.h"

#include "corrtrack/tracking.h"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

using namespace corrtrack;
using namespace corrtrack::detail;

namespace F = torch::nn::functional;

namespace {

// An encoder whose BatchNorms hold non-trivial statistics (folding identity stats proves little).
ResNet encoder_with_statistics(const ResNetConfig& cfg, uint64_t seed) {
  ResNet net(cfg);
  resnet_init(net, seed);
  torch::NoGradGuard ng;
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed + 100);
  for (auto& m : net->modules(false)) {
    if (auto* bn = m->as<SyncBatchNorm>()) {
      bn->weight.copy_(at::empty(bn->weight.sizes()).uniform_(0.5, 1.5, gen));
      bn->bias.copy_(at::empty(bn->bias.sizes()).uniform_(-0.2, 0.2, gen));
      bn->running_mean.copy_(at::empty(bn->running_mean.sizes()).uniform_(-0.2, 0.2, gen));
      bn->running_var.copy_(at::empty(bn->running_var.sizes()).uniform_(0.5, 2.0, gen));
    }
  }
  net->eval();
  return net;
}

// Mean and minimum over cells of the cosine similarity of two feature maps [1, C, h, w].
std::pair<double, double> cosine_stats(const torch::Tensor& a, const torch::Tensor& b) {
  auto cos = F::cosine_similarity(a, b, F::CosineSimilarityFuncOptions().dim(1));
  return {cos.mean().item<double>(), cos.min().item<double>()};
}

}  // namespace

TEST(ReflectPad, EqualsTorchReflectPaddingInEveryDtype) {
  auto x = torch::arange(2 * 3 * 5 * 6, torch::kFloat).view({2, 3, 5, 6});
  for (int64_t p : {1, 2, 4}) {
    auto want = F::pad(x, F::PadFuncOptions({p, p, p, p}).mode(torch::kReflect));
    EXPECT_TRUE(torch::equal(reflect_pad(x, p), want)) << "padding " << p;
    // Small integers are exact in bfloat16, so the bfloat16 result must equal the float one.
    auto xb = (x.remainder(64)).to(torch::kBFloat16);
    auto wb = F::pad(xb.to(torch::kFloat), F::PadFuncOptions({p, p, p, p}).mode(torch::kReflect));
    EXPECT_TRUE(torch::equal(reflect_pad(xb, p).to(torch::kFloat), wb)) << "padding " << p;
  }
  // A hand case: row [1 2 3] padded by 1 is [2 1 2 3 2].
  auto row = torch::tensor({1.f, 2.f, 3.f}).view({1, 1, 1, 3}).expand({1, 1, 2, 3}).contiguous();
  auto padded = reflect_pad(row, 1);
  EXPECT_TRUE(torch::equal(padded[0][0][0], torch::tensor({2.f, 1.f, 2.f, 3.f, 2.f})));
}

// Folding BatchNorm into the convolutions computes the same function: float32 folded output
// equals the module's forward up to rounding, for MAST's stride-4 net (head, no max-pool), CRW's
// res3 (reflect padding, max-pool) and TimeCycle's ResNet-50 (bottlenecks, 1x1 head).
TEST(InferenceEncoder, FoldedFloat32EqualsTheModule) {
  const std::vector<std::pair<std::string, ResNetConfig>> configs{
      {"mast", ResNetConfig::stride4_64d()}, {"crw", ResNetConfig::crw_res3()}, {"timecycle50", ResNetConfig::timecycle_res4(50)}};
  auto x = torch::randn({1, 3, 52, 76}, at::make_generator<at::CPUGeneratorImpl>(7));
  for (const auto& [name, cfg] : configs) {
    ResNet net = encoder_with_statistics(cfg, 3);
    torch::NoGradGuard ng;
    const auto want = net->forward(x);
    InferenceEncoder folded(*net, torch::kFloat, torch::kCPU);
    const auto got = folded.forward(x);
    ASSERT_EQ(got.sizes(), want.sizes()) << name;
    const double scale = want.abs().max().item<double>();
    EXPECT_LT((got - want).abs().max().item<double>(), 1e-4 * scale) << name;
  }
}

// The bfloat16 encoder gives features pointing the same way: per-cell cosine similarity with the
// float32 module's features at least 0.99 on average and 0.95 at worst.
TEST(InferenceEncoder, BFloat16FeaturesAgreeWithFloat32) {
  auto x = torch::randn({1, 3, 64, 96}, at::make_generator<at::CPUGeneratorImpl>(9));
  for (const auto& cfg : {ResNetConfig::stride4_64d(), ResNetConfig::crw_res3()}) {
    ResNet net = encoder_with_statistics(cfg, 4);
    torch::NoGradGuard ng;
    const auto want = net->forward(x);
    InferenceEncoder fast(*net, torch::kBFloat16, torch::kCPU);
    EXPECT_EQ(fast.dtype(), torch::kBFloat16);
    const auto got = fast.forward(x);
    EXPECT_EQ(got.scalar_type(), torch::kFloat);
    const auto [mean, worst] = cosine_stats(got, want);
    EXPECT_GT(mean, 0.99);
    EXPECT_GT(worst, 0.95);
  }
}

TEST(Precision, NamesAndResolution) {
  EXPECT_EQ(precision_parse("auto"), Precision::Auto);
  EXPECT_EQ(precision_parse("fp32"), Precision::Float32);
  EXPECT_EQ(precision_parse("bf16"), Precision::BFloat16);
  for (auto p : {Precision::Auto, Precision::Float32, Precision::BFloat16}) EXPECT_EQ(precision_parse(precision_name(p)), p);
  try {
    precision_parse("fp16");
    FAIL() << "fp16 accepted";
  } catch (const SettingError& e) {
    EXPECT_NE(std::string(e.what()).find("precision"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("fp16"), std::string::npos);
  }
  // cpuid agrees with the kernel's view of the CPU.
  std::ifstream info("/proc/cpuinfo");
  if (info) {
    std::stringstream text;
    text << info.rdbuf();
    const std::string all = text.str();
    const bool listed = all.find(" avx512_bf16") != std::string::npos || all.find(" amx_bf16") != std::string::npos;
    EXPECT_EQ(cpu_has_native_bf16(), listed);
  }
  EXPECT_EQ(precision_resolve(Precision::Auto, torch::kCPU),
            cpu_has_native_bf16() ? Precision::BFloat16 : Precision::Float32);
  EXPECT_EQ(precision_resolve(Precision::Auto, torch::Device(torch::kCUDA, 0)), Precision::Float32);
  EXPECT_EQ(precision_resolve(Precision::Float32, torch::kCPU), Precision::Float32);
  EXPECT_EQ(precision_resolve(Precision::BFloat16, torch::kCPU), Precision::BFloat16);
}

TEST(Precision, ExtractorsReportWhatTheyCompute) {
  const Image frame = corrtrack::test::synthetic_frame(1, 96, 64);
  auto exact = feature_extractor_create("random", 3, torch::kCPU, Precision::Float32);
  auto fast = feature_extractor_create("random", 3, torch::kCPU, Precision::BFloat16);
  EXPECT_EQ(exact->precision(), Precision::Float32);
  EXPECT_EQ(fast->precision(), Precision::BFloat16);
  const auto a = exact->extract(frame), b = fast->extract(frame);
  ASSERT_EQ(a.sizes(), b.sizes());
  EXPECT_LT((b.norm(2, 0) - 1).abs().max().item<double>(), 1e-4);     // normalised in float32
  const auto [mean, worst] = cosine_stats(a.unsqueeze(0), b.unsqueeze(0));
  EXPECT_GT(mean, 0.99);
  EXPECT_GT(worst, 0.95);
  // The parameter-free features have no reduced-precision form.
  EXPECT_EQ(feature_extractor_create("pixels", 0, torch::kCPU, Precision::BFloat16)->precision(), Precision::Float32);
}

// Products in bfloat16: the windowed top-k's values are the float32 scores of the keys it chose,
// up to bfloat16 rounding of the features (unit vectors: |error| < 1/64), and it keeps nearly the
// keys float32 keeps. The dense product likewise.
TEST(Precision, BFloat16ProductsKeepTheTopK) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(5);
  const int64_t C = 64, h = 14, w = 19, Q = h * w;
  const int k = 6;
  auto q = F::normalize(at::randn({C, h, w}, gen), F::NormalizeFuncOptions().dim(0));
  auto key = F::normalize(q + 0.5 * at::randn({C, h, w}, gen), F::NormalizeFuncOptions().dim(0));
  const auto all = torch::mm(q.reshape({C, Q}).t(), key.reshape({C, Q}));   // float32 scores [Q, Q]
  WindowedAffinity exact(C, h, w, 4, 3.0, torch::kCPU, WindowShape::Circle, torch::kFloat);
  WindowedAffinity fast(C, h, w, 4, 3.0, torch::kCPU, WindowShape::Circle, torch::kBFloat16);
  const auto [ve, ce] = exact.topk(exact.query_tiles(q), exact.key_layout(key), k);
  const auto [vb, cb] = fast.topk(fast.query_tiles(q), fast.key_layout(key), k);
  EXPECT_EQ(vb.scalar_type(), torch::kFloat);
  const auto finite = torch::isfinite(vb);
  EXPECT_TRUE(torch::equal(finite, torch::isfinite(ve)));
  const auto chosen = all.gather(1, cb).masked_select(finite);
  EXPECT_LT((vb.masked_select(finite) - chosen).abs().max().item<double>(), 1.0 / 64);
  // Overlap of the chosen key sets: at least 90 % of float32's.
  int64_t same = 0, total = 0;
  auto ca = ce.accessor<int64_t, 2>(), cba = cb.accessor<int64_t, 2>();
  auto fa = finite.accessor<bool, 2>();
  for (int64_t i = 0; i < Q; ++i) {
    for (int a = 0; a < k; ++a) {
      if (!fa[i][a]) continue;
      ++total;
      for (int b = 0; b < k; ++b) same += fa[i][b] && cba[i][b] == ca[i][a] ? 1 : 0;
    }
  }
  EXPECT_GT(double(same) / double(total), 0.9);
  // Dense: bfloat16 queries and keys give float32 scores close to the exact ones.
  RunningTopK dense(Q, k, Q);
  dense_accumulate(q.to(torch::kBFloat16), key.to(torch::kBFloat16), 0.0, dense, 0);
  EXPECT_EQ(dense.values().scalar_type(), torch::kFloat);
  EXPECT_LT((dense.values() - all.gather(1, dense.codes())).abs().max().item<double>(), 1.0 / 64);
  EXPECT_LT((dense.values() - std::get<0>(all.topk(k, 1))).abs().max().item<double>(), 1.0 / 64);
}
