// Labels between the frame's pixels and the feature grid (tracking/src/label_grid.h): bilinear
// sampling of each cell's centre against the area average of the whole cell, on hand-made masks;
// the sharpening of soft feedback against its definition.
#include "label_grid.h"

#include <gtest/gtest.h>

using namespace corrtrack;
using corrtrack::detail::LabelGrid;
using corrtrack::detail::labels_sharpened;

namespace {

// A frame whose internal size is 32x16 (width x height at `scale`), stride 8: a 4x2 feature grid.
LabelGrid grid(bool area, int width = 32, int height = 16, double scale = 1.0) {
  LabelGrid g;
  g.set_frame(width, height, scale);
  g.stride = 8;
  g.h = 2;
  g.w = 4;
  g.area = area;
  return g;
}

}  // namespace

// Property: an object one pixel wide in column 1 of cell (0, 0) - away from the cell's central
// 2x2 pixels (columns 3, 4) - vanishes from the bilinear labels and keeps its share (1/8 of the
// cell) in the area labels; a whole cell of object is 1 in both; each cell's labels sum to 1.
TEST(LabelGrid, AreaKeepsAThinObjectBilinearSamplesCentres) {
  Image mask(32, 16, 1, 0);
  for (int y = 0; y < 8; ++y) mask.px(1, y)[0] = 1;                 // thin line in cell (0, 0)
  for (int y = 8; y < 16; ++y)
    for (int x = 16; x < 24; ++x) mask.px(x, y)[0] = 1;             // cell (1, 2) filled
  const auto bilinear = grid(false).labels_from_mask(mask, 2);
  const auto area = grid(true).labels_from_mask(mask, 2);
  ASSERT_EQ(area.sizes(), (std::vector<int64_t>{2, 2, 4}));
  EXPECT_FLOAT_EQ(bilinear[1][0][0].item<float>(), 0.0f);
  EXPECT_FLOAT_EQ(area[1][0][0].item<float>(), 1.0f / 8);
  EXPECT_FLOAT_EQ(bilinear[1][1][2].item<float>(), 1.0f);
  EXPECT_FLOAT_EQ(area[1][1][2].item<float>(), 1.0f);
  EXPECT_FLOAT_EQ(area[1][0][3].item<float>(), 0.0f);
  EXPECT_TRUE(torch::allclose(area.sum(0), torch::ones({2, 4})));
  EXPECT_TRUE(torch::allclose(bilinear.sum(0), torch::ones({2, 4})));
}

// Property: at half internal resolution (64x32 frame -> 32x16 internal) the area path averages
// whole 2x2 pixel blocks first: a 2-pixel-wide line at frame columns 2-3 is one internal column,
// 1/8 of cell (0, 0).
TEST(LabelGrid, AreaAtHalfScale) {
  const LabelGrid g = grid(true, 64, 32, 0.5);
  Image mask(64, 32, 1, 0);
  for (int y = 0; y < 16; ++y) mask.px(2, y)[0] = mask.px(3, y)[0] = 1;
  const auto labels = g.labels_from_mask(mask, 2);
  EXPECT_FLOAT_EQ(labels[1][0][0].item<float>(), 1.0f / 8);
  EXPECT_FLOAT_EQ(labels[1][1][0].item<float>(), 0.0f);
}

// Property: labels_sharpened is l_i^p / sum_j l_j^p per cell, by hand: (0.6, 0.4) at p = 2 is
// (0.36, 0.16) / 0.52; a tie stays a tie; p = 1/2 softens; a cell of tiny labels (1e-20, 2e-20, 0)
// at p = 16 is (1, 65536, 0) / 65537 (the plain formula would underflow to 0/0); a cell without
// label mass stays zero; p = 1 hands back the labels themselves.
TEST(LabelGrid, SharpenedLabelsByDefinition) {
  // [L = 3, 1, 5]: five cells.
  auto labels = torch::tensor({0.6f, 0.5f, 0.64f, 1e-20f, 0.0f,
                               0.4f, 0.5f, 0.36f, 2e-20f, 0.0f,
                               0.0f, 0.0f, 0.0f, 0.0f, 0.0f}).view({3, 1, 5});
  const auto s2 = labels_sharpened(labels, 2.0);
  EXPECT_NEAR(s2[0][0][0].item<float>(), 0.36f / 0.52f, 1e-6);
  EXPECT_NEAR(s2[1][0][0].item<float>(), 0.16f / 0.52f, 1e-6);
  EXPECT_FLOAT_EQ(s2[0][0][1].item<float>(), 0.5f);
  EXPECT_FLOAT_EQ(s2[1][0][1].item<float>(), 0.5f);
  const auto half = labels_sharpened(labels, 0.5);
  EXPECT_NEAR(half[0][0][2].item<float>(), 0.8f / 1.4f, 1e-6);   // sqrt(0.64), sqrt(0.36)
  EXPECT_NEAR(half[1][0][2].item<float>(), 0.6f / 1.4f, 1e-6);
  const auto s16 = labels_sharpened(labels, 16.0);
  EXPECT_NEAR(s16[0][0][3].item<float>(), 1.0f / 65537.0f, 1e-9);
  EXPECT_NEAR(s16[1][0][3].item<float>(), 65536.0f / 65537.0f, 1e-6);
  EXPECT_EQ(s16[2][0][3].item<float>(), 0.0f);
  for (int l = 0; l < 3; ++l) EXPECT_EQ(s16[l][0][4].item<float>(), 0.0f) << "no mass, no NaN";
  EXPECT_TRUE(torch::allclose(s16.sum(0).narrow(1, 0, 4), torch::ones({1, 4})));
  EXPECT_TRUE(labels_sharpened(labels, 1.0).is_same(labels));
}
