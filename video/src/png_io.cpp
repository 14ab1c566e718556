// PNG masks with palette indices kept bit for bit (libpng), and colour image reading (JPEG by
// libjpeg, jpeg_io.cpp; PNG by libpng; any other format by OpenCV where it is compiled in).
// OpenCV's imread expands palettes to colours, so masks go through libpng directly.
#include "corrtrack/core.h"
#include "corrtrack/video.h"

#include "jpeg_io.h"

#include <png.h>
#ifdef CORRTRACK_HAVE_OPENCV
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#endif

#include <csetjmp>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include <sys/stat.h>
#include <map>

namespace corrtrack {

namespace {

// What libpng decoded, before interpretation as a mask. Lives in the caller's frame so that
// libpng's longjmp never skips a destructor.
struct PngRaw {
  bool rgb = false;   // set by the caller: expand palettes and grey to RGB (a colour image)
  int width = 0, height = 0, channels = 0, color_type = 0;
  std::vector<uint8_t> pixels;
  std::vector<png_bytep> rows;
  char error[256] = {0};
};

void png_error_fn(png_structp png, png_const_charp msg) {
  auto* raw = static_cast<PngRaw*>(png_get_error_ptr(png));
  std::snprintf(raw->error, sizeof(raw->error), "%s", msg);
  longjmp(png_jmpbuf(png), 1);
}

void png_warning_fn(png_structp, png_const_charp) {}

constexpr uint64_t kMaxPngPixels = uint64_t(1) << 27;   // 134 megapixels (16384 x 8192)

// 16-bit grey samples (big-endian) -> 8 bits: taken as they are when every value is below 256
// (an index mask saved with 16-bit samples), else scaled by their high byte (a 0/65535 binary or
// anti-aliased mask, as libpng's strip would).
void narrow_grey16(PngRaw* raw) {
  const size_t n = raw->pixels.size() / 2;
  bool small = true;
  for (size_t i = 0; i < n && small; ++i) small = raw->pixels[2 * i] == 0;
  for (size_t i = 0; i < n; ++i) raw->pixels[i] = raw->pixels[2 * i + (small ? 1 : 0)];
  raw->pixels.resize(n);
}

// Reads any PNG into 8-bit samples without expanding palettes. Returns false with raw->error.
bool png_decode(FILE* fp, PngRaw* raw) {
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, raw, png_error_fn, png_warning_fn);
  if (!png) { std::snprintf(raw->error, sizeof(raw->error), "out of memory"); return false; }
  png_infop info = png_create_info_struct(png);
  if (!info || setjmp(png_jmpbuf(png))) {
    png_destroy_read_struct(&png, info ? &info : nullptr, nullptr);
    if (!raw->error[0]) std::snprintf(raw->error, sizeof(raw->error), "invalid PNG data");
    return false;
  }
  png_init_io(png, fp);
  png_read_info(png, info);
  const int bit_depth = png_get_bit_depth(png, info);
  raw->color_type = png_get_color_type(png, info);
  if (bit_depth < 8) png_set_packing(png);                  // 1/2/4-bit indices or gray -> one byte each
  // 16-bit grey is kept whole and narrowed after reading (narrow_grey16): index masks saved with
  // 16-bit samples hold small values that stripping to the high byte would zero.
  const bool grey16 = !raw->rgb && bit_depth == 16 && (raw->color_type & PNG_COLOR_MASK_COLOR) == 0;
  if (bit_depth == 16 && !grey16) png_set_strip_16(png);
  if (raw->color_type & PNG_COLOR_MASK_ALPHA) png_set_strip_alpha(png);
  if (raw->color_type == PNG_COLOR_TYPE_GRAY && bit_depth < 8) png_set_expand_gray_1_2_4_to_8(png);
  if (raw->rgb) {   // transparency is dropped as an alpha channel is (frames have none)
    if (raw->color_type == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if ((raw->color_type & PNG_COLOR_MASK_COLOR) == 0) png_set_gray_to_rgb(png);
    if (png_get_valid(png, info, PNG_INFO_tRNS)) png_set_strip_alpha(png);
  }
  png_read_update_info(png, info);
  raw->width = static_cast<int>(png_get_image_width(png, info));
  raw->height = static_cast<int>(png_get_image_height(png, info));
  raw->channels = static_cast<int>(png_get_channels(png, info));
  const size_t rowbytes = png_get_rowbytes(png, info);
  // The header's size is checked before anything is allocated: a tiny file may declare a huge
  // image (deflate packs at most ~1032 bytes into one, so the file must be big enough).
  struct stat st {};
  const uint64_t file_bytes = ::fstat(fileno(fp), &st) == 0 ? uint64_t(st.st_size) : 0;
  const uint64_t pixels = uint64_t(raw->width) * uint64_t(raw->height);
  if (pixels > kMaxPngPixels || uint64_t(rowbytes) * raw->height > file_bytes * 1100 + (1u << 20)) {
    std::snprintf(raw->error, sizeof(raw->error), "its header declares %dx%d pixels, which %s", raw->width, raw->height,
                  pixels > kMaxPngPixels ? "is more than CorrTrack reads (134 megapixels)" : "a file of this size cannot hold");
    png_destroy_read_struct(&png, &info, nullptr);
    return false;
  }
  if (rowbytes != size_t(raw->width) * raw->channels * (grey16 ? 2 : 1)) {
    std::snprintf(raw->error, sizeof(raw->error), "unsupported PNG layout");
    png_destroy_read_struct(&png, &info, nullptr);
    return false;
  }
  raw->pixels.resize(rowbytes * raw->height);
  raw->rows.resize(raw->height);
  for (int y = 0; y < raw->height; ++y) raw->rows[y] = raw->pixels.data() + rowbytes * y;
  png_read_image(png, raw->rows.data());
  png_read_end(png, nullptr);
  png_destroy_read_struct(&png, &info, nullptr);
  if (grey16) narrow_grey16(raw);
  return true;
}

struct PngOut {
  char error[256] = {0};
};

void png_write_error_fn(png_structp png, png_const_charp msg) {
  auto* out = static_cast<PngOut*>(png_get_error_ptr(png));
  std::snprintf(out->error, sizeof(out->error), "%s", msg);
  longjmp(png_jmpbuf(png), 1);
}

// Encodes 8-bit rows; color_type PNG_COLOR_TYPE_PALETTE uses the DAVIS palette.
bool png_encode(FILE* fp, const Image& img, int color_type, PngOut* out, const png_bytep* rows) {
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, out, png_write_error_fn, png_warning_fn);
  if (!png) return false;
  png_infop info = png_create_info_struct(png);
  if (!info || setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, info ? &info : nullptr);
    return false;
  }
  png_init_io(png, fp);
  png_set_IHDR(png, info, img.width, img.height, 8, color_type, PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
               PNG_FILTER_TYPE_DEFAULT);
  if (color_type == PNG_COLOR_TYPE_PALETTE) {
    png_color pal[256];
    const auto& p = davis_palette();
    for (int i = 0; i < 256; ++i) pal[i] = png_color{p[i * 3], p[i * 3 + 1], p[i * 3 + 2]};
    png_set_PLTE(png, info, pal, 256);
  }
  // Masks are mostly flat: fast compression costs little size and a lot less time.
  png_set_compression_level(png, 3);
  png_write_info(png, info);
  png_write_image(png, const_cast<png_bytepp>(rows));
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  return true;
}

std::vector<png_bytep> png_rows(const Image& img) {
  std::vector<png_bytep> rows(img.height);
  const size_t rowbytes = size_t(img.width) * img.channels;
  for (int y = 0; y < img.height; ++y) rows[y] = const_cast<uint8_t*>(img.data.data()) + rowbytes * y;
  return rows;
}

int png_color_type(const Image& img, const std::string& what) {
  if (img.empty() || (img.channels != 1 && img.channels != 3)) {
    throw Error("cannot write '" + what + "': need a gray or RGB image");
  }
  return img.channels == 3 ? PNG_COLOR_TYPE_RGB : PNG_COLOR_TYPE_GRAY;
}

void png_write_file(const std::string& path, const Image& img, int color_type) {
  const std::string tmp = file_temp_sibling(path);
  FILE* fp = std::fopen(tmp.c_str(), "wb");
  if (!fp) throw Error("cannot write '" + path + "': " + std::strerror(errno));
  const auto rows = png_rows(img);
  PngOut out;
  bool ok = png_encode(fp, img, color_type, &out, rows.data());
  ok = (std::fclose(fp) == 0) && ok;
  if (!ok) {
    std::remove(tmp.c_str());
    throw Error("cannot write PNG '" + path + "': " + (out.error[0] ? out.error : "write failed (disk full?)"));
  }
  file_commit(tmp, path);
}

}  // namespace

Image mask_read(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::exists(path, ec) && !std::filesystem::is_regular_file(path, ec)) {
    throw Error("mask '" + path + "' is not a regular file");  // a pipe would block the reader
  }
  FILE* fp = std::fopen(path.c_str(), "rb");
  if (!fp) throw Error("cannot open mask '" + path + "': " + std::strerror(errno));
  PngRaw raw;
  const bool ok = png_decode(fp, &raw);
  std::fclose(fp);
  if (!ok) throw Error("cannot read mask '" + path + "': " + raw.error);
  Image mask(raw.width, raw.height, 1);
  const size_t n = size_t(raw.width) * raw.height;
  if (raw.color_type == PNG_COLOR_TYPE_PALETTE) {
    std::memcpy(mask.data.data(), raw.pixels.data(), n);
  } else if (raw.channels == 1) {
    // Gray masks: exactly {0,255} is a binary mask (object 1); values all below 255 are
    // indices; anything else is an anti-aliased binary mask, thresholded at 128.
    bool binary = true, has255 = false;
    for (size_t i = 0; i < n; ++i) {
      const uint8_t v = raw.pixels[i];
      if (v == 255) has255 = true;
      else if (v != 0) binary = false;
    }
    for (size_t i = 0; i < n; ++i) {
      const uint8_t v = raw.pixels[i];
      if (binary) mask.data[i] = v ? 1 : 0;
      else if (!has255) mask.data[i] = v;
      else mask.data[i] = v >= 128 ? 1 : 0;
    }
  } else {
    // Colour masks: map DAVIS palette colours back to indices.
    std::map<uint32_t, uint8_t> lut;
    const auto& p = davis_palette();
    for (int i = 255; i >= 0; --i) lut[(uint32_t(p[i * 3]) << 16) | (uint32_t(p[i * 3 + 1]) << 8) | p[i * 3 + 2]] = uint8_t(i);
    for (size_t i = 0; i < n; ++i) {
      const uint8_t* c = &raw.pixels[i * raw.channels];
      const uint32_t key = (uint32_t(c[0]) << 16) | (uint32_t(c[1]) << 8) | c[2];
      auto it = lut.find(key);
      if (it == lut.end()) {
        throw Error("mask '" + path + "' is an RGB image with colour (" + std::to_string(c[0]) + "," + std::to_string(c[1]) +
                    "," + std::to_string(c[2]) + ") that is not in the DAVIS palette; save it as a palette PNG");
      }
      mask.data[i] = it->second;
    }
  }
  return mask;
}

void mask_write(const std::string& path, const Image& mask) {
  if (mask.channels != 1 || mask.empty()) throw Error("cannot write mask '" + path + "': need a 1-channel index image");
  png_write_file(path, mask, PNG_COLOR_TYPE_PALETTE);
}

namespace {
// A colour PNG file as RGB (palettes and grey expanded); false when the file is no PNG.
bool png_read_rgb(const std::string& path, Image* img) {
  FILE* fp = std::fopen(path.c_str(), "rb");
  if (!fp) throw Error("cannot open image '" + path + "': " + std::strerror(errno));
  png_byte signature[8] = {0};
  const bool is_png = std::fread(signature, 1, 8, fp) == 8 && png_sig_cmp(signature, 0, 8) == 0;
  std::rewind(fp);
  PngRaw raw;
  raw.rgb = true;
  const bool ok = is_png && png_decode(fp, &raw);
  std::fclose(fp);
  if (!is_png) return false;
  if (!ok || raw.channels != 3) throw Error("cannot decode image '" + path + "': " + (raw.error[0] ? raw.error : "unsupported PNG layout"));
  img->width = raw.width;
  img->height = raw.height;
  img->channels = 3;
  img->data = std::move(raw.pixels);   // exactly width x height x 3 bytes (png_decode checked the row size)
  return true;
}
}  // namespace

Image image_read(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) throw Error("image '" + path + "' does not exist");
  if (detail::jpeg_file(path)) return detail::jpeg_read(path);
  Image img;
  if (png_read_rgb(path, &img)) return img;
#ifdef CORRTRACK_HAVE_OPENCV
  cv::Mat bgr = cv::imread(path, cv::IMREAD_COLOR);
  if (bgr.empty()) throw Error("cannot decode image '" + path + "' (not a JPEG/PNG, or truncated)");
  img = Image(bgr.cols, bgr.rows, 3);
  cv::Mat rgb(bgr.rows, bgr.cols, CV_8UC3, img.data.data());
  cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
  return img;
#else
  throw Error("cannot decode image '" + path + "': not a JPEG or PNG (this corrtrack reads other formats only with OpenCV, CORRTRACK_WITH_VIDEO=ON)");
#endif
}

void image_write_png(const std::string& path, const Image& img) { png_write_file(path, img, png_color_type(img, path)); }

std::string image_encode_png(const Image& img) {
  const int color_type = png_color_type(img, "an image in memory");
  // A FILE* writing into a growing buffer: the same encoder as the files.
  char* buffer = nullptr;
  size_t size = 0;
  FILE* fp = open_memstream(&buffer, &size);
  if (!fp) throw Error(std::string("cannot encode a PNG in memory: ") + std::strerror(errno));
  const auto rows = png_rows(img);
  PngOut out;
  bool ok = png_encode(fp, img, color_type, &out, rows.data());
  ok = (std::fclose(fp) == 0) && ok;
  std::string bytes = ok ? std::string(buffer, size) : std::string();
  std::free(buffer);
  if (!ok) throw Error(std::string("cannot encode a PNG in memory: ") + (out.error[0] ? out.error : "out of memory"));
  return bytes;
}

}  // namespace corrtrack
