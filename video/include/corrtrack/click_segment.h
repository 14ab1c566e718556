// Click to segment: an object's mask on one frame from positive and negative clicks, and the
// standard click simulator that evaluates it.
//
// Method (OpenCV's GrabCut, seeded from the clicks): the frame is scaled so that its long side is
// at most Params::work_side; every pixel starts as "probably background"; a disc of radius
// Params::prior_radius × diagonal around each positive click is "probably foreground" (the colour
// models start from it), a disc of Params::seed_radius × diagonal around each click is fixed
// foreground (positive) or background (negative). GrabCut then alternates colour Gaussian
// mixtures (5 components each) and a graph cut for Params::iterations rounds. Of its foreground,
// only the 8-connected regions that hold a positive click are kept (the colour model alone
// would also take distant look-alikes), holes not touching the border are filled, and the result
// is brought back to the frame's size with a smooth (bilinear, threshold ½) resize.
//
// Usage:
//   std::vector<Click> clicks{{412, 230, true}};
//   Image obj = click_segment(frame, clicks);          // 0/1, frame size
//   clicks.push_back({500, 260, false});               // a negative click where it spilled
//   obj = click_segment(frame, clicks);
#pragma once

#include "corrtrack/video.h"

#include <optional>
#include <vector>

namespace corrtrack {

struct Click {
  double x = 0, y = 0;   // image pixel coordinates
  bool positive = true;  // part of the object (left click) or not (right click)
};

struct ClickSegmentParams {
  int work_side = 480;          // the long side GrabCut runs at (frames larger are scaled down)
  int iterations = 5;           // GrabCut rounds
  double seed_radius = 0.008;   // fixed label around each click, fraction of the diagonal
  double prior_radius = 0.06;   // probable foreground around positive clicks, fraction of the diagonal
  double colour_weight = 0.5;   // geodesic cost per unit of colour difference (see below)
  bool fill_holes = true;
};

// The object's mask (1 = object, 0 = not) at the frame's size. Without a positive click the mask
// is empty. Clicks outside the frame are ignored. Deterministic: the same clicks give the same
// mask. Throws Error for a frame that is not RGB.
Image click_segment(const Image& frame, const std::vector<Click>& clicks, const ClickSegmentParams& params = {});

// The click a user would make next to correct `predicted` towards `truth` (both 0/1 masks of one
// size), as interactive-segmentation benchmarks simulate it: at the pixel farthest from the
// boundary of the largest error region — positive when it lies in a missed part of the object,
// negative when in a false one. The first click (empty prediction) is the object's innermost
// pixel. std::nullopt when the masks agree.
std::optional<Click> click_next(const Image& truth, const Image& predicted);

// Intersection over union of two masks of one size (nonzero = set); 1 when both are empty.
double mask_iou(const Image& a, const Image& b);

}  // namespace corrtrack
