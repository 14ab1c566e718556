// An index mask kept as row-major runs — how the Studio holds every frame's mask in memory.
// A 1920×1080 mask of a few objects is a few kilobytes instead of 2 MB, so a 9000-frame video's
// masks fit in tens of megabytes. Encoding and decoding are one pass each (about 1–2 ms at 1080p).
//
// Usage:
//   MaskRle packed(mask);          // Image, 1 channel
//   Image again = packed.decode(); // identical to mask
#pragma once

#include "corrtrack/video.h"

#include <cstdint>
#include <vector>

namespace corrtrack {

class MaskRle {
 public:
  MaskRle() = default;
  // Throws Error for an image that is not 1-channel.
  explicit MaskRle(const Image& mask);
  Image decode() const;
  int width() const { return m_width; }
  int height() const { return m_height; }
  // Memory held by the runs (what the encoding saves is measured with this).
  size_t bytes() const { return m_values.capacity() + m_lengths.capacity() * sizeof(uint32_t); }
  size_t runs() const { return m_values.size(); }
  bool operator==(const MaskRle& o) const {
    return m_width == o.m_width && m_height == o.m_height && m_values == o.m_values && m_lengths == o.m_lengths;
  }

 private:
  int m_width = 0, m_height = 0;
  std::vector<uint8_t> m_values;     // the value of each run
  std::vector<uint32_t> m_lengths;   // its length; runs continue across rows
};

}  // namespace corrtrack
