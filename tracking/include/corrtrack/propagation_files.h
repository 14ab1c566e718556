// Propagation into files: palette PNG masks named like the frames, optionally an overlay video,
// overlay PNGs and a COCO JSON (images, one category per object, RLE annotations per frame). Folders fill through hidden staging folders and appear only when the job
// finishes, so an interrupted run never leaves a result that looks complete.
#pragma once

#include "corrtrack/propagation.h"
#include "corrtrack/tracking.h"

#include <string>
#include <vector>

namespace corrtrack {

struct PropagationOutput {
  std::string masks_dir;                        // required
  std::string overlay_video;                    // optional: .mp4 / .mkv / .avi
  std::string overlay_frames;                   // optional: folder of overlay PNGs
  OverlayMode overlay_mode = OverlayMode::Blend;
  std::string coco_json;                        // optional: every frame's objects as a COCO data set with RLE masks
  std::string soft_dir;                         // optional: soft masks, DIR/object_<id>/<frame>.png (8-bit probability)
};

// Runs the engine over `source` and writes what `out` asks for; returns the engine's result.
PropagationResult propagate_to_files(FrameSource& source, const std::vector<Anchor>& anchors, FeatureExtractor& features,
                                     const PropagationConfig& config, const PropagationOutput& out);

// A mask PNG for an anchor of `source`, checked: the frames' size (a mask of the same aspect
// ratio at another size, e.g. the video's own with --size, is resized by nearest neighbour;
// another shape is an error) and at least one object (errors name the PNG).
Image anchor_mask_read(const std::string& png, FrameSource& source, int64_t frame);

}  // namespace corrtrack
