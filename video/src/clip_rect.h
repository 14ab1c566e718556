// The crop step shared by the clip stores (clip_cache.cpp, clip_stream.cpp).
#pragma once

#include "corrtrack/clip_cache.h"
#include "corrtrack/core.h"

#include <cstring>
#include <string>

namespace corrtrack::detail {

// Throws Error naming `what` unless `r` lies inside the frames of `v`.
inline void clip_rect_check(const ClipVideo& v, const PixelRect& r, const std::string& what) {
  if (r.x < 0 || r.y < 0 || r.width <= 0 || r.height <= 0 || r.x + r.width > v.width || r.y + r.height > v.height) {
    throw Error("a crop outside the frames of " + what);
  }
}

// The pixels of `r` in an RGB frame `frame_width` pixels wide.
inline Image clip_rect_copy(const uint8_t* frame, int frame_width, const PixelRect& r) {
  Image out(r.width, r.height, 3);
  for (int y = 0; y < r.height; ++y) {
    std::memcpy(out.data.data() + size_t(y) * r.width * 3, frame + (size_t(r.y + y) * frame_width + r.x) * 3, size_t(r.width) * 3);
  }
  return out;
}

}  // namespace corrtrack::detail
