// Helpers shared by the test suites: shared-data lookup, temporary folders, synthetic frames.
#pragma once

#include <gtest/gtest.h>

#include "corrtrack/video.h"
#include "data_dirs.h"

#include <cstdio>
#include <cstdlib>
#include <algorithm>
#include <filesystem>
#include <string>

namespace corrtrack::test {

namespace fs = std::filesystem;

#define CORRTRACK_REQUIRE_DATA(dir)                                                             \
  const std::string dir = ::corrtrack::test::data_dir();                                       \
  if (dir.empty()) GTEST_SKIP() << "shared data not found: set CORRTRACK_DATA_DIR to ../shared/data"

#define CORRTRACK_REQUIRE_FIXTURES(dir)                                                         \
  const std::string dir = ::corrtrack::test::fixtures_dir();                                   \
  if (dir.empty()) GTEST_SKIP() << "fixtures not found: set CORRTRACK_FIXTURES_DIR to ../shared/fixtures"

// A fresh temporary folder removed when the object dies.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "corrtrack-test-XXXXXX").string();
    char* p = mkdtemp(tmpl.data());
    if (!p) throw std::runtime_error("mkdtemp failed");
    m_path = p;
  }
  ~TempDir() { std::error_code ec; fs::remove_all(m_path, ec); }
  std::string operator/(const std::string& name) const { return (fs::path(m_path) / name).string(); }
  const std::string& path() const { return m_path; }
 private:
  std::string m_path;
};

// A frame that differs for every k: gradient background, a square moving right, and the
// frame number written as the gray level of the top-left block.
inline Image synthetic_frame(int k, int w = 96, int h = 64) {
  Image img(w, h, 3);
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) {
      uint8_t* p = img.px(x, y);
      p[0] = static_cast<uint8_t>(x * 255 / w);
      p[1] = static_cast<uint8_t>(y * 255 / h);
      p[2] = 60;
    }
  }
  const int sx = (4 + 3 * k) % std::max(1, w - 20), sy = std::max(0, h / 2 - 8);
  const int side = std::min({16, w, h});
  for (int y = sy; y < sy + side && y < h; ++y)
    for (int x = sx; x < sx + side && x < w; ++x) { uint8_t* p = img.px(x, y); p[0] = 250; p[1] = 250; p[2] = 20; }
  for (int y = 0; y < 8; ++y)
    for (int x = 0; x < 8; ++x) { uint8_t* p = img.px(x, y); p[0] = p[1] = p[2] = static_cast<uint8_t>((k * 37) % 256); }
  return img;
}

// Writes n synthetic frames to a video file with the project's writer.
inline void write_synthetic_video(const std::string& path, int n, int w = 96, int h = 64, double fps = 25.0) {
  VideoWriter writer(path, w, h, fps);
  for (int k = 0; k < n; ++k) writer.write(synthetic_frame(k, w, h));
  writer.close();
}

// FNV-1a of an image's bytes, to compare frames cheaply.
inline uint64_t image_hash(const Image& img) {
  uint64_t h = 1469598103934665603ull;
  for (uint8_t b : img.data) { h ^= b; h *= 1099511628211ull; }
  return h ^ (uint64_t(img.width) << 32) ^ uint64_t(img.height);
}

// True if the ffmpeg command is installed (reference decoding for comparison tests).
inline bool have_ffmpeg() { return std::system("ffmpeg -version >/dev/null 2>&1") == 0; }

// Frame k as `ffmpeg -pix_fmt rgb24` decodes it (with its default autorotation); empty on failure.
inline Image ffmpeg_frame(const std::string& path, int k, int w, int h) {
  const std::string cmd = "ffmpeg -nostdin -v error -i '" + path + "' -vf \"select=eq(n\\," + std::to_string(k) +
                          ")\" -vsync 0 -frames:v 1 -pix_fmt rgb24 -f rawvideo -";
  Image img(w, h, 3);
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return Image();
  const size_t got = std::fread(img.data.data(), 1, img.data.size(), p);
  pclose(p);
  return got == img.data.size() ? img : Image();
}

}  // namespace corrtrack::test
