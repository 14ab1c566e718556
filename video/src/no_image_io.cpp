// Entry points that need libpng and libjpeg, when the video module is built with neither
// CORRTRACK_WITH_VIDEO nor CORRTRACK_WITH_IMAGE_IO: every frame, image and mask file operation
// reports that it is unavailable.
#include "corrtrack/core.h"
#include "corrtrack/video.h"
#include "jpeg_io.h"
#include "video_internal.h"

namespace corrtrack {

namespace {
[[noreturn]] void unavailable(const std::string& what, const std::string& path) {
  throw Error("cannot " + what + " '" + path + "': this corrtrack was built without image support (CORRTRACK_WITH_VIDEO=OFF, CORRTRACK_WITH_IMAGE_IO=OFF)");
}
}  // namespace

std::unique_ptr<FrameSource> frame_source_open(const std::string& path, const FrameSourceOptions&) { unavailable("open", path); }
Image mask_read(const std::string& path) { unavailable("read mask", path); }
void mask_write(const std::string& path, const Image&) { unavailable("write mask", path); }
Image image_read(const std::string& path) { unavailable("read image", path); }
void image_write_png(const std::string& path, const Image&) { unavailable("write", path); }
std::string image_encode_png(const Image&) { unavailable("encode", "a PNG"); }
namespace detail {
Image jpeg_decode_buffer(const uint8_t*, size_t, const std::string& what) { unavailable("decode", what); }
std::vector<uint8_t> jpeg_encode(const Image&, int) { unavailable("encode", "a JPEG cache frame"); }
}  // namespace detail

}  // namespace corrtrack
