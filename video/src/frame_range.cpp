// A contiguous range of another frame source, forward or backward, as a source of its own.
#include "corrtrack/video.h"

#include <cstdlib>

namespace corrtrack {

FrameRangeSource::FrameRangeSource(std::unique_ptr<FrameSource> inner, int64_t first, int64_t last)
    : m_inner(std::move(inner)), m_first(first), m_dir(last >= first ? 1 : -1), m_n(std::llabs(last - first) + 1) {
  const int64_t n = m_inner->size();
  if (first < 0 || last < 0 || first >= n || last >= n) {
    throw Error("frames " + std::to_string(first) + ".." + std::to_string(last) + " are outside '" + m_inner->path() +
                "' (" + std::to_string(n) + " frames)");
  }
}

Image FrameRangeSource::frame(int64_t k) {
  if (k < 0 || k >= m_n) {
    throw Error("frame " + std::to_string(k) + " is outside the range of " + std::to_string(m_n) + " frames of '" + path() + "'");
  }
  return m_inner->frame(global(k));
}

bool FrameRangeSource::next(Image& out) {
  if (m_pos >= m_n) return false;
  out = frame(m_pos++);
  return true;
}

std::vector<double> FrameRangeSource::timestamps() {
  const auto all = m_inner->timestamps();
  std::vector<double> t;
  for (int64_t k = 0; k < m_n; ++k) t.push_back(all.at(size_t(global(k))));
  return t;
}

VideoInfo FrameRangeSource::info() {
  auto i = m_inner->info();
  i.frame_count = m_n;
  return i;
}

}  // namespace corrtrack
