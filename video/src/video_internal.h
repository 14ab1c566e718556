// Shared helpers of the video module's implementation files (not part of the public API).
#pragma once

#include "corrtrack/video.h"

#include <string>

namespace corrtrack {

// Output size for a frame of native size w x h under the resize options (aspect kept when
// only one of width/height is given).
inline void output_size(int w, int h, const FrameSourceOptions& o, int& out_w, int& out_h) {
  if (o.width > 0 && o.height > 0) { out_w = o.width; out_h = o.height; }
  else if (o.width > 0) { out_w = o.width; out_h = std::max(1, static_cast<int>(static_cast<int64_t>(h) * o.width / w)); }
  else if (o.height > 0) { out_h = o.height; out_w = std::max(1, static_cast<int>(static_cast<int64_t>(w) * o.height / h)); }
  else { out_w = w; out_h = h; }
}

std::string av_error_string(int err);
std::unique_ptr<FrameSource> video_file_source_open(const std::string& path, const FrameSourceOptions& opts);
// One decoding pass over a video file: every frame's timestamp (FrameSourceOptions::pts), the
// indices of its keyframes, and the file's VideoInfo at native size. Throws Error naming the file.
struct VideoDecodeIndex {
  std::vector<int64_t> pts;
  std::vector<int64_t> keyframes;
  VideoInfo info;
};
VideoDecodeIndex video_file_decode_index(const std::string& path, int threads);
std::unique_ptr<FrameSource> image_folder_source_open(const std::string& path, const FrameSourceOptions& opts);

}  // namespace corrtrack

namespace corrtrack {
// Routes FFmpeg's own logging by our verbosity: silent normally (our errors say what failed),
// warnings with --verbose.
void ffmpeg_log_init();
}  // namespace corrtrack
