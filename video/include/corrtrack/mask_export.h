// Masks in the exchange formats other tools read: COCO run-length encoding.
//
// Usage: for each object id of a mask, coco_rle(mask, id) gives {"size": [h, w], "counts": [...]},
// the uncompressed RLE that COCO's tools (pycocotools' frPyObjects / decode) accept.
#pragma once

#include "corrtrack/video.h"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace corrtrack {

// The binary mask (pixel == id) read in column-major order (down each column, columns left to
// right) as alternating run lengths, starting with a run of 0s (of length 0 when the first pixel
// is set). The counts sum to width * height.
std::vector<int64_t> mask_rle_counts(const Image& mask, uint8_t id);

// One object of a mask as a COCO annotation's fields: "segmentation" (RLE with "size" [h, w] and
// "counts"), "area" (pixels) and "bbox" [x, y, width, height] (empty object: area 0, bbox zeros).
nlohmann::json coco_object(const Image& mask, uint8_t id);

// One frame of a COCO data set: its image entry (id = frame index, file_name = name + ".png")
// and an annotation (coco_object plus image_id, category_id, iscrowd 0) per object 1..objects
// present in it. Small (run lengths), so a long video's frames can be kept until the end.
struct CocoFrame {
  nlohmann::json image;
  std::vector<nlohmann::json> annotations;
};
CocoFrame coco_frame(int64_t index, const std::string& name, const Image& mask, int objects);
// The frames (in the order given) as a COCO data set with a category per object 1..objects;
// annotations are numbered from 1.
nlohmann::json coco_dataset(const std::vector<CocoFrame>& frames, int objects, const std::string& description);

}  // namespace corrtrack
