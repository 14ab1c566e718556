// Training clips streamed straight from video files and frame folders: nothing is built first.
// The first pass over a collection decodes each video once for its honest frame count, timestamps
// and keyframes (in parallel) and keeps that index beside the data, so the next run starts at once;
// a clip is then read by decoding forward from an open decoder already before its first frame when
// no keyframe lies between (videos with one keyframe are common), else by seeking to the keyframe
// before it; frames are resized on decode by FFmpeg's scaler to the size a cache would store
// (clip_frame_size).
//
// Usage:
//   ClipStreamOptions o; o.short_side = 256; o.workers = 4; o.fallback_dir = "runs/a";
//   ClipStreamReport r;
//   auto store = clip_stream_open({"videos/"}, o, &r);   // index: videos/.corrtrack-index.json
//   std::vector<Image> crops; store->read(0, {10, 14, 18}, {0, 0, 224, 224}, crops);
//
// Videos that cannot be opened or decoded are skipped with one warning each and counted (in the
// index pass, and later if a read fails); it is an Error only when none is readable.
#pragma once

#include "corrtrack/clip_cache.h"

#include <memory>
#include <string>
#include <vector>

namespace corrtrack {

// One video of a collection's index.
struct VideoIndexEntry {
  std::string path;            // absolute
  bool folder = false;         // a frame folder (no timestamps)
  uint64_t bytes = 0;          // file size (0 for folders); with mtime_ns, says the entry is current
  int64_t mtime_ns = 0;
  int64_t frames = 0;
  double fps = 0.0;
  int width = 0, height = 0;   // native, after rotation
  std::vector<int64_t> keyframes;   // indices of the keyframes (every frame of a folder: empty)
  std::vector<int64_t> pts;    // video files: every frame's timestamp (FrameSourceOptions::pts)
  std::string error;           // not empty: the video could not be decoded and is skipped
};

struct ClipStreamOptions {
  int short_side = 256;        // frames are delivered at clip_frame_size(width, height, short_side)
  int workers = 1;             // videos indexed at once on the first pass
  std::string index_path;      // where the index is kept; empty: video_index_location(...)
  std::string fallback_dir;    // where it goes when the data's folder is not writable (a run folder)
  int open_decoders = 8;       // decoders kept open between reads (a clip often follows its video)
};

struct ClipStreamReport {
  int64_t videos = 0;          // readable videos
  int64_t indexed = 0;         // decoded by this pass
  int64_t reused = 0;          // taken from the stored index
  int64_t failed = 0;          // skipped
  std::string index_path;      // where the index was stored ("" when nowhere writable)
  double seconds = 0.0;
};

// Where the index of `inputs` is kept: inside a single input folder (.corrtrack-index.json),
// beside a single list file (LIST.corrtrack-index.json), otherwise in `fallback_dir`
// (videos-index.json); "" when that is empty too.
std::string video_index_location(const std::vector<std::string>& inputs, const std::string& fallback_dir);

// Reads (or builds and stores) the index of every video in `sources` (clip_cache_expand_inputs's
// output). Entries whose file changed since are indexed again.
std::vector<VideoIndexEntry> video_index_update(const std::vector<std::string>& sources, const std::string& index_path,
                                                int workers, ClipStreamReport* report = nullptr);

// A ClipStore over the readable videos of `inputs`, decoding on demand. Its path() is the index.
std::shared_ptr<const ClipStore> clip_stream_open(const std::vector<std::string>& inputs, const ClipStreamOptions& options,
                                                  ClipStreamReport* report = nullptr);

}  // namespace corrtrack
