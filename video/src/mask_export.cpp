// COCO run-length encoding of mask objects (mask_export.h).
#include "corrtrack/mask_export.h"

#include <algorithm>

namespace corrtrack {

std::vector<int64_t> mask_rle_counts(const Image& mask, uint8_t id) {
  if (mask.channels != 1) throw Error("RLE needs a 1-channel mask");
  std::vector<int64_t> counts;
  bool current = false;   // runs start with background
  int64_t run = 0;
  for (int x = 0; x < mask.width; ++x) {
    for (int y = 0; y < mask.height; ++y) {
      const bool on = *mask.px(x, y) == id;
      if (on != current) {
        counts.push_back(run);
        run = 0;
        current = on;
      }
      ++run;
    }
  }
  counts.push_back(run);
  return counts;
}

nlohmann::json coco_object(const Image& mask, uint8_t id) {
  int64_t area = 0;
  int x0 = mask.width, y0 = mask.height, x1 = -1, y1 = -1;
  for (int y = 0; y < mask.height; ++y) {
    for (int x = 0; x < mask.width; ++x) {
      if (*mask.px(x, y) != id) continue;
      ++area;
      x0 = std::min(x0, x);
      y0 = std::min(y0, y);
      x1 = std::max(x1, x);
      y1 = std::max(y1, y);
    }
  }
  const auto bbox = area > 0 ? nlohmann::json::array({x0, y0, x1 - x0 + 1, y1 - y0 + 1}) : nlohmann::json::array({0, 0, 0, 0});
  return {{"segmentation", {{"size", {mask.height, mask.width}}, {"counts", mask_rle_counts(mask, id)}}},
          {"area", area},
          {"bbox", bbox}};
}

CocoFrame coco_frame(int64_t index, const std::string& name, const Image& mask, int objects) {
  CocoFrame f;
  f.image = {{"id", index}, {"file_name", name + ".png"}, {"width", mask.width}, {"height", mask.height}};
  for (int id = 1; id <= objects; ++id) {
    auto a = coco_object(mask, uint8_t(id));
    if (a["area"].get<int64_t>() == 0) continue;
    a["image_id"] = index;
    a["category_id"] = id;
    a["iscrowd"] = 0;
    f.annotations.push_back(std::move(a));
  }
  return f;
}

nlohmann::json coco_dataset(const std::vector<CocoFrame>& frames, int objects, const std::string& description) {
  nlohmann::json images = nlohmann::json::array(), categories = nlohmann::json::array(), annotations = nlohmann::json::array();
  for (int id = 1; id <= objects; ++id) categories.push_back({{"id", id}, {"name", "object " + std::to_string(id)}});
  for (const auto& f : frames) {
    images.push_back(f.image);
    for (auto a : f.annotations) {
      a["id"] = annotations.size() + 1;
      annotations.push_back(std::move(a));
    }
  }
  return {{"info", {{"description", description}}}, {"images", images}, {"categories", categories}, {"annotations", annotations}};
}

}  // namespace corrtrack
