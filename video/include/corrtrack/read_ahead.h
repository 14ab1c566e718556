// A frame source that reads backward in blocks (for the Studio: stepping back through a video
// and propagating backward without a seek per frame).
#pragma once

#include "corrtrack/video.h"

#include <list>
#include <memory>
#include <utility>

namespace corrtrack {

// `inner` with a memory of recent frames that reads backward in blocks: a frame that is neither
// kept nor the inner source's next one makes it decode the `block` frames ending at that frame in
// order (one seek, then sequential decoding) and keep them, so stepping or propagating backward
// costs one seek per block instead of one per frame. Forward requests go straight through (a
// video decodes them sequentially) and are not kept. At most `keep` frames are kept (least
// recently used go first).
// `seeks()` counts the inner requests that were not the frame after the previous one.
class ReadAheadSource : public FrameSource {
 public:
  explicit ReadAheadSource(std::unique_ptr<FrameSource> inner, int block = 16, int keep = 48);
  int64_t size() override { return m_inner->size(); }
  Image frame(int64_t k) override;
  bool next(Image& out) override { return m_inner->next(out); }
  std::vector<double> timestamps() override { return m_inner->timestamps(); }
  std::string frame_name(int64_t k) override { return m_inner->frame_name(k); }
  VideoInfo info() override { return m_inner->info(); }
  const std::string& path() const override { return m_inner->path(); }
  int64_t seeks() const { return m_seeks; }

 private:
  Image inner_frame(int64_t k);
  void keep(int64_t k, Image img);

  std::unique_ptr<FrameSource> m_inner;
  int m_block, m_keep;
  int64_t m_last = -1, m_seeks = 0;                 // the last inner index read (frame 0 comes first)
  std::list<std::pair<int64_t, Image>> m_frames;   // most recent first
};

}  // namespace corrtrack
