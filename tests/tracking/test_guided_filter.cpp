// The guided filter that refines frame-size labels (tracking/src/guided_filter.h): the box mean
// against its definition, the filter's properties (constants and the guide's own affine
// functions pass unchanged, a huge eps gives the box mean, labels keep summing to 1) and what it
// is for: a label edge blurred over a cell comes back sharp on the guide's edge.
#include "guided_filter.h"

#include <gtest/gtest.h>

using corrtrack::detail::box_mean;
using corrtrack::detail::guided_filter;
using corrtrack::detail::GuidedFilterParams;

namespace {

// The mean over the clipped (2r+1)^2 window, by loops.
torch::Tensor box_mean_by_definition(const torch::Tensor& x, int64_t r) {
  const int64_t h = x.size(0), w = x.size(1);
  auto out = torch::zeros_like(x);
  auto a = x.accessor<double, 2>();
  auto o = out.accessor<double, 2>();
  for (int64_t i = 0; i < h; ++i)
    for (int64_t j = 0; j < w; ++j) {
      double sum = 0;
      int n = 0;
      for (int64_t y = std::max<int64_t>(0, i - r); y <= std::min(h - 1, i + r); ++y)
        for (int64_t x2 = std::max<int64_t>(0, j - r); x2 <= std::min(w - 1, j + r); ++x2, ++n) sum += a[y][x2];
      o[i][j] = sum / n;
    }
  return out;
}

double max_diff(const torch::Tensor& a, const torch::Tensor& b) { return (a - b).abs().max().item<double>(); }

}  // namespace

TEST(GuidedFilter, BoxMeanIsTheClippedWindowMean) {
  torch::manual_seed(3);
  const auto x = torch::rand({6, 9}, torch::kDouble);
  for (int64_t r : {0, 1, 2, 4, 12}) {
    EXPECT_LT(max_diff(box_mean(x, r), box_mean_by_definition(x, r)), 1e-12) << "r " << r;
  }
  // Leading dimensions are independent planes.
  const auto stack = torch::stack({x, 2 * x});
  EXPECT_LT(max_diff(box_mean(stack, 2)[1], 2 * box_mean_by_definition(x, 2)), 1e-12);
}

TEST(GuidedFilter, ConstantLabelsStayAndLabelsStillSumToOne) {
  torch::manual_seed(5);
  const auto guide = torch::rand({3, 40, 56});
  auto fg = torch::rand({1, 40, 56});
  const auto p = torch::cat({1 - fg, fg});
  for (int s : {1, 4}) {
    const GuidedFilterParams gp{8, 1e-3, s};
    EXPECT_LT(max_diff(guided_filter(guide, torch::full({1, 40, 56}, 0.3), gp), torch::full({1, 40, 56}, 0.3)), 1e-5);
    EXPECT_LT(max_diff(guided_filter(guide, p, gp).sum(0), torch::ones({40, 56})), 1e-5) << "subsample " << s;
  }
}

// A label that is an affine function of the guide's colour is what the local model fits
// exactly: it comes back unchanged (up to eps).
TEST(GuidedFilter, TheGuidesAffineFunctionsPassUnchanged) {
  torch::manual_seed(7);
  const auto guide = torch::rand({3, 32, 48});
  const auto p = (0.2 + 0.5 * guide[0] - 0.3 * guide[2] + 0.1 * guide[1]).unsqueeze(0);
  EXPECT_LT(max_diff(guided_filter(guide, p, GuidedFilterParams{3, 1e-9, 1}), p), 1e-4);
}

// With eps far above the colours' variance a = 0, b = mean(p): the result is the box mean of the
// box mean (the windows' means averaged again over the windows holding each pixel).
TEST(GuidedFilter, HugeEpsGivesTheBoxMean) {
  torch::manual_seed(9);
  const auto guide = torch::rand({3, 20, 30});
  const auto p = torch::rand({2, 20, 30});
  const auto expected = box_mean(box_mean(p.to(torch::kDouble), 2), 2).to(torch::kFloat);
  EXPECT_LT(max_diff(guided_filter(guide, p, GuidedFilterParams{2, 1e6, 1}), expected), 1e-5);
}

// The use: a grey frame, black left of column 30 and white from it on; the object's label
// ramps from 0 at column 22 to 1 at column 38 (an edge blurred over two 8-pixel cells, 1/16 per
// column). After the filter the label jumps by more than 0.45 from column 29 to column 30 (the
// guide's edge; the ramp rises 1/16 there) and the 0.5 boundary stays between the two.
TEST(GuidedFilter, ABlurredLabelEdgeSnapsToTheGuidesEdge) {
  const int64_t H = 24, W = 64, edge = 30;
  auto guide = torch::zeros({3, H, W});
  guide.narrow(2, edge, W - edge).fill_(1.0);
  auto ramp = ((torch::arange(W, torch::kFloat) - 22) / 16).clamp(0, 1);
  const auto fg = ramp.view({1, 1, W}).expand({1, H, W});
  const auto p = torch::cat({1 - fg, fg});
  for (int s : {1, 4}) {
    const auto q = guided_filter(guide, p, GuidedFilterParams{8, 1e-4, s})[1][12];
    const float left = q[edge - 1].item<float>(), right = q[edge].item<float>();
    EXPECT_GT(right - left, 0.45f) << "subsample " << s;
    EXPECT_LT(left, 0.5f) << "subsample " << s;
    EXPECT_GT(right, 0.5f) << "subsample " << s;
    // Away from the edge the guide is flat and the label only smoothed: no new edges there.
    EXPECT_LT((q.slice(0, 1, edge) - q.slice(0, 0, edge - 1)).abs().max().item<float>(), 0.1f) << "subsample " << s;
  }
}
