// Click to segment: the click simulator's answers by construction, GrabCut on drawn objects.
// (Real DAVIS frames: tests/ui/test_studio.cpp clicks in the Studio; `corrtrack bench clicks`.)
#include "corrtrack/click_segment.h"

#include "test_support.h"

#include <algorithm>
#include <cmath>
#include <random>

using namespace corrtrack;

namespace {

// A textured gray-green background with a red ellipse (the object) and a second red ellipse far
// from it (a look-alike that must not be taken).
struct Scene {
  Image frame, object;
};
Scene red_ellipses(int w = 320, int h = 240) {
  Scene s{Image(w, h, 3), Image(w, h, 1, 0)};
  std::mt19937 rng(7);
  std::uniform_int_distribution<int> noise(-12, 12);
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) {
      uint8_t* p = s.frame.px(x, y);
      const double a = (x - 110.0) / 60.0, b = (y - 120.0) / 40.0;   // the object
      const double c = (x - 260.0) / 25.0, d = (y - 60.0) / 20.0;    // the look-alike
      const bool obj = a * a + b * b <= 1.0, other = c * c + d * d <= 1.0;
      const int base[3] = {obj || other ? 200 : 90, obj || other ? 40 : 120, obj || other ? 40 : 90};
      for (int ch = 0; ch < 3; ++ch) p[ch] = uint8_t(std::clamp(base[ch] + noise(rng), 0, 255));
      *s.object.px(x, y) = obj ? 1 : 0;
    }
  }
  return s;
}

}  // namespace

TEST(ClickNext, FirstClickIsTheObjectsInnermostPixel) {
  Image truth(40, 30, 1, 0), empty(40, 30, 1, 0);
  for (int y = 5; y < 25; ++y)
    for (int x = 10; x < 30; ++x) *truth.px(x, y) = 1;   // 20×20 square: centre pixels 19/20, 14/15
  auto c = click_next(truth, empty);
  ASSERT_TRUE(c.has_value());
  EXPECT_TRUE(c->positive);
  EXPECT_NEAR(c->x, 20.0, 1.01);
  EXPECT_NEAR(c->y, 15.0, 1.01);
  EXPECT_FALSE(click_next(truth, truth).has_value());
}

TEST(ClickNext, NegativeWhereThePredictionSpillsMost) {
  Image truth(60, 30, 1, 0), pred(60, 30, 1, 0);
  for (int y = 5; y < 25; ++y)
    for (int x = 5; x < 25; ++x) *truth.px(x, y) = *pred.px(x, y) = 1;
  for (int y = 8; y < 22; ++y)
    for (int x = 36; x < 50; ++x) *pred.px(x, y) = 1;    // a false 14×14 blob: centre (43, 15)
  *pred.px(5, 5) = 0;                                     // one missed pixel: far smaller
  auto c = click_next(truth, pred);
  ASSERT_TRUE(c.has_value());
  EXPECT_FALSE(c->positive);
  EXPECT_NEAR(c->x, 43.0, 1.01);
  EXPECT_NEAR(c->y, 15.0, 1.01);
}

TEST(ClickSegment, OneClickTakesTheObjectButNotTheLookAlike) {
  const Scene s = red_ellipses();
  const Image m = click_segment(s.frame, {{110, 120, true}});
  ASSERT_EQ(m.width, 320);
  EXPECT_GT(mask_iou(m, s.object), 0.95);
  EXPECT_EQ(*m.px(260, 60), 0) << "the look-alike far away is a separate region";
}

TEST(ClickSegment, NoPositiveClickGivesAnEmptyMaskAndBadInputIsRefused) {
  const Scene s = red_ellipses(64, 48);
  const Image none = click_segment(s.frame, {{10, 10, false}, {-5, 3, true}});
  EXPECT_EQ(std::count(none.data.begin(), none.data.end(), 0), 64 * 48);
  EXPECT_THROW(click_segment(Image(8, 8, 1), {{1, 1, true}}), Error);
  EXPECT_THROW(click_next(Image(8, 8, 1), Image(9, 8, 1)), Error);
}

TEST(ClickSegment, ANegativeClickRemovesWhatItTouches) {
  // Without the negative click the object and its touching look-alike merge; the negative click
  // on the look-alike must reduce what is taken there.
  Scene s = red_ellipses();
  for (int y = 110; y < 130; ++y)
    for (int x = 165; x < 245; ++x) {   // a red bridge from the object to the look-alike
      uint8_t* p = s.frame.px(x, y);
      p[0] = 200; p[1] = 40; p[2] = 40;
    }
  const Image first = click_segment(s.frame, {{110, 120, true}});
  const Image second = click_segment(s.frame, {{110, 120, true}, {205, 120, false}});
  auto count = [](const Image& m, int x0, int x1) {
    int n = 0;
    for (int y = 0; y < m.height; ++y)
      for (int x = x0; x < x1; ++x) n += *m.px(x, y);
    return n;
  };
  EXPECT_GT(count(first, 180, 320), 200) << "the bridge leads the first mask out of the object";
  EXPECT_LT(count(second, 180, 320), count(first, 180, 320) / 4);
  EXPECT_GT(mask_iou(second, s.object), 0.85);
}

TEST(MaskIou, ByHand) {
  Image a(30, 10, 1, 0), b(30, 10, 1, 0);
  for (int y = 0; y < 10; ++y)
    for (int x = 0; x < 10; ++x) {
      *a.px(x, y) = 1;
      *b.px(x + 5, y) = 7;   // any nonzero value counts
    }
  EXPECT_DOUBLE_EQ(mask_iou(a, b), 50.0 / 150.0);
  EXPECT_DOUBLE_EQ(mask_iou(Image(4, 4, 1, 0), Image(4, 4, 1, 0)), 1.0);
  EXPECT_THROW(mask_iou(a, Image(4, 4, 1, 0)), Error);
}
