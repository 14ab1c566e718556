// Row-major run-length masks (see mask_rle.h).
#include "corrtrack/mask_rle.h"

#include "corrtrack/core.h"

#include <algorithm>

namespace corrtrack {

MaskRle::MaskRle(const Image& mask) : m_width(mask.width), m_height(mask.height) {
  if (mask.channels != 1) throw Error("run-length masks need a 1-channel image");
  const uint8_t* p = mask.data.data();
  const size_t n = mask.data.size();
  for (size_t i = 0; i < n;) {
    const uint8_t v = p[i];
    size_t j = i + 1;
    while (j < n && p[j] == v) ++j;
    m_values.push_back(v);
    m_lengths.push_back(uint32_t(j - i));
    i = j;
  }
  m_values.shrink_to_fit();
  m_lengths.shrink_to_fit();
}

Image MaskRle::decode() const {
  Image m(m_width, m_height, 1, 0);
  uint8_t* out = m.data.data();
  for (size_t r = 0; r < m_values.size(); ++r) {
    std::fill_n(out, m_lengths[r], m_values[r]);
    out += m_lengths[r];
  }
  return m;
}

}  // namespace corrtrack
