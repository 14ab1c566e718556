// JPEG frames through libjpeg(-turbo) directly rather than OpenCV: libjpeg's warnings (a truncated
// file, extraneous bytes) become one log warning naming the file, instead of lines on stderr that
// `-q` cannot silence; its fatal errors become an Error naming the file.
#include "jpeg_io.h"

#include "corrtrack/core.h"

#include <algorithm>
#include <csetjmp>
#include <cstdlib>
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

// Decodes a file (fp) or a buffer (mem, mem_size) into `out` (RGB). Returns false with st->error set.
bool jpeg_decode(std::FILE* fp, const uint8_t* mem, size_t mem_size, Image* out, JpegState* st) {
  jpeg_decompress_struct cinfo;
  cinfo.err = jpeg_std_error(&st->pub);
  st->pub.error_exit = jpeg_error_exit;
  st->pub.emit_message = jpeg_emit_message;
  if (setjmp(st->jump)) {
    jpeg_destroy_decompress(&cinfo);
    return false;
  }
  jpeg_create_decompress(&cinfo);
  if (fp) jpeg_stdio_src(&cinfo, fp);
  else jpeg_mem_src(&cinfo, mem, static_cast<unsigned long>(mem_size));
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
  const bool ok = jpeg_decode(fp, nullptr, 0, &img, &st);
  std::fclose(fp);
  if (!ok) throw Error("cannot decode JPEG image '" + path + "': " + st.error);
  if (st.warnings > 0) {
    log_get("video")->warn("image '{}': {}{} (decoded what could be read)", path, st.warning,
                           st.warnings > 1 ? " (and " + std::to_string(st.warnings - 1) + " more)" : "");
  }
  return img;
}

Image jpeg_decode_buffer(const uint8_t* data, size_t size, const std::string& what) {
  Image img;
  JpegState st;
  if (size < 4 || !jpeg_decode(nullptr, data, size, &img, &st)) {
    throw Error("cannot decode the JPEG of " + what + ": " + (size < 4 ? std::string("too short") : std::string(st.error)));
  }
  if (st.warnings > 0) log_get("video")->warn("{}: {} (decoded what could be read)", what, st.warning);
  return img;
}

namespace {

// Compresses `rgb` into *buffer (malloc'd by libjpeg). Returns false with st->error set.
bool jpeg_compress(const Image& rgb, int quality, unsigned char** buffer, unsigned long* size, JpegState* st) {
  jpeg_compress_struct cinfo;
  cinfo.err = jpeg_std_error(&st->pub);
  st->pub.error_exit = jpeg_error_exit;
  st->pub.emit_message = jpeg_emit_message;
  if (setjmp(st->jump)) {
    jpeg_destroy_compress(&cinfo);
    return false;
  }
  jpeg_create_compress(&cinfo);
  jpeg_mem_dest(&cinfo, buffer, size);
  cinfo.image_width = static_cast<JDIMENSION>(rgb.width);
  cinfo.image_height = static_cast<JDIMENSION>(rgb.height);
  cinfo.input_components = 3;
  cinfo.in_color_space = JCS_RGB;
  jpeg_set_defaults(&cinfo);
  jpeg_set_quality(&cinfo, quality, TRUE);
  jpeg_start_compress(&cinfo, TRUE);
  while (cinfo.next_scanline < cinfo.image_height) {
    JSAMPROW row = const_cast<uint8_t*>(rgb.data.data()) + size_t(cinfo.next_scanline) * rgb.width * 3;
    jpeg_write_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_compress(&cinfo);
  jpeg_destroy_compress(&cinfo);
  return true;
}

}  // namespace

std::vector<uint8_t> jpeg_encode(const Image& rgb, int quality) {
  if (rgb.channels != 3 || rgb.width <= 0 || rgb.height <= 0) throw Error("JPEG encoding needs a non-empty RGB image");
  unsigned char* buffer = nullptr;
  unsigned long size = 0;
  JpegState st;
  const bool ok = jpeg_compress(rgb, std::clamp(quality, 1, 100), &buffer, &size, &st);
  std::vector<uint8_t> out;
  if (ok) out.assign(buffer, buffer + size);
  std::free(buffer);
  if (!ok) throw Error(std::string("cannot encode a JPEG frame: ") + st.error);
  return out;
}

}  // namespace corrtrack::detail
