// Labels between the frame's pixels and the feature grid (tracking/src/label_grid.h): bilinear
// sampling of each cell's centre against the area average of the whole cell, on hand-made masks.
#include "label_grid.h"

#include <gtest/gtest.h>

using namespace corrtrack;
using corrtrack::detail::LabelGrid;

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
