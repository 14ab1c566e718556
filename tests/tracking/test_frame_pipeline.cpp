// The read-ahead and write-behind threads of pipelined propagation: order, errors, and a pipelined
// run giving the masks and sink calls of a plain one.
#include "frame_pipeline.h"

#include "test_support.h"

#include "corrtrack/tracking.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <map>
#include <stdexcept>
#include <thread>

using namespace corrtrack;
using namespace corrtrack::detail;

namespace {

// Frame k is synthetic_frame(k) (96x64); reading frame `bad` throws; counts reads.
class NumberedSource : public FrameSource {
 public:
  explicit NumberedSource(int64_t n, int64_t bad = -1) : m_n(n), m_bad(bad) {}
  int64_t size() override { return m_n; }
  Image frame(int64_t k) override {
    ++reads;
    if (k == m_bad) throw Error("frame " + std::to_string(k) + " is corrupt");
    return corrtrack::test::synthetic_frame(int(k), 96, 64);
  }
  bool next(Image& out) override { if (m_pos >= m_n) return false; out = frame(m_pos++); return true; }
  std::vector<double> timestamps() override { return std::vector<double>(size_t(m_n), 0.0); }
  std::string frame_name(int64_t k) override { return std::to_string(k); }
  VideoInfo info() override { VideoInfo v; v.width = 96; v.height = 64; v.frame_count = m_n; return v; }
  const std::string& path() const override { return m_path; }
  std::atomic<int> reads{0};

 private:
  int64_t m_n, m_bad, m_pos = 0;
  std::string m_path = "numbered";
};

bool same_frame(const Image& a, int64_t k) { return a == corrtrack::test::synthetic_frame(int(k), 96, 64); }

// A 20x30 box at x0 as a one-object mask of the clip's size.
Image box_mask(int x0) {
  Image m(96, 64, 1, 0);
  for (int y = 20; y < 40; ++y) for (int x = x0; x < x0 + 30; ++x) m.px(x, y)[0] = 1;
  return m;
}

}  // namespace

TEST(FrameReadAhead, DeliversTheOrderAndRefusesAnother) {
  NumberedSource src(10);
  const std::vector<int64_t> order{4, 3, 2, 1, 0, 7, 8, 9};
  {
    FrameReadAhead ahead(src, order, 2);
    for (int64_t k : order) EXPECT_TRUE(same_frame(ahead.frame(k), k)) << k;
    EXPECT_THROW(ahead.frame(5), std::logic_error);   // past the end of the order
  }
  EXPECT_EQ(src.reads.load(), int(order.size()));
  FrameReadAhead ahead(src, order, 2);
  EXPECT_TRUE(same_frame(ahead.frame(4), 4));
  EXPECT_THROW(ahead.frame(2), std::logic_error);     // 3 comes next
}

TEST(FrameReadAhead, ReadsAtMostDepthAheadAndStopsAtAnError) {
  NumberedSource src(10, 5);
  FrameReadAhead ahead(src, {0, 1, 2, 3, 4, 5, 6, 7}, 3);
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(src.reads.load(), 3);                      // nobody has taken a frame yet
  for (int64_t k = 0; k < 5; ++k) EXPECT_TRUE(same_frame(ahead.frame(k), k)) << k;
  try {
    ahead.frame(5);
    FAIL() << "the corrupt frame was delivered";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("frame 5"), std::string::npos);
  }
  EXPECT_EQ(src.reads.load(), 6);                      // nothing after the error was read
}

TEST(SerialWorker, RunsInOrderAndRethrowsTheFirstError) {
  std::vector<int> seen;
  {
    SerialWorker w(2);
    for (int i = 0; i < 20; ++i) w.post([&seen, i] { seen.push_back(i); });
    w.finish();
  }
  ASSERT_EQ(seen.size(), 20u);
  for (int i = 0; i < 20; ++i) EXPECT_EQ(seen[size_t(i)], i);
  seen.clear();
  SerialWorker w(1);
  w.post([&] { seen.push_back(0); });
  w.post([] { throw Error("disk full"); });
  EXPECT_THROW(
      {
        for (int i = 1; i < 100; ++i) w.post([&seen, i] { seen.push_back(i); });
        w.finish();
      },
      Error);
  EXPECT_EQ(seen, std::vector<int>{0});                // what came after the error never ran
}

// A pipelined run gives the same masks, soft masks and sink order as a plain one, with a middle
// anchor (a backward segment) and a second anchor; a failing sink fails the run.
TEST(PipelinedPropagation, SameMasksAndOrderAsPlain) {
  auto feats = feature_extractor_create("pixels");
  struct Calls {
    std::vector<int64_t> order;
    std::map<int64_t, Image> masks;
    std::map<int64_t, std::vector<Image>> soft;
  };
  auto run = [&](bool pipelined) {
    NumberedSource clip(9);
    LabelPropagator p(*feats, PropagationConfig{});
    p.set_pipelined(pipelined);
    Calls c;
    p.set_soft_sink([&](int64_t k, const std::vector<Image>& o) { c.soft[k] = o; });
    p.run(clip, {Anchor{6, box_mask(34)}, Anchor{3, box_mask(30)}}, [&](int64_t k, const Image& m, const Image&) {
      c.order.push_back(k);
      c.masks[k] = m;
    });
    return c;
  };
  const Calls plain = run(false), piped = run(true);
  EXPECT_EQ(piped.order, plain.order);
  EXPECT_EQ(piped.order, (std::vector<int64_t>{2, 1, 0, 3, 4, 5, 6, 7, 8}));
  for (const auto& [k, m] : plain.masks) EXPECT_TRUE(piped.masks.at(k) == m) << "frame " << k;
  ASSERT_EQ(piped.soft.size(), plain.soft.size());
  for (const auto& [k, s] : plain.soft) EXPECT_TRUE(piped.soft.at(k).at(0) == s.at(0)) << "frame " << k;
}

TEST(PipelinedPropagation, AFailingSinkOrSourceFailsTheRun) {
  auto feats = feature_extractor_create("pixels");
  NumberedSource clip(12);
  LabelPropagator p(*feats, PropagationConfig{});
  p.set_pipelined(true);
  int written = 0;
  EXPECT_THROW(p.run(clip, {Anchor{0, box_mask(30)}},
                     [&](int64_t k, const Image&, const Image&) {
                       if (k == 4) throw Error("no space left writing frame 4");
                       ++written;
                     }),
               Error);
  EXPECT_EQ(written, 4);   // frames 0-3; nothing after the failure
  NumberedSource broken(12, 7);
  written = 0;
  try {
    p.run(broken, {Anchor{0, box_mask(30)}}, [&](int64_t, const Image&, const Image&) { ++written; });
    FAIL() << "a corrupt frame went unnoticed";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("frame 7"), std::string::npos);
  }
  EXPECT_LE(written, 7);
}
