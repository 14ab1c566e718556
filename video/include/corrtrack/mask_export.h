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

// A video's masks as a COCO data set: an image per frame (id = frame index, file_name =
// name + ".png"), a category per object 1..objects, and an annotation (coco_object plus id,
// image_id, category_id, iscrowd 0) per object present in a frame.
struct CocoFrame {
  int64_t index;
  std::string name;
  const Image* mask;
};
nlohmann::json coco_dataset(const std::vector<CocoFrame>& frames, int objects, const std::string& description);

}  // namespace corrtrack
