// A contiguous range of another frame source, forward or backward, as a source of its own; and
// a source that reads backward in blocks.
#include "corrtrack/read_ahead.h"
#include "corrtrack/video.h"

#include <algorithm>
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

ReadAheadSource::ReadAheadSource(std::unique_ptr<FrameSource> inner, int block, int keep)
    : m_inner(std::move(inner)), m_block(std::max(1, block)), m_keep(std::max(block, keep)) {}

Image ReadAheadSource::inner_frame(int64_t k) {
  if (k != m_last + 1) ++m_seeks;
  m_last = k;
  return m_inner->frame(k);
}

void ReadAheadSource::keep(int64_t k, Image img) {
  m_frames.emplace_front(k, std::move(img));
  while (m_frames.size() > size_t(m_keep)) m_frames.pop_back();
}

Image ReadAheadSource::frame(int64_t k) {
  for (auto it = m_frames.begin(); it != m_frames.end(); ++it) {
    if (it->first == k) {
      m_frames.splice(m_frames.begin(), m_frames, it);
      return m_frames.front().second;
    }
  }
  // Forward: sequential for the inner source (or a seek it does anyway); not kept — the
  // caller keeps what it shows, and a forward pass never asks twice.
  if (k > m_last) return inner_frame(k);
  // Backward: the block ending at k, in order; k itself is read last, so it is kept first.
  const int64_t from = std::max<int64_t>(0, k - m_block + 1);
  for (int64_t j = from; j < k; ++j) {
    bool kept = false;
    for (const auto& [f, img] : m_frames) kept = kept || f == j;
    Image img = inner_frame(j);
    if (!kept) keep(j, std::move(img));
  }
  Image img = inner_frame(k);
  keep(k, img);
  return img;
}

}  // namespace corrtrack
