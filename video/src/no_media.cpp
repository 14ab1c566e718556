// Entry points that need FFmpeg or OpenCV, when the video module is built without them
// (CORRTRACK_WITH_VIDEO=OFF): video files, video writing, raster drawing and click segmentation
// report that they are unavailable. Frame folders and masks come from folder_source.cpp and
// png_io.cpp (CORRTRACK_WITH_IMAGE_IO) or from no_image_io.cpp.
#include "corrtrack/click_segment.h"
#include "corrtrack/core.h"
#include "corrtrack/drawing.h"
#include "corrtrack/video.h"
#include "video_internal.h"

namespace corrtrack {

namespace {
[[noreturn]] void unavailable(const std::string& what, const std::string& path) {
  throw Error("cannot " + what + " '" + path + "': this corrtrack was built without FFmpeg and OpenCV (CORRTRACK_WITH_VIDEO=OFF)");
}
}  // namespace

bool video_support_available() { return false; }
std::unique_ptr<FrameSource> video_file_source_open(const std::string& path, const FrameSourceOptions&) { unavailable("open video file", path); }
VideoDecodeIndex video_file_decode_index(const std::string& path, int) { unavailable("index", path); }
FrameSourceOptions frame_source_reopen_options(FrameSource&, FrameSourceOptions base) { return base; }
std::unique_ptr<Painter> painter_raster(Image&) { unavailable("draw on", "an image"); }
Image click_segment(const Image&, const std::vector<Click>&, const ClickSegmentParams&) { unavailable("segment", "a frame"); }
std::optional<Click> click_next(const Image&, const Image&) { unavailable("simulate clicks on", "a mask"); }
double mask_iou(const Image&, const Image&) { unavailable("compare", "masks"); }

struct VideoWriter::Impl { std::string codec; };
VideoWriter::VideoWriter(const std::string& path, int, int, double) { unavailable("write video", path); }
VideoWriter::~VideoWriter() = default;
void VideoWriter::write(const Image&) {}
void VideoWriter::close() {}
const std::string& VideoWriter::codec_name() const { return m_impl->codec; }

}  // namespace corrtrack
