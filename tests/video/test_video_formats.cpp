// Codecs and stream properties made with the ffmpeg command: 10-bit FFV1, VP9 WebM, rotation
// metadata, odd sizes. Skips when the ffmpeg command is not installed.
#include "test_support.h"

#include "corrtrack/core.h"

#include <cstdlib>

using namespace corrtrack;
using corrtrack::test::TempDir;

namespace {


// testsrc2 draws a moving pattern with a frame counter; every frame differs.
bool make_clip(const std::string& out, const std::string& args) {
  const std::string cmd = "ffmpeg -nostdin -v error -y -f lavfi -i testsrc2=size=96x64:rate=10 -frames:v 20 " + args + " '" + out + "'";
  return std::system(cmd.c_str()) == 0;
}

// Sequential decoding and random access agree on every sampled frame.
void expect_consistent(const std::string& path, int64_t frames) {
  auto seq = frame_source_open(path);
  std::vector<uint64_t> hashes;
  Image img;
  while (seq->next(img)) hashes.push_back(corrtrack::test::image_hash(img));
  ASSERT_EQ(static_cast<int64_t>(hashes.size()), frames) << path;
  auto src = frame_source_open(path);
  EXPECT_EQ(src->size(), frames);
  for (int64_t k : {frames - 1, int64_t(3), int64_t(0), frames / 2}) {
    EXPECT_EQ(corrtrack::test::image_hash(src->frame(k)), hashes[size_t(k)]) << path << " frame " << k;
  }
}

double mean_abs_diff(const Image& a, const Image& b) {
  if (a.data.size() != b.data.size() || a.empty()) return 1e9;
  double d = 0;
  for (size_t i = 0; i < a.data.size(); ++i) d += std::abs(int(a.data[i]) - int(b.data[i]));
  return d / a.data.size();
}

}  // namespace

TEST(Formats, TenBitFfv1) {
  if (!corrtrack::test::have_ffmpeg()) GTEST_SKIP() << "ffmpeg command not installed";
  TempDir dir;
  ASSERT_TRUE(make_clip(dir / "ten.mkv", "-c:v ffv1 -pix_fmt yuv420p10le"));
  auto src = frame_source_open(dir / "ten.mkv");
  EXPECT_EQ(src->info().pixel_format, "yuv420p10le");
  expect_consistent(dir / "ten.mkv", 20);
  // Bit for bit what `ffmpeg -pix_fmt rgb24` gives, for 10-bit and 8-bit input alike.
  EXPECT_TRUE(src->frame(5) == corrtrack::test::ffmpeg_frame(dir / "ten.mkv", 5, 96, 64));
  ASSERT_TRUE(make_clip(dir / "eight.mkv", "-c:v ffv1 -pix_fmt yuv420p"));
  EXPECT_TRUE(frame_source_open(dir / "eight.mkv")->frame(5) == corrtrack::test::ffmpeg_frame(dir / "eight.mkv", 5, 96, 64));
}

TEST(Formats, Vp9Webm) {
  if (!corrtrack::test::have_ffmpeg()) GTEST_SKIP() << "ffmpeg command not installed";
  TempDir dir;
  if (!make_clip(dir / "c.webm", "-c:v libvpx-vp9 -b:v 200k -g 6")) GTEST_SKIP() << "no VP9 encoder in this ffmpeg";
  EXPECT_EQ(frame_source_open(dir / "c.webm")->info().codec, "vp9");
  expect_consistent(dir / "c.webm", 20);
}

TEST(Formats, RotationMetadataIsApplied) {
  if (!corrtrack::test::have_ffmpeg()) GTEST_SKIP() << "ffmpeg command not installed";
  TempDir dir;
  ASSERT_TRUE(make_clip(dir / "plain.mp4", "-c:v libx264 -pix_fmt yuv420p"));
  const std::string cmd = "ffmpeg -nostdin -v error -y -i '" + (dir / "plain.mp4") +
                          "' -c copy -metadata:s:v:0 rotate=90 '" + (dir / "rot.mp4") + "'";
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  auto plain = frame_source_open(dir / "plain.mp4");
  auto rot = frame_source_open(dir / "rot.mp4");
  const VideoInfo vi = rot->info();
  // This display matrix (ffprobe: "rotation=90", counter-clockwise) asks for a 270 degree
  // clockwise turn, which is what the ffmpeg command's autorotation applies.
  ASSERT_EQ(vi.rotation, 270);
  EXPECT_EQ(vi.width, 64);
  EXPECT_EQ(vi.height, 96);
  const Image p = plain->frame(4), r = rot->frame(4);
  ASSERT_EQ(r.width, 64);
  ASSERT_EQ(r.height, 96);
  // Counter-clockwise quarter turn: plain (x, y) lands at (y, W-1-x), bit for bit.
  for (int y = 0; y < p.height; y += 7)
    for (int x = 0; x < p.width; x += 9)
      for (int c = 0; c < 3; ++c) EXPECT_EQ(r.px(y, p.width - 1 - x)[c], p.px(x, y)[c]) << x << "," << y;
  EXPECT_LT(mean_abs_diff(r, corrtrack::test::ffmpeg_frame(dir / "rot.mp4", 4, 64, 96)), 2.0);
}

TEST(Formats, OddSizeDecodes) {
  if (!corrtrack::test::have_ffmpeg()) GTEST_SKIP() << "ffmpeg command not installed";
  TempDir dir;
  const std::string cmd = "ffmpeg -nostdin -v error -y -f lavfi -i testsrc=size=97x63:rate=10 -frames:v 8 -c:v ffv1 -pix_fmt yuv444p '" + (dir / "odd.mkv") + "'";
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  auto src = frame_source_open(dir / "odd.mkv");
  EXPECT_EQ(src->info().width, 97);
  EXPECT_EQ(src->info().height, 63);
  expect_consistent(dir / "odd.mkv", 8);
}
