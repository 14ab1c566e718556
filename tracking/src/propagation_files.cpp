// Propagation into files: staged mask folder, overlay frames and an in-order overlay video.
#include "corrtrack/propagation_files.h"

#include "corrtrack/mask_export.h"

#include <spdlog/spdlog.h>

#include <cmath>
#include <filesystem>
#include <map>

namespace corrtrack {

namespace {

// Writes overlay frames to a video in frame order: forward runs arrive in order, frames before the
// first anchor arrive backward and wait here.
class OrderedOverlayWriter {
 public:
  OrderedOverlayWriter(const std::string& path, FrameSource& source) {
    const VideoInfo vi = source.info();
    m_writer = std::make_unique<VideoWriter>(path, vi.width, vi.height, vi.fps > 0 ? vi.fps : 25.0);
  }
  void add(int64_t k, Image overlay) {
    m_waiting[k] = std::move(overlay);
    while (!m_waiting.empty() && m_waiting.begin()->first == m_next) {
      m_writer->write(m_waiting.begin()->second);
      m_waiting.erase(m_waiting.begin());
      ++m_next;
    }
  }
  void close() { m_writer->close(); }

 private:
  std::unique_ptr<VideoWriter> m_writer;
  std::map<int64_t, Image> m_waiting;
  int64_t m_next = 0;
};

int anchors_objects(const std::vector<Anchor>& anchors) {
  int objects = 0;
  for (const auto& a : anchors) objects = std::max(objects, mask_num_objects(a.mask));
  return objects;
}

// The propagated frames (encoded as they came) as a COCO data set, frames in order.
void coco_write(const std::string& path, const FrameSource& src, const std::vector<Anchor>& anchors, const std::map<int64_t, CocoFrame>& frames) {
  std::vector<CocoFrame> ordered;
  for (const auto& [k, f] : frames) ordered.push_back(f);
  file_write_atomic(path, coco_dataset(ordered, anchors_objects(anchors), "CorrTrack propagation of " + src.path()).dump() + "\n");
}

}  // namespace

PropagationResult propagate_to_files(FrameSource& src, const std::vector<Anchor>& anchors, FeatureExtractor& features,
                                     const PropagationConfig& config, const PropagationOutput& out) {
  LabelPropagator engine(features, config);
  engine.set_pipelined(true);   // decode ahead, write behind: the sinks below run on the writing thread
  StagedFolder staged(out.masks_dir);
  std::unique_ptr<StagedFolder> staged_overlays;
  if (!out.overlay_frames.empty()) staged_overlays = std::make_unique<StagedFolder>(out.overlay_frames);
  std::unique_ptr<OrderedOverlayWriter> writer;
  if (!out.overlay_video.empty()) writer = std::make_unique<OrderedOverlayWriter>(out.overlay_video, src);
  // Encoded as they arrive (run lengths, not whole masks); frames come out of order when anchors run backward.
  std::map<int64_t, CocoFrame> coco_frames;
  const int coco_objects = anchors_objects(anchors);
  auto sink = [&](int64_t k, const Image& mask, const Image& rgb) {
    mask_write(staged.path() + "/" + src.frame_name(k) + ".png", mask);
    if (!out.coco_json.empty()) coco_frames[k] = coco_frame(k, src.frame_name(k), mask, coco_objects);
    if (staged_overlays) image_write_png(staged_overlays->path() + "/" + src.frame_name(k) + ".png", overlay_render(rgb, mask, out.overlay_mode));
    if (writer) writer->add(k, overlay_render(rgb, mask, out.overlay_mode));
  };
  std::unique_ptr<StagedFolder> staged_soft;
  if (!out.soft_dir.empty()) {
    staged_soft = std::make_unique<StagedFolder>(out.soft_dir);
    engine.set_soft_sink([&, dirs = std::vector<std::string>()](int64_t k, const std::vector<Image>& objects) mutable {
      while (dirs.size() < objects.size()) {   // a folder per object, made at the first frame
        dirs.push_back(staged_soft->path() + "/object_" + std::to_string(dirs.size() + 1));
        std::filesystem::create_directories(dirs.back());
      }
      for (size_t i = 0; i < objects.size(); ++i) image_write_png(dirs[i] + "/" + src.frame_name(k) + ".png", objects[i]);
    });
  }
  PropagationResult r = engine.run(src, anchors, sink);
  if (writer) writer->close();
  if (!out.coco_json.empty()) coco_write(out.coco_json, src, anchors, coco_frames);
  staged.commit();
  if (staged_overlays) staged_overlays->commit();
  if (staged_soft) staged_soft->commit();
  return r;
}

Image anchor_mask_read(const std::string& path, FrameSource& source, int64_t frame) {
  const Image f = source.frame(frame);
  Image m = mask_read(path);
  if (m.width != f.width || m.height != f.height) {
    // A mask of the same shape at another size (the video's own size with --size): resized by
    // nearest neighbour. Another shape is refused: it cannot be the same picture.
    const double ratio = double(m.width) * f.height / (double(m.height) * f.width);
    if (std::abs(ratio - 1.0) > 0.01) {
      throw Error("mask '" + path + "' is " + std::to_string(m.width) + "x" + std::to_string(m.height) + " but the frames of '" +
                  source.path() + "' are " + std::to_string(f.width) + "x" + std::to_string(f.height) + " (another aspect ratio)");
    }
    log_get("tracking")->info("mask '{}' is {}x{}: resized (nearest) to the frames' {}x{}", path, m.width, m.height, f.width, f.height);
    m = mask_resize_nearest(m, f.width, f.height);
  }
  if (mask_num_objects(m) == 0) throw Error("mask '" + path + "' has no objects (every pixel is 0 or 255)");
  return m;
}

}  // namespace corrtrack
