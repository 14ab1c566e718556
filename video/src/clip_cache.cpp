// Clip cache: pre-decoded, resized RGB frames of many videos in one memory-mapped file, so that
// training reads frames at memory speed instead of decoding.
//
// Layout (little-endian): "CTCACHE1" | frames, each H*W*3 bytes RGB, videos one after another |
// JSON index {"format":1,"videos":[{"name","frames","width","height","offset"}]} | uint64 index
// length | "CTCINDEX". Offsets count from byte 8. The writer streams frames to a temporary file
// and renames it after the index is written, so a killed build leaves no cache behind.
#include "corrtrack/core.h"
#include "corrtrack/video.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

namespace fs = std::filesystem;
using nlohmann::json;

namespace corrtrack {

namespace {
constexpr char kHeadMagic[8] = {'C', 'T', 'C', 'A', 'C', 'H', 'E', '1'};
constexpr char kTailMagic[8] = {'C', 'T', 'C', 'I', 'N', 'D', 'E', 'X'};
}  // namespace

// ---------------------------------------------------------------------------------------------
// Writer
// ---------------------------------------------------------------------------------------------

struct ClipCacheWriter::Impl {
  std::string path, tmp;
  FILE* file = nullptr;
  uint64_t offset = 0;
  std::vector<ClipCacheVideo> videos;
  bool open_video = false;
};

ClipCacheWriter::ClipCacheWriter(const std::string& path) : m_impl(std::make_unique<Impl>()) {
  m_impl->path = path;
  m_impl->tmp = file_temp_sibling(path);
  m_impl->file = std::fopen(m_impl->tmp.c_str(), "wb");
  if (!m_impl->file) throw Error("cannot create cache '" + path + "': " + std::strerror(errno));
  if (std::fwrite(kHeadMagic, 1, 8, m_impl->file) != 8) throw Error("cannot write cache '" + path + "'");
}

ClipCacheWriter::~ClipCacheWriter() {
  if (m_impl && m_impl->file) {
    std::fclose(m_impl->file);
    std::remove(m_impl->tmp.c_str());
  }
}

void ClipCacheWriter::begin_video(const std::string& name, int width, int height) {
  if (m_impl->open_video) end_video();
  if (width <= 0 || height <= 0) throw Error("cache video '" + name + "' has an empty frame size");
  m_impl->videos.push_back({name, 0, width, height, m_impl->offset});
  m_impl->open_video = true;
}

void ClipCacheWriter::add_frame(const Image& rgb) {
  if (!m_impl->open_video) throw Error("ClipCacheWriter::add_frame before begin_video");
  auto& v = m_impl->videos.back();
  if (rgb.width != v.width || rgb.height != v.height || rgb.channels != 3) {
    throw Error("frame " + std::to_string(v.frames) + " of '" + v.name + "' is " + std::to_string(rgb.width) + "x" +
                std::to_string(rgb.height) + ", the video's frames are " + std::to_string(v.width) + "x" + std::to_string(v.height));
  }
  if (std::fwrite(rgb.data.data(), 1, rgb.data.size(), m_impl->file) != rgb.data.size()) {
    throw Error("cannot write cache '" + m_impl->path + "' (disk full?)");
  }
  m_impl->offset += rgb.data.size();
  ++v.frames;
}

void ClipCacheWriter::end_video() {
  if (!m_impl->open_video) return;
  m_impl->open_video = false;
  if (m_impl->videos.back().frames == 0) m_impl->videos.pop_back();
}

void ClipCacheWriter::close() {
  end_video();
  json index = {{"format", 1}, {"videos", json::array()}};
  for (const auto& v : m_impl->videos) {
    index["videos"].push_back({{"name", v.name}, {"frames", v.frames}, {"width", v.width}, {"height", v.height}, {"offset", v.offset}});
  }
  const std::string text = index.dump();
  const uint64_t len = text.size();
  bool ok = std::fwrite(text.data(), 1, text.size(), m_impl->file) == text.size() &&
            std::fwrite(&len, sizeof(len), 1, m_impl->file) == 1 && std::fwrite(kTailMagic, 1, 8, m_impl->file) == 8;
  ok = (std::fflush(m_impl->file) == 0) && ok;
  ok = (std::fclose(m_impl->file) == 0) && ok;
  m_impl->file = nullptr;
  if (!ok) {
    std::remove(m_impl->tmp.c_str());
    throw Error("cannot write cache '" + m_impl->path + "' (disk full?)");
  }
  file_commit(m_impl->tmp, m_impl->path);
}

int64_t ClipCacheWriter::frames() const {
  int64_t n = 0;
  for (const auto& v : m_impl->videos) n += v.frames;
  return n;
}

// ---------------------------------------------------------------------------------------------
// Reader
// ---------------------------------------------------------------------------------------------

ClipCache::ClipCache(const std::string& path) : m_path(path) {
  const auto bad = [&](const std::string& why) { return Error("cache '" + path + "' is corrupt or not a CorrTrack cache: " + why); };
  const int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) throw Error("cannot open cache '" + path + "': " + std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    throw Error("cache '" + path + "' is not a regular file");
  }
  m_size = uint64_t(st.st_size);
  if (m_size < 24) {
    ::close(fd);
    throw bad("too short");
  }
  void* p = ::mmap(nullptr, m_size, PROT_READ, MAP_SHARED, fd, 0);
  ::close(fd);
  if (p == MAP_FAILED) throw Error("cannot map cache '" + path + "': " + std::strerror(errno));
  m_map = static_cast<const uint8_t*>(p);
  try {
    if (std::memcmp(m_map, kHeadMagic, 8) != 0) throw bad("wrong header");
    if (std::memcmp(m_map + m_size - 8, kTailMagic, 8) != 0) throw bad("no index at the end (truncated?)");
    uint64_t len = 0;
    std::memcpy(&len, m_map + m_size - 16, 8);
    if (len == 0 || len > m_size - 24) throw bad("index length out of range");
    const uint64_t index_at = m_size - 16 - len;
    json index;
    try {
      index = json::parse(reinterpret_cast<const char*>(m_map + index_at), reinterpret_cast<const char*>(m_map + index_at + len));
      for (const auto& v : index.at("videos")) {
        m_videos.push_back({v.at("name").get<std::string>(), v.at("frames").get<int64_t>(), v.at("width").get<int>(),
                            v.at("height").get<int>(), v.at("offset").get<uint64_t>()});
      }
    } catch (const json::exception& e) {
      throw bad(std::string("unreadable index: ") + e.what());
    }
    const uint64_t data_bytes = index_at - 8;
    for (const auto& v : m_videos) {
      if (v.frames <= 0 || v.width <= 0 || v.height <= 0 || v.width > 65536 || v.height > 65536) {
        throw bad("video '" + v.name + "' has an invalid size");
      }
      // Every field is hostile: compare by division so that no product can wrap around.
      const uint64_t frame_bytes = uint64_t(v.width) * uint64_t(v.height) * 3u;   // <= 3 * 2^32
      if (v.offset > data_bytes || uint64_t(v.frames) > (data_bytes - v.offset) / frame_bytes) {
        throw bad("video '" + v.name + "' lies outside the file");
      }
    }
    if (m_videos.empty()) throw Error("cache '" + path + "' holds no videos");
  } catch (...) {
    ::munmap(const_cast<uint8_t*>(m_map), m_size);
    m_map = nullptr;
    throw;
  }
}

ClipCache::~ClipCache() {
  if (m_map) ::munmap(const_cast<uint8_t*>(m_map), m_size);
}

int64_t ClipCache::total_frames() const {
  int64_t n = 0;
  for (const auto& v : m_videos) n += v.frames;
  return n;
}

const uint8_t* ClipCache::frame_data(size_t video, int64_t frame) const {
  if (video >= m_videos.size()) throw Error("cache '" + m_path + "': no video " + std::to_string(video));
  const auto& v = m_videos[video];
  if (frame < 0 || frame >= v.frames) throw Error("cache '" + m_path + "': video '" + v.name + "' has no frame " + std::to_string(frame));
  return m_map + 8 + v.offset + uint64_t(frame) * uint64_t(v.width) * uint64_t(v.height) * 3u;
}

torch::Tensor ClipCache::frame_tensor(size_t video, int64_t frame) const {
  const auto& v = m_videos.at(video);
  const uint8_t* d = frame_data(video, frame);
  auto hwc = torch::from_blob(const_cast<uint8_t*>(d), {v.height, v.width, 3}, torch::kUInt8);
  return hwc.permute({2, 0, 1}).to(torch::kFloat).div_(255.0);
}

// ---------------------------------------------------------------------------------------------
// Building from videos and frame folders
// ---------------------------------------------------------------------------------------------

namespace {

bool has_ext(const fs::path& p, std::initializer_list<const char*> exts) {
  std::string e = p.extension().string();
  std::transform(e.begin(), e.end(), e.begin(), [](unsigned char c) { return std::tolower(c); });
  for (const char* x : exts) if (e == x) return true;
  return false;
}
bool is_image(const fs::path& p) { return has_ext(p, {".jpg", ".jpeg", ".png"}); }
bool is_video(const fs::path& p) {
  return has_ext(p, {".mp4", ".avi", ".mkv", ".mov", ".webm", ".mpg", ".mpeg", ".m4v", ".ts", ".flv", ".wmv"});
}

std::vector<fs::path> sorted_entries(const fs::path& dir) {
  std::vector<fs::path> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) out.push_back(e.path());
  if (ec) throw Error("cannot list '" + dir.string() + "': " + ec.message());
  std::sort(out.begin(), out.end());
  return out;
}

bool holds_images(const fs::path& dir) {
  for (const auto& e : sorted_entries(dir)) if (fs::is_regular_file(e) && is_image(e)) return true;
  return false;
}

}  // namespace

std::vector<std::string> clip_cache_expand_inputs(const std::vector<std::string>& inputs) {
  std::vector<std::string> out;
  for (const auto& in : inputs) {
    const fs::path p(in);
    std::error_code ec;
    if (!fs::exists(p, ec)) throw Error("input '" + in + "' does not exist");
    if (fs::is_regular_file(p)) {
      out.push_back(in);
      continue;
    }
    if (fs::is_directory(p / "JPEGImages")) {  // DAVIS layout: every sequence folder
      const fs::path jp = fs::is_directory(p / "JPEGImages" / "480p") ? p / "JPEGImages" / "480p" : p / "JPEGImages";
      for (const auto& e : sorted_entries(jp)) if (fs::is_directory(e) && holds_images(e)) out.push_back(e.string());
      continue;
    }
    if (holds_images(p)) {
      out.push_back(in);
      continue;
    }
    for (const auto& e : sorted_entries(p)) {
      if (fs::is_regular_file(e) && is_video(e)) out.push_back(e.string());
      else if (fs::is_directory(e) && holds_images(e)) out.push_back(e.string());
    }
  }
  if (out.empty()) {
    std::string list;
    for (const auto& in : inputs) list += (list.empty() ? "'" : ", '") + in + "'";
    throw Error("no videos or frame folders found in " + list);
  }
  return out;
}

ClipCacheBuildReport clip_cache_build(const std::vector<std::string>& inputs, const std::string& out_path, int short_side,
                                      const ProgressCallback& progress) {
  const double t0 = time_now_s();
  const auto videos = clip_cache_expand_inputs(inputs);
  ClipCacheWriter writer(out_path);
  ClipCacheBuildReport report;
  ProgressMeter meter(int64_t(videos.size()), "videos", progress);
  for (const auto& path : videos) {
    FrameSourceOptions opts;
    auto probe = frame_source_open(path);
    const auto info = probe->info();
    if (short_side > 0) {
      // Keep the aspect ratio; the short side becomes short_side (never upscaled).
      const int s = std::min(info.width, info.height);
      if (s > short_side) {
        if (info.width <= info.height) opts.width = short_side;
        else opts.height = short_side;
      }
    }
    auto src = (opts.width || opts.height) ? frame_source_open(path, opts) : std::move(probe);
    const auto vi = src->info();
    std::string name = fs::path(path).filename().string();
    if (name.empty()) name = fs::path(path).parent_path().filename().string();
    writer.begin_video(name, vi.width, vi.height);
    Image frame;
    while (src->next(frame)) writer.add_frame(frame);
    writer.end_video();
    ++report.videos;
    meter.step();
  }
  report.frames = writer.frames();
  writer.close();
  std::error_code ec;
  report.bytes = fs::file_size(out_path, ec);
  report.seconds = time_now_s() - t0;
  return report;
}

}  // namespace corrtrack
