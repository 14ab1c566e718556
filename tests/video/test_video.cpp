// Video module: palette masks bit for bit, Lab colour, writer/reader round trips, random access.
#include "test_support.h"

#include "corrtrack/core.h"
#include "corrtrack/mask_export.h"
#include "corrtrack/mask_rle.h"
#include "corrtrack/read_ahead.h"
#include "corrtrack/video_bench.h"

#include <cmath>
#include <fstream>
#include <random>

using namespace corrtrack;
using corrtrack::test::TempDir;

TEST(Palette, DavisColoursAreThePascalVocMap) {
  const auto& p = davis_palette();
  auto rgb = [&](int i) { return std::array<int, 3>{p[i * 3], p[i * 3 + 1], p[i * 3 + 2]}; };
  EXPECT_EQ(rgb(0), (std::array<int, 3>{0, 0, 0}));
  EXPECT_EQ(rgb(1), (std::array<int, 3>{128, 0, 0}));
  EXPECT_EQ(rgb(2), (std::array<int, 3>{0, 128, 0}));
  EXPECT_EQ(rgb(3), (std::array<int, 3>{128, 128, 0}));
  EXPECT_EQ(rgb(8), (std::array<int, 3>{64, 0, 0}));
  EXPECT_EQ(rgb(255), (std::array<int, 3>{224, 224, 192}));
}

TEST(Mask, PaletteRoundTripIsBitExact) {
  TempDir dir;
  Image m(37, 23, 1);  // odd size on purpose
  std::mt19937 rng(7);
  for (auto& v : m.data) v = static_cast<uint8_t>(rng() % 256);
  m.data[0] = 255;
  mask_write(dir / "m.png", m);
  const Image back = mask_read(dir / "m.png");
  EXPECT_TRUE(back == m);
  // The file really is a palette PNG: IHDR colour type byte (offset 25) is 3.
  std::ifstream f(dir / "m.png", std::ios::binary);
  std::string head(32, '\0');
  f.read(head.data(), 32);
  EXPECT_EQ(static_cast<int>(static_cast<uint8_t>(head[25])), 3);
  EXPECT_EQ(mask_num_objects(m), 254);
}

TEST(Mask, GrayBinaryMaskReadsAsObjectOne) {
  TempDir dir;
  Image g(10, 4, 1, 0);
  for (int x = 5; x < 10; ++x) g.px(x, 2)[0] = 255;
  image_write_png(dir / "g.png", g);
  const Image m = mask_read(dir / "g.png");
  int ones = 0;
  for (uint8_t v : m.data) { ASSERT_TRUE(v == 0 || v == 1); ones += v; }
  EXPECT_EQ(ones, 5);
}

TEST(Mask, RgbMaskMapsBackThroughThePalette) {
  TempDir dir;
  Image idx(6, 2, 1, 0);
  idx.data[3] = 2;
  idx.data[7] = 1;
  const Image rgb = overlay_render(Image(6, 2, 3, 0), idx, OverlayMode::MaskOnly);
  image_write_png(dir / "rgb.png", rgb);
  EXPECT_TRUE(mask_read(dir / "rgb.png") == idx);
  Image bad(2, 2, 3, 0);
  bad.data[0] = 17;
  image_write_png(dir / "bad.png", bad);
  try {
    mask_read(dir / "bad.png");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("bad.png"), std::string::npos);
  }
}

// Frames in PNG are read by libpng (the same path as a build without OpenCV): RGB as written,
// a palette mask as its palette's colours, grey as equal channels; junk is an error naming it.
TEST(ImageRead, PngRgbPaletteAndGreyComeBackAsRgb) {
  TempDir dir;
  Image rgb(5, 3, 3);
  std::mt19937 rng(3);
  for (auto& v : rgb.data) v = static_cast<uint8_t>(rng() % 256);
  image_write_png(dir / "rgb.png", rgb);
  EXPECT_TRUE(image_read(dir / "rgb.png") == rgb);

  Image idx(4, 1, 1);
  idx.data = {0, 1, 2, 255};
  mask_write(dir / "pal.png", idx);
  const Image pal = image_read(dir / "pal.png");
  ASSERT_EQ(pal.channels, 3);
  ASSERT_EQ(pal.width, 4);
  const std::vector<uint8_t> want_pal = {0, 0, 0, 128, 0, 0, 0, 128, 0, 224, 224, 192};  // DAVIS colours 0, 1, 2, 255
  EXPECT_EQ(pal.data, want_pal);

  Image grey(3, 1, 1);
  grey.data = {0, 17, 200};
  image_write_png(dir / "grey.png", grey);
  const std::vector<uint8_t> want_grey = {0, 0, 0, 17, 17, 17, 200, 200, 200};
  EXPECT_EQ(image_read(dir / "grey.png").data, want_grey);

  std::ofstream(dir / "junk.png", std::ios::binary) << std::string(64, 'x');
  try {
    image_read(dir / "junk.png");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("junk.png"), std::string::npos) << e.what();
  }
}

// Column-major runs, starting with background, worked out by hand.
TEST(Mask, CocoRunLengthsByHand) {
  Image m(3, 2, 1);   // row 0: 0 1 1, row 1: 0 1 0
  *m.px(1, 0) = 1;
  *m.px(2, 0) = 1;
  *m.px(1, 1) = 1;
  // Columns: (0, 0), (1, 1), (1, 0) -> 0 0 1 1 1 0
  EXPECT_EQ(mask_rle_counts(m, 1), (std::vector<int64_t>{2, 3, 1}));
  const auto o = coco_object(m, 1);
  EXPECT_EQ(o["area"].get<int64_t>(), 3);
  EXPECT_EQ(o["bbox"], nlohmann::json::array({1, 0, 2, 2}));
  EXPECT_EQ(o["segmentation"]["size"], nlohmann::json::array({2, 3}));   // [height, width]
  // A mask that starts with the object: a first run of length 0.
  Image s(2, 2, 1);
  *s.px(0, 0) = 2;
  EXPECT_EQ(mask_rle_counts(s, 2), (std::vector<int64_t>{0, 1, 3}));
  // An absent object: one background run, area 0.
  EXPECT_EQ(mask_rle_counts(s, 5), (std::vector<int64_t>{4}));
  EXPECT_EQ(coco_object(s, 5)["area"].get<int64_t>(), 0);
}

// Nearest-neighbour resize keeps indices: 2x2 blocks of a 4x4 mask become the 2x2 mask's pixels.
TEST(Mask, NearestResizeKeepsIndices) {
  Image big(4, 4, 1);
  for (int y = 0; y < 4; ++y) for (int x = 0; x < 4; ++x) *big.px(x, y) = uint8_t((y / 2) * 2 + x / 2 + 1);
  const Image small = mask_resize_nearest(big, 2, 2);
  EXPECT_EQ(small.data, (std::vector<uint8_t>{1, 2, 3, 4}));
  const Image back = mask_resize_nearest(small, 4, 4);
  EXPECT_EQ(back.data, big.data);
}

TEST(Colour, LabOfKnownColours) {
  auto lab_of = [](float r, float g, float b) {
    auto t = torch::tensor({r, g, b}).view({3, 1, 1});
    auto lab = rgb_to_lab(t);
    return std::array<double, 3>{lab[0].item<double>(), lab[1].item<double>(), lab[2].item<double>()};
  };
  const auto white = lab_of(1, 1, 1), black = lab_of(0, 0, 0), red = lab_of(1, 0, 0);
  EXPECT_NEAR(white[0], 100.0, 0.01);
  EXPECT_NEAR(white[1], 0.0, 0.01);
  EXPECT_NEAR(white[2], 0.0, 0.01);
  EXPECT_NEAR(black[0], 0.0, 1e-4);
  // sRGB red is L 53.24, a 80.09, b 67.20 (D65).
  EXPECT_NEAR(red[0], 53.24, 0.05);
  EXPECT_NEAR(red[1], 80.09, 0.1);
  EXPECT_NEAR(red[2], 67.20, 0.1);
}

TEST(Colour, LabRoundTrip) {
  torch::manual_seed(3);
  auto rgb = torch::rand({2, 3, 8, 8});
  auto back = lab_to_rgb(rgb_to_lab(rgb));
  EXPECT_LT((back - rgb).abs().max().item<double>(), 1e-4);
}

TEST(Colour, TensorConversionRoundTrip) {
  const Image img = corrtrack::test::synthetic_frame(3, 20, 10);
  auto t = image_to_tensor(img);
  EXPECT_EQ(t.sizes(), (std::vector<int64_t>{3, 10, 20}));
  EXPECT_NEAR(t[0][0][19].item<double>(), img.px(19, 0)[0] / 255.0, 1e-6);
  EXPECT_TRUE(tensor_to_image(t) == img);
}

TEST(Overlay, BlendColoursOnlyObjectPixels) {
  Image frame(4, 1, 3, 100);
  Image mask(4, 1, 1, 0);
  mask.data[1] = 1;  // DAVIS colour (128,0,0)
  const Image out = overlay_render(frame, mask, OverlayMode::Blend, 0.5f);
  EXPECT_EQ(out.px(0, 0)[0], 100);
  EXPECT_EQ(out.px(1, 0)[0], 114);  // round(0.5*100 + 0.5*128)
  EXPECT_EQ(out.px(1, 0)[1], 50);
  EXPECT_THROW(overlay_render(frame, Image(3, 1, 1), OverlayMode::Blend), Error);
}

class VideoRoundTrip : public ::testing::TestWithParam<std::string> {};

TEST_P(VideoRoundTrip, CountFpsAndRandomAccessMatchSequential) {
  TempDir dir;
  const std::string path = dir / ("clip." + GetParam());
  corrtrack::test::write_synthetic_video(path, 40, 96, 64, 25.0);
  auto src = frame_source_open(path);
  EXPECT_EQ(src->size(), 40);
  const VideoInfo vi = src->info();
  EXPECT_EQ(vi.width, 96);
  EXPECT_EQ(vi.height, 64);
  EXPECT_NEAR(vi.fps, 25.0, 0.01);
  EXPECT_NEAR(vi.duration_s, 1.6, 0.05);
  const auto ts = src->timestamps();
  ASSERT_EQ(ts.size(), 40u);
  EXPECT_NEAR(ts[10] - ts[9], 0.04, 1e-3);

  auto seq = frame_source_open(path);
  std::vector<uint64_t> hashes;
  Image img;
  while (seq->next(img)) hashes.push_back(corrtrack::test::image_hash(img));
  ASSERT_EQ(hashes.size(), 40u);
  // The top-left block's gray level encodes the frame number (lossy codec: approximately).
  for (int k : {0, 13, 39}) {
    const Image f = src->frame(k);
    EXPECT_NEAR(f.px(3, 3)[1], (k * 37) % 256, 12) << "frame " << k;
  }
  for (int k : {39, 0, 21, 20, 5, 33, 34, 2, 2, 38}) {
    EXPECT_EQ(corrtrack::test::image_hash(src->frame(k)), hashes[size_t(k)]) << "frame " << k;
  }
  EXPECT_THROW(src->frame(40), Error);
}

INSTANTIATE_TEST_SUITE_P(Containers, VideoRoundTrip, ::testing::Values("mp4", "avi", "mkv"));

TEST(VideoSource, ResizeOnDecodeKeepsAspect) {
  TempDir dir;
  corrtrack::test::write_synthetic_video(dir / "c.mp4", 3, 96, 64);
  FrameSourceOptions o;
  o.width = 48;
  auto src = frame_source_open(dir / "c.mp4", o);
  const Image f = src->frame(1);
  EXPECT_EQ(f.width, 48);
  EXPECT_EQ(f.height, 32);
}

TEST(VideoWriter, AbandonedWriterLeavesNoFile) {
  TempDir dir;
  {
    VideoWriter w(dir / "x.mp4", 32, 32, 10);
    w.write(Image(32, 32, 3, 7));
  }
  EXPECT_TRUE(std::filesystem::is_empty(dir.path()));
}

TEST(FolderSource, SortedFramesNamesAndSizeCheck) {
  TempDir dir;
  for (int k : {2, 0, 1}) image_write_png(dir / ("0000" + std::to_string(k) + ".png"), corrtrack::test::synthetic_frame(k, 20, 12));
  auto src = frame_source_open(dir.path());
  ASSERT_EQ(src->size(), 3);
  EXPECT_EQ(src->frame_name(2), "00002");
  EXPECT_TRUE(src->frame(1) == corrtrack::test::synthetic_frame(1, 20, 12));
  image_write_png(dir / "00003.png", corrtrack::test::synthetic_frame(3, 22, 12));
  auto src2 = frame_source_open(dir.path());
  try {
    src2->frame(3);
    FAIL() << "expected a size error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("00003.png"), std::string::npos) << e.what();
  }
}

TEST(Mask, PolygonFillCoversPixelCentresInside) {
  Image m(10, 10, 1, 0);
  // Axis-aligned rectangle from (2,3) to (6,8): centres x+0.5 in (2,6) -> x = 2..5, y = 3..7.
  mask_fill_polygon(m, {{2, 3}, {6, 3}, {6, 8}, {2, 8}}, 4);
  int n = 0;
  for (int y = 0; y < 10; ++y)
    for (int x = 0; x < 10; ++x) {
      const bool inside = x >= 2 && x <= 5 && y >= 3 && y <= 7;
      EXPECT_EQ(m.px(x, y)[0], inside ? 4 : 0) << x << "," << y;
      n += m.px(x, y)[0] != 0;
    }
  EXPECT_EQ(n, 20);
  // A right triangle with legs 10 covers about half the square.
  Image t(10, 10, 1, 0);
  mask_fill_polygon(t, {{0, 0}, {10, 0}, {0, 10}}, 1);
  EXPECT_EQ(mask_num_objects(t), 1);
  int area = 0;
  for (uint8_t v : t.data) area += v;
  EXPECT_EQ(area, 45);  // centres with x + y + 1 < 10 (on the edge excluded): 9+8+...+1
  EXPECT_THROW(mask_fill_polygon(t, {{0, 0}, {1, 1}}, 1), Error);
}

TEST(VideoSource, SequentialReadingResumesAfterCounting) {
  TempDir dir;
  corrtrack::test::write_synthetic_video(dir / "c.mp4", 12);
  auto ref = frame_source_open(dir / "c.mp4");
  std::vector<uint64_t> hashes;
  Image img;
  while (ref->next(img)) hashes.push_back(corrtrack::test::image_hash(img));
  auto src = frame_source_open(dir / "c.mp4");
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(src->next(img));
  EXPECT_EQ(src->size(), 12);  // builds the index by decoding everything
  ASSERT_TRUE(src->next(img));
  EXPECT_EQ(corrtrack::test::image_hash(img), hashes[5]);
}

// Property: a video reopened with frame_source_reopen_options has the first opening's count and
// frames without counting again: the count comes from the index carried (a shortened index gives a
// shorter video), and a frame folder's options carry no index.
TEST(VideoSource, ReopenOptionsCarryTheIndex) {
  TempDir dir;
  corrtrack::test::write_synthetic_video(dir / "c.mp4", 12);
  auto first = frame_source_open(dir / "c.mp4");
  const FrameSourceOptions o = frame_source_reopen_options(*first);
  ASSERT_TRUE(o.pts);
  ASSERT_EQ(o.pts->size(), 12u);
  auto again = frame_source_open(dir / "c.mp4", o);
  EXPECT_EQ(again->size(), 12);
  for (int64_t k : {11, 0, 6}) EXPECT_EQ(corrtrack::test::image_hash(again->frame(k)), corrtrack::test::image_hash(first->frame(k))) << k;
  FrameSourceOptions shortened = o;
  shortened.pts = std::make_shared<const std::vector<int64_t>>(o.pts->begin(), o.pts->end() - 2);
  EXPECT_EQ(frame_source_open(dir / "c.mp4", shortened)->size(), 10);   // trusted, not recounted
  FrameSourceOptions sized;
  sized.width = 32;
  EXPECT_EQ(frame_source_reopen_options(*first, sized).width, 32);      // the base options are kept
  std::filesystem::create_directories(dir / "f");
  image_write_png(dir / "f/00000.png", corrtrack::test::synthetic_frame(0, 20, 12));
  auto folder = frame_source_open(dir / "f");
  EXPECT_FALSE(frame_source_reopen_options(*folder).pts);
}

// Run-length masks (how the Studio keeps masks): exact round trips — random noise (many runs),
// an empty mask (one run) and two boxes at 1920×1080 (a few kilobytes instead of 2 MB).
TEST(MaskRle, RoundTripsAndIsSmallForObjects) {
  std::mt19937 rng(3);
  Image noise(37, 23, 1);
  for (auto& v : noise.data) v = uint8_t(rng() % 4);
  EXPECT_TRUE(MaskRle(noise).decode() == noise);
  const Image empty(64, 48, 1, 0);
  const MaskRle packed_empty(empty);
  EXPECT_EQ(packed_empty.runs(), 1u);
  EXPECT_TRUE(packed_empty.decode() == empty);
  Image boxes(1920, 1080, 1, 0);
  for (int y = 100; y < 600; ++y)
    for (int x = 200; x < 900; ++x) *boxes.px(x, y) = 1;
  for (int y = 500; y < 1000; ++y)
    for (int x = 1000; x < 1500; ++x) *boxes.px(x, y) = 2;
  const MaskRle packed(boxes);
  EXPECT_TRUE(packed.decode() == boxes);
  // Per row at most 5 runs: 1 + 2 per box crossing it; runs join across row ends.
  EXPECT_LE(packed.runs(), 1080u * 5);
  EXPECT_LT(packed.bytes(), 1920u * 1080 / 50);
  EXPECT_THROW(MaskRle(Image(4, 4, 3)), Error);
}

namespace {
// Synthetic frames that count the requests which are not the frame after the previous one.
class CountingSource : public FrameSource {
 public:
  explicit CountingSource(int n) : m_n(n) {}
  int64_t size() override { return m_n; }
  Image frame(int64_t k) override {
    if (k != m_last + 1) ++seeks;
    m_last = k;
    ++reads;
    return corrtrack::test::synthetic_frame(int(k), 24, 16);
  }
  bool next(Image& out) override { if (m_last + 1 >= m_n) return false; out = frame(m_last + 1); return true; }
  std::vector<double> timestamps() override { return std::vector<double>(size_t(m_n), 0.0); }
  std::string frame_name(int64_t k) override { return std::to_string(k); }
  VideoInfo info() override { VideoInfo v; v.frame_count = m_n; return v; }
  const std::string& path() const override { return m_path; }
  int seeks = 0, reads = 0;
 private:
  int m_n;
  int64_t m_last = -1;
  std::string m_path = "counting";
};
}  // namespace

// Reading backward through ReadAheadSource: the frames are the inner source's, and 64 frames
// stepped backward cost the first read (frame 99, a seek) plus one seek per block of 16 below it
// (98..83, 82..67, 66..51, 50..35): 5 seeks and 65 reads instead of 64 seeks; forward reading
// stays sequential; revisiting a kept frame reads nothing.
TEST(ReadAhead, BackwardInBlocksSameFrames) {
  auto* inner = new CountingSource(100);
  ReadAheadSource src(std::unique_ptr<FrameSource>(inner), 16, 16);
  for (int64_t k = 99; k >= 36; --k) ASSERT_TRUE(src.frame(k) == corrtrack::test::synthetic_frame(int(k), 24, 16)) << k;
  EXPECT_EQ(inner->seeks, 5);
  EXPECT_EQ(src.seeks(), 5);
  EXPECT_EQ(inner->reads, 65);
  const int reads = inner->reads;
  EXPECT_TRUE(src.frame(40) == corrtrack::test::synthetic_frame(40, 24, 16));   // kept
  EXPECT_EQ(inner->reads, reads);
  CountingSource* fwd = new CountingSource(50);
  ReadAheadSource forward(std::unique_ptr<FrameSource>(fwd), 16, 16);
  for (int64_t k = 0; k < 50; ++k) ASSERT_TRUE(forward.frame(k) == corrtrack::test::synthetic_frame(int(k), 24, 16));
  EXPECT_EQ(fwd->seeks, 0);
  EXPECT_EQ(fwd->reads, 50);
  EXPECT_EQ(forward.seeks(), 0);
}

// The long-video benchmark's synthetic video: discs where the maths puts them, the file decodes
// to the rendered frames (lossy, PSNR > 30 dB), the mask PNG is the frame's, bad specs refused.
TEST(SynthVideo, FramesMasksAndFile) {
  SynthVideoSpec spec;
  spec.width = 160;
  spec.height = 96;
  spec.fps = 10;
  spec.seconds = 2;
  spec.objects = 2;
  EXPECT_EQ(synth_video_frames(spec), 20);
  const auto [f7, m7] = synth_video_frame(spec, 7);
  const auto again = synth_video_frame(spec, 7);
  EXPECT_TRUE(f7 == again.first);
  // Each disc has radius height/8 = 12: area pi*144 = 452 pixels unless the other covers it or
  // it leaves the frame; both are present and the rest is background.
  int64_t counts[3] = {0, 0, 0};
  for (uint8_t v : m7.data) {
    ASSERT_LE(v, 2);
    ++counts[v];
  }
  EXPECT_GT(counts[1], 100);
  EXPECT_GT(counts[2], 100);
  EXPECT_LE(counts[1] + counts[2], 2 * 460);
  // Discs move: frame 8's mask differs from frame 7's.
  EXPECT_FALSE(synth_video_frame(spec, 8).second == m7);

  TempDir dir;
  const auto j = synth_video_write(dir / "s.mp4", spec, dir / "m.png", 7);
  EXPECT_EQ(j["frames"].get<int64_t>(), 20);
  EXPECT_TRUE(mask_read(dir / "m.png") == m7);
  auto src = frame_source_open(dir / "s.mp4");
  ASSERT_EQ(src->size(), 20);
  for (int64_t k : {0, 7, 19}) {
    const Image got = src->frame(k), want = synth_video_frame(spec, k).first;
    double se = 0;
    for (size_t i = 0; i < got.data.size(); ++i) se += std::pow(double(got.data[i]) - want.data[i], 2);
    const double psnr = 10 * std::log10(255.0 * 255.0 / (se / double(got.data.size())));
    EXPECT_GT(psnr, 30.0) << "frame " << k;
  }
  spec.objects = 0;
  EXPECT_THROW(synth_video_frame(spec, 0), Error);
  spec.objects = 2;
  EXPECT_THROW(synth_video_write(dir / "t.mp4", spec, dir / "m2.png", 20), Error);   // mask frame outside
  EXPECT_FALSE(std::filesystem::exists(dir / "t.mp4"));
}
