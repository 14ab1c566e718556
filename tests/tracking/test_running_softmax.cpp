// MAST's joint softmax, built block by block: the running softmax equals one softmax over every
// block's scores together (whatever the split, with excluded keys), the square windowed affinity
// equals the direct local-window attention, and the running top-k takes gathered keys.
#include "running_softmax.h"
#include "running_topk.h"
#include "windowed_affinity.h"

#include "corrtrack/ops.h"

#include <gtest/gtest.h>

#include <limits>

using namespace corrtrack;
using namespace corrtrack::detail;

namespace {
constexpr float kInf = std::numeric_limits<float>::infinity();
}

TEST(RunningSoftmax, BlocksEqualOneSoftmaxOverAll) {
  torch::manual_seed(5);
  const int64_t Q = 23, L = 3;
  // Three blocks of 40, 7 and 100 keys with large score ranges; some keys excluded (-inf).
  std::vector<torch::Tensor> scores, labels;
  for (int64_t n : {40, 7, 100}) {
    auto s = torch::randn({Q, n}) * 30.0;
    s.masked_fill_(torch::rand({Q, n}) < 0.2, -kInf);
    scores.push_back(s);
    labels.push_back(torch::rand({Q, n, L}));
  }
  // Query 0 sees no key in block 0 at all: its statistics must stay finite.
  scores[0][0].fill_(-kInf);
  auto want = (torch::softmax(torch::cat(scores, 1), 1).unsqueeze(-1) * torch::cat(labels, 1)).sum(1);
  RunningSoftmax acc(Q, L);
  const auto ids = torch::randperm(Q, torch::kLong);   // rows arrive in any order
  for (int b : {2, 0, 1}) {                           // and so do the blocks
    for (auto part : {ids.narrow(0, 0, 10), ids.narrow(0, 10, Q - 10)}) {
      acc.add_rows(scores[b].index_select(0, part), labels[b].index_select(0, part), part);
    }
  }
  EXPECT_LT((acc.result() - want).abs().max().item<double>(), 1e-5);
  // A query offered nothing gets zero labels, not NaN.
  RunningSoftmax empty(2, L);
  empty.add_rows(torch::full({1, 4}, -kInf), torch::ones({1, 4, L}), torch::zeros({1}, torch::kLong));
  EXPECT_TRUE(torch::equal(empty.result(), torch::zeros({2, L})));
}

TEST(RunningSoftmax, SquareWindowEqualsLocalWindowAttention) {
  torch::manual_seed(7);
  const int64_t C = 6, h = 13, w = 17, L = 2;
  auto q = torch::randn({C, h, w}), k = torch::randn({C, h, w}), v = torch::rand({L, h, w});
  for (int tile : {1, 4, 8}) {
    for (int radius : {1, 3}) {
      WindowedAffinity wa(C, h, w, tile, radius, torch::kCPU, WindowShape::Square);
      RunningSoftmax acc(h * w, L);
      wa.accumulate(wa.query_tiles(q * 2.0), wa.key_layout(k), wa.key_layout(v), acc);
      auto got = acc.result().t().reshape({L, h, w});
      auto want = local_window_attention(q.unsqueeze(0), k.unsqueeze(0), v.unsqueeze(0), radius, 2.0).squeeze(0);
      EXPECT_LT((got - want).abs().max().item<double>(), 1e-5) << "tile " << tile << " radius " << radius;
    }
  }
}

TEST(RunningSoftmax, SquareWindowHoldsTheWholeSquare) {
  // Radius 2: 25 keys at the centre, 9 in a corner (where the circle of CRW holds 13 and 6).
  auto f = torch::ones({1, 9, 9});
  WindowedAffinity wa(1, 9, 9, 4, 2.0, torch::kCPU, WindowShape::Square);
  RunningTopK acc(81, 81, 81);
  wa.accumulate(wa.query_tiles(f), wa.key_layout(f), acc, 0);
  EXPECT_EQ(torch::isfinite(acc.values()[4 * 9 + 4]).sum().item<int64_t>(), 25);
  EXPECT_EQ(torch::isfinite(acc.values()[0]).sum().item<int64_t>(), 9);
}

TEST(RunningTopK, IndexedKeysEqualTopkOfTheGather) {
  torch::manual_seed(9);
  const int64_t Q = 19, N = 30, K = 200;
  const int k = 5;
  auto scores = torch::randn({Q, N});
  auto keys = torch::randint(0, K, {Q, N}, torch::kLong);
  scores.masked_fill_(torch::rand({Q, N}) < 0.1, -kInf);
  auto top = scores.topk(k, 1);
  for (bool generic : {false, true}) {
    RunningTopK acc(Q, k, K, torch::kCPU, generic);
    const auto ids = torch::randperm(Q, torch::kLong);
    for (auto part : {ids.narrow(0, 0, 7), ids.narrow(0, 7, Q - 7)}) {
      acc.add_indexed(scores.index_select(0, part), keys.index_select(0, part), part, 2);
    }
    EXPECT_TRUE(torch::allclose(acc.values(), std::get<0>(top))) << "generic " << generic;
    EXPECT_TRUE(torch::equal(acc.codes(), keys.gather(1, std::get<1>(top)) + 2 * K)) << "generic " << generic;
  }
}
