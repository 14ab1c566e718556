// Clip caches: the writer (raw or JPEG frames), the memory-mapped reader that validates every
// offset on open, and the ClipStore helpers. The file layout is described in clip_cache.h; the
// parallel, resumable build is in clip_cache_build.cpp.
#include "corrtrack/clip_cache.h"

#include "corrtrack/core.h"
#include "clip_rect.h"
#include "jpeg_io.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <cstring>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

using nlohmann::json;

namespace corrtrack {

namespace {
constexpr char kHeadMagic[8] = {'C', 'T', 'C', 'A', 'C', 'H', 'E', '1'};
constexpr char kTailMagic[8] = {'C', 'T', 'C', 'I', 'N', 'D', 'E', 'X'};
constexpr uint64_t kMaxJpegFrameBytes = uint64_t(256) << 20;
}  // namespace

// ---------------------------------------------------------------------------------------------
// ClipStore helpers
// ---------------------------------------------------------------------------------------------

int64_t ClipStore::total_frames() const {
  int64_t n = 0;
  for (const auto& v : videos()) n += v.frames;
  return n;
}

PixelRect ClipStore::full_rect(size_t video) const {
  const auto& v = videos().at(video);
  return {0, 0, v.width, v.height};
}

torch::Tensor ClipStore::frame_tensor(size_t video, int64_t frame) const {
  std::vector<Image> out;
  read(video, {frame}, full_rect(video), out);
  return image_to_tensor(out[0]);
}

ClipCodec clip_codec_parse(const std::string& name) {
  if (name == "raw") return ClipCodec::Raw;
  if (name == "jpeg") return ClipCodec::Jpeg;
  throw SettingError("codec", "must be raw or jpeg, not '" + name + "'");
}

std::string clip_codec_name(ClipCodec c) { return c == ClipCodec::Jpeg ? "jpeg" : "raw"; }

// ---------------------------------------------------------------------------------------------
// Writer
// ---------------------------------------------------------------------------------------------

struct ClipCacheWriter::Impl {
  std::string path, tmp;
  ClipCodec codec = ClipCodec::Raw;
  int quality = 90;
  FILE* file = nullptr;
  uint64_t offset = 0;                 // bytes written to the data section
  std::vector<ClipVideo> videos;
  std::vector<uint64_t> starts;        // raw: first frame's offset; jpeg: first table entry
  std::vector<uint64_t> table;         // jpeg: frame offsets, frames+1 per video
  bool open_video = false;

  void write(const void* data, size_t size) {
    if (std::fwrite(data, 1, size, file) != size) throw Error("cannot write cache '" + path + "' (disk full?)");
    offset += size;
  }
};

ClipCacheWriter::ClipCacheWriter(const std::string& path, ClipCodec codec, int quality) : m_impl(std::make_unique<Impl>()) {
  if (quality < 1 || quality > 100) throw SettingError("quality", "must be in [1, 100]");
  m_impl->path = path;
  m_impl->codec = codec;
  m_impl->quality = quality;
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
  m_impl->videos.push_back({name, 0, width, height});
  m_impl->starts.push_back(m_impl->codec == ClipCodec::Jpeg ? m_impl->table.size() : m_impl->offset);
  if (m_impl->codec == ClipCodec::Jpeg) m_impl->table.push_back(m_impl->offset);
  m_impl->open_video = true;
}

void ClipCacheWriter::add_frame(const Image& rgb) {
  if (!m_impl->open_video) throw Error("ClipCacheWriter::add_frame before begin_video");
  const auto& v = m_impl->videos.back();
  if (rgb.width != v.width || rgb.height != v.height || rgb.channels != 3) {
    throw Error("frame " + std::to_string(v.frames) + " of '" + v.name + "' is " + std::to_string(rgb.width) + "x" +
                std::to_string(rgb.height) + ", the video's frames are " + std::to_string(v.width) + "x" + std::to_string(v.height));
  }
  if (m_impl->codec == ClipCodec::Raw) {
    add_encoded_frame(rgb.data.data(), rgb.data.size());
  } else {
    const auto bytes = detail::jpeg_encode(rgb, m_impl->quality);
    add_encoded_frame(bytes.data(), bytes.size());
  }
}

void ClipCacheWriter::add_encoded_frame(const uint8_t* data, size_t size) {
  if (!m_impl->open_video) throw Error("ClipCacheWriter::add_encoded_frame before begin_video");
  auto& v = m_impl->videos.back();
  if (m_impl->codec == ClipCodec::Raw && size != size_t(v.width) * size_t(v.height) * 3u) {
    throw Error("frame " + std::to_string(v.frames) + " of '" + v.name + "' has " + std::to_string(size) + " bytes, not " +
                std::to_string(size_t(v.width) * v.height * 3));
  }
  if (m_impl->codec == ClipCodec::Jpeg && (size == 0 || size > kMaxJpegFrameBytes)) {
    throw Error("frame " + std::to_string(v.frames) + " of '" + v.name + "' has no JPEG data");
  }
  m_impl->write(data, size);
  if (m_impl->codec == ClipCodec::Jpeg) m_impl->table.push_back(m_impl->offset);
  ++v.frames;
}

void ClipCacheWriter::end_video() {
  if (!m_impl->open_video) return;
  m_impl->open_video = false;
  if (m_impl->videos.back().frames > 0) return;
  m_impl->videos.pop_back();
  m_impl->starts.pop_back();
  if (m_impl->codec == ClipCodec::Jpeg) m_impl->table.pop_back();
}

void ClipCacheWriter::close() {
  end_video();
  auto& m = *m_impl;
  json index = {{"format", m.codec == ClipCodec::Jpeg ? 2 : 1}, {"videos", json::array()}};
  try {
    uint64_t table_at = 0;
    if (m.codec == ClipCodec::Jpeg) {
      index["codec"] = "jpeg";
      index["quality"] = m.quality;
      table_at = m.offset;
      m.write(m.table.data(), m.table.size() * sizeof(uint64_t));
    }
    for (size_t i = 0; i < m.videos.size(); ++i) {
      const auto& v = m.videos[i];
      json e = {{"name", v.name}, {"frames", v.frames}, {"width", v.width}, {"height", v.height}};
      if (m.codec == ClipCodec::Jpeg) e["table"] = table_at + m.starts[i] * sizeof(uint64_t);
      else e["offset"] = m.starts[i];
      index["videos"].push_back(e);
    }
    const std::string text = index.dump();
    const uint64_t len = text.size();
    if (std::fwrite(text.data(), 1, text.size(), m.file) != text.size() || std::fwrite(&len, sizeof(len), 1, m.file) != 1 ||
        std::fwrite(kTailMagic, 1, 8, m.file) != 8 || std::fflush(m.file) != 0 || ::fsync(::fileno(m.file)) != 0) {
      throw Error("cannot write cache '" + m.path + "' (disk full?)");
    }
  } catch (...) {
    std::fclose(m.file);
    m.file = nullptr;
    std::remove(m.tmp.c_str());
    throw;
  }
  const bool ok = std::fclose(m.file) == 0;
  m.file = nullptr;
  if (!ok) {
    std::remove(m.tmp.c_str());
    throw Error("cannot write cache '" + m.path + "' (disk full?)");
  }
  file_commit(m.tmp, m.path);
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
    const uint64_t data_bytes = index_at - 8;
    std::vector<uint64_t> where;   // raw: offset; jpeg: table offset (bytes in the data section)
    try {
      const json index = json::parse(reinterpret_cast<const char*>(m_map + index_at), reinterpret_cast<const char*>(m_map + index_at + len));
      const int format = index.at("format").get<int>();
      if (format == 2 && index.value("codec", std::string()) == "jpeg") m_codec = ClipCodec::Jpeg;
      else if (format != 1) throw bad("unknown format " + std::to_string(format) + " (made by a newer CorrTrack?)");
      for (const auto& v : index.at("videos")) {
        m_videos.push_back({v.at("name").get<std::string>(), v.at("frames").get<int64_t>(), v.at("width").get<int>(), v.at("height").get<int>()});
        where.push_back(v.at(m_codec == ClipCodec::Jpeg ? "table" : "offset").get<uint64_t>());
      }
    } catch (const json::exception& e) {
      throw bad(std::string("unreadable index: ") + e.what());
    }
    for (size_t i = 0; i < m_videos.size(); ++i) {
      const auto& v = m_videos[i];
      if (v.frames <= 0 || v.width <= 0 || v.height <= 0 || v.width > 65536 || v.height > 65536) {
        throw bad("video '" + v.name + "' has an invalid size");
      }
      // Every field is hostile: compare by division so that no product can wrap around.
      const uint64_t unit = m_codec == ClipCodec::Jpeg ? sizeof(uint64_t) : uint64_t(v.width) * uint64_t(v.height) * 3u;
      const uint64_t count = m_codec == ClipCodec::Jpeg ? uint64_t(v.frames) + 1 : uint64_t(v.frames);
      if (where[i] > data_bytes || count > (data_bytes - where[i]) / unit) throw bad("video '" + v.name + "' lies outside the file");
      if (m_codec == ClipCodec::Raw) {
        m_offsets.push_back(where[i]);
        continue;
      }
      m_offsets.push_back(m_table.size());
      const size_t first = m_table.size();
      m_table.resize(first + count);
      std::memcpy(m_table.data() + first, m_map + 8 + where[i], count * sizeof(uint64_t));
      for (size_t k = first; k + 1 < m_table.size(); ++k) {
        if (m_table[k + 1] <= m_table[k] || m_table[k + 1] > data_bytes || m_table[k + 1] - m_table[k] > kMaxJpegFrameBytes) {
          throw bad("frame " + std::to_string(k - first) + " of video '" + v.name + "' lies outside the file");
        }
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

const uint8_t* ClipCache::frame_bytes(size_t video, int64_t frame, size_t* size) const {
  if (video >= m_videos.size()) throw Error("cache '" + m_path + "': no video " + std::to_string(video));
  const auto& v = m_videos[video];
  if (frame < 0 || frame >= v.frames) throw Error("cache '" + m_path + "': video '" + v.name + "' has no frame " + std::to_string(frame));
  if (m_codec == ClipCodec::Raw) {
    const uint64_t frame_bytes = uint64_t(v.width) * uint64_t(v.height) * 3u;
    *size = size_t(frame_bytes);
    return m_map + 8 + m_offsets[video] + uint64_t(frame) * frame_bytes;
  }
  const uint64_t* t = m_table.data() + m_offsets[video] + frame;
  *size = size_t(t[1] - t[0]);
  return m_map + 8 + t[0];
}

const uint8_t* ClipCache::frame_data(size_t video, int64_t frame) const {
  if (m_codec != ClipCodec::Raw) throw Error("cache '" + m_path + "' stores JPEG frames (no raw pixels to map)");
  size_t size = 0;
  return frame_bytes(video, frame, &size);
}

void ClipCache::read(size_t video, const std::vector<int64_t>& frames, const PixelRect& rect, std::vector<Image>& out) const {
  if (video >= m_videos.size()) throw Error("cache '" + m_path + "': no video " + std::to_string(video));
  const auto& v = m_videos[video];
  detail::clip_rect_check(v, rect, "video '" + v.name + "' in cache '" + m_path + "'");
  out.resize(frames.size());
  for (size_t i = 0; i < frames.size(); ++i) {
    size_t size = 0;
    const uint8_t* bytes = frame_bytes(video, frames[i], &size);
    Image decoded;
    const uint8_t* pixels = bytes;
    if (m_codec == ClipCodec::Jpeg) {
      decoded = detail::jpeg_decode_buffer(bytes, size, "frame " + std::to_string(frames[i]) + " of '" + v.name + "' in cache '" + m_path + "'");
      if (decoded.width != v.width || decoded.height != v.height) {
        throw Error("cache '" + m_path + "': frame " + std::to_string(frames[i]) + " of '" + v.name + "' has the wrong size");
      }
      pixels = decoded.data.data();
    }
    out[i] = detail::clip_rect_copy(pixels, v.width, rect);
  }
}

}  // namespace corrtrack
