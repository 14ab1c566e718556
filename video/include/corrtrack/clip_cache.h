// Training frames of many videos, behind one small interface (ClipStore) with three forms:
//   - a raw clip cache: decoded RGB frames in one memory-mapped file (fastest, largest);
//   - a JPEG clip cache: each frame JPEG-compressed, with a per-video frame table (~10x smaller);
//   - streaming from the video files and frame folders themselves (clip_stream.h): nothing built.
//
// Usage:
//   ClipCacheBuildOptions o; o.short_side = 256; o.codec = ClipCodec::Jpeg; o.workers = 2;
//   clip_cache_build({"../shared/data/davis2016-train-240p"}, "train.ctc", o);   // resumable
//   auto store = std::make_shared<ClipCache>("train.ctc");
//   std::vector<Image> crops; store->read(0, {0, 4, 8}, store->full_rect(0), crops);
//
// Cache file layout (little-endian): "CTCACHE1" | data section | JSON index | uint64 index length
// | "CTCINDEX". Raw caches (index "format": 1): each video's frames are H*W*3 bytes RGB, one after
// another from its "offset" in the data section. JPEG caches ("format": 2, "codec": "jpeg"): a
// video's frames are JPEG files one after another; its "table" offset in the data section holds
// frames+1 uint64 data offsets (frame i is bytes [t[i], t[i+1])). Offsets count from byte 8.
#pragma once

#include "corrtrack/video.h"

#include <memory>
#include <string>
#include <vector>

namespace corrtrack {

// One video of a training store: its name and the size frames are delivered at.
struct ClipVideo {
  std::string name;
  int64_t frames = 0;
  int width = 0, height = 0;
};

// A rectangle of pixels inside a frame.
struct PixelRect {
  int x = 0, y = 0, width = 0, height = 0;
};

// Frames of many videos for training. Reads are thread-safe (the clip loader's workers share one).
class ClipStore {
 public:
  virtual ~ClipStore() = default;
  virtual const std::vector<ClipVideo>& videos() const = 0;
  // What is read (a cache file, or the index of a streamed collection), for messages and records.
  virtual const std::string& path() const = 0;
  // "raw cache", "jpeg cache" or "stream".
  virtual std::string kind() const = 0;
  // The pixels inside `rect` of frames `frames` (ascending) of video `video`: out[i] is
  // rect.width x rect.height RGB. Throws Error naming the video when it cannot be read.
  virtual void read(size_t video, const std::vector<int64_t>& frames, const PixelRect& rect, std::vector<Image>& out) const = 0;
  int64_t total_frames() const;
  PixelRect full_rect(size_t video) const;
  // Frame as float [3, H, W] in [0, 1].
  torch::Tensor frame_tensor(size_t video, int64_t frame) const;
};

enum class ClipCodec { Raw, Jpeg };
ClipCodec clip_codec_parse(const std::string& name);   // "raw" | "jpeg"; throws SettingError
std::string clip_codec_name(ClipCodec c);

// Writes a cache video by video; close() writes the tables and index and renames the temporary
// file. Destroyed without close(), it leaves nothing behind.
class ClipCacheWriter {
 public:
  explicit ClipCacheWriter(const std::string& path, ClipCodec codec = ClipCodec::Raw, int quality = 90);
  ~ClipCacheWriter();
  ClipCacheWriter(const ClipCacheWriter&) = delete;
  ClipCacheWriter& operator=(const ClipCacheWriter&) = delete;
  void begin_video(const std::string& name, int width, int height);
  void add_frame(const Image& rgb);     // must have the video's size, 3 channels
  // A frame already in the cache's codec (a JPEG file for JPEG caches, H*W*3 bytes for raw).
  void add_encoded_frame(const uint8_t* data, size_t size);
  void end_video();
  void close();
  int64_t frames() const;
 private:
  struct Impl;
  std::unique_ptr<Impl> m_impl;
};

// Read-only view of a cache (memory-mapped; frames are paged in on use). The constructor checks
// the whole structure (index, every offset and frame table) and throws Error naming the file when
// it is truncated, damaged or not a cache.
class ClipCache : public ClipStore {
 public:
  explicit ClipCache(const std::string& path);
  ~ClipCache() override;
  ClipCache(const ClipCache&) = delete;
  ClipCache& operator=(const ClipCache&) = delete;
  const std::vector<ClipVideo>& videos() const override { return m_videos; }
  const std::string& path() const override { return m_path; }
  std::string kind() const override { return m_codec == ClipCodec::Jpeg ? "jpeg cache" : "raw cache"; }
  void read(size_t video, const std::vector<int64_t>& frames, const PixelRect& rect, std::vector<Image>& out) const override;
  ClipCodec codec() const { return m_codec; }
  // Raw caches: frame pixels, H*W*3 bytes RGB, in the mapping. JPEG caches: throws Error.
  const uint8_t* frame_data(size_t video, int64_t frame) const;
  // The stored bytes of a frame (its JPEG file, or its raw pixels) and their size.
  const uint8_t* frame_bytes(size_t video, int64_t frame, size_t* size) const;
 private:
  std::string m_path;
  const uint8_t* m_map = nullptr;
  uint64_t m_size = 0;
  ClipCodec m_codec = ClipCodec::Raw;
  std::vector<ClipVideo> m_videos;
  std::vector<uint64_t> m_offsets;       // raw: each video's first frame; jpeg: index into m_table
  std::vector<uint64_t> m_table;         // jpeg: every video's frames+1 offsets, one after another
};

// Video files, frame folders and DAVIS-layout roots (every JPEGImages/<seq>) found in `inputs`:
// files, folders of frames, folders of videos, and text lists (*.txt: one path per line, relative
// to the list's folder; blank lines and lines starting with # skipped). Throws Error when nothing
// is found or a listed path does not exist.
std::vector<std::string> clip_cache_expand_inputs(const std::vector<std::string>& inputs);
// True for a text list of inputs (a regular file named *.txt, any case).
bool clip_input_is_list(const std::string& path);
// The size frames of a `width` x `height` video are stored and streamed at: the short side
// becomes `short_side` when it is longer (aspect kept, never upscaled); 0 keeps the size.
void clip_frame_size(int width, int height, int short_side, int* out_w, int* out_h);
// The name a video gets in a cache or stream: the file name, or the folder's name.
std::string clip_video_name(const std::string& path);

struct ClipCacheBuildOptions {
  int short_side = 256;         // see clip_frame_size
  ClipCodec codec = ClipCodec::Raw;
  int quality = 90;             // JPEG quality, 1..100
  int workers = 1;              // videos decoded (and encoded) at once
  ProgressCallback progress;    // per finished video; default: a log line per second with ETA
};
struct ClipCacheBuildReport {
  int64_t videos = 0, frames = 0;
  int64_t resumed = 0;          // videos taken from an interrupted earlier build
  int64_t skipped = 0;          // inputs that could not be decoded (each warned about once)
  uint64_t bytes = 0;
  double seconds = 0.0;
};
// Decodes every input into the cache file `out_path`. Each video is decoded by a worker into a part
// file in OUT.parts/; the cache is assembled from the parts at the end (under a temporary name,
// renamed when complete). An interrupted build continues from its finished parts when run again
// with the same inputs and settings (other settings start over). A video that cannot be decoded
// is skipped with a warning; Error when none can.
ClipCacheBuildReport clip_cache_build(const std::vector<std::string>& inputs, const std::string& out_path,
                                      const ClipCacheBuildOptions& options);

}  // namespace corrtrack
