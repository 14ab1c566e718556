// The running top-k of the propagation context: the CPU scan and the generic (CUDA) path keep the
// same candidates as one torch::topk over every reference's scores (copies repeated), and the
// windowed affinity feeds both the same way. Also the engine's label argmax against torch's.
#include "label_grid.h"
#include "running_topk.h"
#include "windowed_affinity.h"

#include <gtest/gtest.h>

using namespace corrtrack;
using namespace corrtrack::detail;

namespace {

// Reference answer: concatenate the blocks (each repeated `copies` times), one topk, codes.
std::pair<torch::Tensor, torch::Tensor> brute_force(const std::vector<torch::Tensor>& blocks, const std::vector<int>& copies,
                                                    int k) {
  std::vector<torch::Tensor> v, c;
  for (size_t r = 0; r < blocks.size(); ++r) {
    const int64_t n = blocks[r].size(1);
    auto codes = (torch::arange(n, torch::kLong) + int64_t(r) * n).expand({blocks[r].size(0), n});
    v.push_back(blocks[r].repeat({1, copies[r]}));
    c.push_back(codes.repeat({1, copies[r]}));
  }
  auto all_v = torch::cat(v, 1), all_c = torch::cat(c, 1);
  auto top = all_v.topk(k, 1);
  return {std::get<0>(top), all_c.gather(1, std::get<1>(top))};
}

}  // namespace

TEST(RunningTopK, DenseBlocksEqualOneTopkOverAll) {
  torch::manual_seed(3);
  const int64_t Q = 37, N = 50;
  const int k = 7;
  std::vector<torch::Tensor> blocks{torch::randn({Q, N}), torch::randn({Q, N}), torch::randn({Q, N})};
  const std::vector<int> copies{1, 3, 1};
  const auto [want_v, want_c] = brute_force(blocks, copies, k);
  for (bool generic : {false, true}) {
    RunningTopK acc(Q, k, N, torch::kCPU, generic);
    for (size_t r = 0; r < blocks.size(); ++r) {
      // In two row chunks, as the propagation feeds them.
      acc.add_dense(blocks[r].narrow(0, 0, 20), 0, int64_t(r), copies[r]);
      acc.add_dense(blocks[r].narrow(0, 20, Q - 20), 20, int64_t(r), copies[r]);
    }
    EXPECT_TRUE(torch::equal(acc.values(), want_v)) << "generic " << generic;
    EXPECT_TRUE(torch::equal(acc.codes(), want_c)) << "generic " << generic;
  }
}

TEST(RunningTopK, CopiesFillSlotsAndMinusInfNeverEnters) {
  // Query 0 sees one finite key counted 3 times; query 1 sees only -inf.
  auto s = torch::full({2, 4}, -std::numeric_limits<float>::infinity());
  s[0][2] = 0.5f;
  for (bool generic : {false, true}) {
    RunningTopK acc(2, 5, 4, torch::kCPU, generic);
    acc.add_dense(s, 0, 1, 3);
    auto v = acc.values(), c = acc.codes();
    for (int j = 0; j < 3; ++j) {
      EXPECT_EQ(v[0][j].item<float>(), 0.5f) << generic;
      EXPECT_EQ(c[0][j].item<int64_t>(), 4 + 2) << generic;   // reference 1, key 2
    }
    EXPECT_TRUE(torch::isinf(v[0].narrow(0, 3, 2)).all().item<bool>()) << generic;
    EXPECT_TRUE(torch::isinf(v[1]).all().item<bool>()) << generic;
    if (!generic) EXPECT_EQ(c[1].abs().sum().item<int64_t>(), 0);   // empty slots point at key 0
  }
}

TEST(RunningTopK, WindowedScanEqualsGenericPath) {
  torch::manual_seed(5);
  const int64_t C = 6, h = 11, w = 17;
  auto q = torch::randn({C, h, w}), k1 = torch::randn({C, h, w}), k2 = torch::randn({C, h, w});
  WindowedAffinity wa(C, h, w, 4, 3.5);
  auto qt = wa.query_tiles(q);
  RunningTopK scan(h * w, 6, h * w), generic(h * w, 6, h * w, torch::kCPU, true);
  for (RunningTopK* acc : {&scan, &generic}) {
    wa.accumulate(qt, wa.key_layout(k1), *acc, 0, 1);
    wa.accumulate(qt, wa.key_layout(k2), *acc, 1, 2);
  }
  EXPECT_TRUE(torch::equal(scan.values(), generic.values()));
  EXPECT_TRUE(torch::equal(scan.codes(), generic.codes()));
  // And both equal the dense masked affinity of each reference, merged by brute force.
  std::vector<torch::Tensor> blocks;
  for (const auto& key : {k1, k2}) {
    auto s = torch::mm(q.reshape({C, -1}).t(), key.reshape({C, -1}));
    auto ys = torch::arange(h).view({h, 1}).expand({h, w}).reshape({-1}).to(torch::kFloat);
    auto xs = torch::arange(w).view({1, w}).expand({h, w}).reshape({-1}).to(torch::kFloat);
    auto d2 = (ys.unsqueeze(1) - ys.unsqueeze(0)).pow(2) + (xs.unsqueeze(1) - xs.unsqueeze(0)).pow(2);
    blocks.push_back(s.masked_fill(d2 >= 3.5 * 3.5, -std::numeric_limits<float>::infinity()));
  }
  const auto [want_v, want_c] = brute_force(blocks, {1, 2}, 6);
  EXPECT_LT((scan.values() - want_v).abs().max().item<double>(), 1e-5);
  EXPECT_TRUE(torch::equal(scan.codes(), want_c));
}

// The engine's argmax over labels equals torch's argmax over dim 0, ties included (lowest label
// wins): scores drawn from a few integers so that ties are common.
TEST(LabelArgmax, EqualsTorchArgmaxTiesIncluded) {
  torch::manual_seed(11);
  for (int64_t L : {1, 2, 3, 7}) {
    auto labels = torch::randint(0, 3, {L, 31, 45}).to(torch::kFloat);
    const auto want = labels.argmax(0);
    EXPECT_TRUE(torch::equal(label_argmax(labels), want)) << L << " labels";
    EXPECT_TRUE(torch::equal(label_argmax(labels, torch::kUInt8), want.to(torch::kUInt8))) << L << " labels";
  }
  // Exact hand case: position 0 ties between labels 1 and 2 -> 1; position 1 -> 0 (all equal).
  auto hand = torch::tensor({0.2f, 0.5f, 0.7f, 0.5f, 0.7f, 0.5f}).view({3, 2});
  EXPECT_EQ(label_argmax(hand)[0].item<int64_t>(), 1);
  EXPECT_EQ(label_argmax(hand)[1].item<int64_t>(), 0);
}
