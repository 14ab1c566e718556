// Entry points of the video module when it is built without FFmpeg/OpenCV/libpng
// (CORRTRACK_WITH_VIDEO=OFF): every file operation reports that it is unavailable.
#include "corrtrack/click_segment.h"
#include "corrtrack/core.h"
#include "corrtrack/drawing.h"
#include "corrtrack/video.h"
#include "jpeg_io.h"
#include "video_internal.h"

namespace corrtrack {

namespace {
[[noreturn]] void unavailable(const std::string& what, const std::string& path) {
  throw Error("cannot " + what + " '" + path + "': this corrtrack was built without video support (CORRTRACK_WITH_VIDEO=OFF)");
}
}  // namespace

bool video_support_available() { return false; }
std::unique_ptr<FrameSource> frame_source_open(const std::string& path, const FrameSourceOptions&) { unavailable("open", path); }
Image mask_read(const std::string& path) { unavailable("read mask", path); }
void mask_write(const std::string& path, const Image&) { unavailable("write mask", path); }
Image image_read(const std::string& path) { unavailable("read image", path); }
void image_write_png(const std::string& path, const Image&) { unavailable("write", path); }
std::string image_encode_png(const Image&) { unavailable("encode", "a PNG"); }
std::unique_ptr<Painter> painter_raster(Image&) { unavailable("draw on", "an image"); }
Image click_segment(const Image&, const std::vector<Click>&, const ClickSegmentParams&) { unavailable("segment", "a frame"); }
std::optional<Click> click_next(const Image&, const Image&) { unavailable("simulate clicks on", "a mask"); }
double mask_iou(const Image&, const Image&) { unavailable("compare", "masks"); }
VideoDecodeIndex video_file_decode_index(const std::string& path, int) { unavailable("index", path); }
FrameSourceOptions frame_source_reopen_options(FrameSource&, FrameSourceOptions base) { return base; }
namespace detail {
Image jpeg_decode_buffer(const uint8_t*, size_t, const std::string& what) { unavailable("decode", what); }
std::vector<uint8_t> jpeg_encode(const Image&, int) { unavailable("encode", "a JPEG cache frame"); }
}  // namespace detail

struct VideoWriter::Impl { std::string codec; };
VideoWriter::VideoWriter(const std::string& path, int, int, double) { unavailable("write video", path); }
VideoWriter::~VideoWriter() = default;
void VideoWriter::write(const Image&) {}
void VideoWriter::close() {}
const std::string& VideoWriter::codec_name() const { return m_impl->codec; }

}  // namespace corrtrack
