// JPEG frames through libjpeg(-turbo) directly rather than OpenCV: libjpeg's warnings (a truncated
// file, extraneous bytes) become one log warning naming the file, instead of lines on stderr that
// `-q` cannot silence; its fatal errors become an Error naming the file.
#include "jpeg_io.h"

#include "corrtrack/core.h"

#include <csetjmp>
#include <cstdio>
#include <cstring>

#include <jpeglib.h>

namespace corrtrack::detail {

namespace {

constexpr uint64_t kMaxJpegPixels = uint64_t(1) << 27;   // as for PNGs: 134 megapixels

// libjpeg's error manager, extended with where to jump and what it said. Lives in the caller's
// frame: the longjmp target (jpeg_decode) creates no C++ object between setjmp and longjmp.
struct JpegState {
  jpeg_error_mgr pub;
  std::jmp_buf jump;
  char error[JMSG_LENGTH_MAX] = {0};
  char warning[JMSG_LENGTH_MAX] = {0};
  int warnings = 0;
};

void jpeg_error_exit(j_common_ptr cinfo) {
  auto* st = reinterpret_cast<JpegState*>(cinfo->err);
  (*cinfo->err->format_message)(cinfo, st->error);
  std::longjmp(st->jump, 1);
}

// Level -1 is a warning (corrupt data that libjpeg worked around); higher levels are traces.
void jpeg_emit_message(j_common_ptr cinfo, int level) {
  if (level >= 0) return;
  auto* st = reinterpret_cast<JpegState*>(cinfo->err);
  if (st->warnings++ == 0) (*cinfo->err->format_message)(cinfo, st->warning);
}

// Decodes into `out` (RGB). Returns false with st->error set.
bool jpeg_decode(std::FILE* fp, Image* out, JpegState* st) {
  jpeg_decompress_struct cinfo;
  cinfo.err = jpeg_std_error(&st->pub);
  st->pub.error_exit = jpeg_error_exit;
  st->pub.emit_message = jpeg_emit_message;
  if (setjmp(st->jump)) {
    jpeg_destroy_decompress(&cinfo);
    return false;
  }
  jpeg_create_decompress(&cinfo);
  jpeg_stdio_src(&cinfo, fp);
  jpeg_read_header(&cinfo, TRUE);
  cinfo.out_color_space = JCS_RGB;
  if (uint64_t(cinfo.image_width) * cinfo.image_height > kMaxJpegPixels) {
    std::snprintf(st->error, sizeof(st->error), "its header declares %ux%u pixels, more than CorrTrack reads",
                  cinfo.image_width, cinfo.image_height);
    jpeg_destroy_decompress(&cinfo);
    return false;
  }
  jpeg_start_decompress(&cinfo);
  out->width = static_cast<int>(cinfo.output_width);
  out->height = static_cast<int>(cinfo.output_height);
  out->channels = 3;
  out->data.assign(size_t(out->width) * out->height * 3, 0);
  while (cinfo.output_scanline < cinfo.output_height) {
    JSAMPROW row = out->data.data() + size_t(cinfo.output_scanline) * out->width * 3;
    jpeg_read_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_decompress(&cinfo);
  jpeg_destroy_decompress(&cinfo);
  return true;
}

}  // namespace

bool jpeg_file(const std::string& path) {
  std::FILE* fp = std::fopen(path.c_str(), "rb");
  if (!fp) return false;
  unsigned char magic[3] = {0, 0, 0};
  const bool is_jpeg = std::fread(magic, 1, 3, fp) == 3 && magic[0] == 0xFF && magic[1] == 0xD8 && magic[2] == 0xFF;
  std::fclose(fp);
  return is_jpeg;
}

Image jpeg_read(const std::string& path) {
  std::FILE* fp = std::fopen(path.c_str(), "rb");
  if (!fp) throw Error("cannot open image '" + path + "': " + std::strerror(errno));
  Image img;
  JpegState st;
  const bool ok = jpeg_decode(fp, &img, &st);
  std::fclose(fp);
  if (!ok) throw Error("cannot decode JPEG image '" + path + "': " + st.error);
  if (st.warnings > 0) {
    log_get("video")->warn("image '{}': {}{} (decoded what could be read)", path, st.warning,
                           st.warnings > 1 ? " (and " + std::to_string(st.warnings - 1) + " more)" : "");
  }
  return img;
}

}  // namespace corrtrack::detail
