// Training data forms: the JPEG clip cache, the parallel resumable cache build, text lists of
// inputs, and clips streamed from video files (frames equal FrameSource's, the collection's index
// reused, undecodable videos skipped and counted).
#include "corrtrack/clip_cache.h"
#include "corrtrack/clip_stream.h"
#include "test_support.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>

using namespace corrtrack;
using corrtrack::test::TempDir;
using corrtrack::test::synthetic_frame;
namespace fs = std::filesystem;

namespace {

double psnr(const Image& a, const Image& b) {
  EXPECT_EQ(a.data.size(), b.data.size());
  double se = 0;
  for (size_t i = 0; i < a.data.size(); ++i) {
    const double d = double(a.data[i]) - double(b.data[i]);
    se += d * d;
  }
  const double mse = se / double(a.data.size());
  return mse == 0 ? 99.0 : 10.0 * std::log10(255.0 * 255.0 / mse);
}

// A textured frame (smooth gradients with fine noise), closer to video than flat blocks.
Image textured_frame(int k, int w, int h) {
  Image img = synthetic_frame(k, w, h);
  std::mt19937 rng{uint32_t(k)};
  for (auto& b : img.data) b = uint8_t(std::clamp(int(b) + int(rng() % 9) - 4, 0, 255));
  return img;
}

std::string read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary);
  f << bytes;
}

// `n` synthetic videos of 96x64 in `dir` (v0.mp4 ... with 12 + 3i frames).
std::vector<std::string> synthetic_videos(const std::string& dir, int n) {
  fs::create_directories(dir);
  std::vector<std::string> out;
  for (int i = 0; i < n; ++i) {
    out.push_back((fs::path(dir) / ("v" + std::to_string(i) + ".mp4")).string());
    corrtrack::test::write_synthetic_video(out.back(), 12 + 3 * i);
  }
  return out;
}

}  // namespace

// Property: a JPEG cache gives back every frame within 30 dB PSNR of the original at quality 90
// (its crops equal the same crop of the whole frame), and is far smaller than the raw cache.
TEST(JpegCache, RoundTripWithinPsnrAndSmaller) {
  TempDir d;
  for (auto codec : {ClipCodec::Raw, ClipCodec::Jpeg}) {
    ClipCacheWriter w(d / (clip_codec_name(codec) + ".ctc"), codec, 90);
    for (int v = 0; v < 2; ++v) {
      w.begin_video("v" + std::to_string(v), 160, 96);
      for (int k = 0; k < 5; ++k) w.add_frame(textured_frame(10 * v + k, 160, 96));
      w.end_video();
    }
    w.close();
  }
  ClipCache raw(d / "raw.ctc"), jpeg(d / "jpeg.ctc");
  EXPECT_EQ(jpeg.codec(), ClipCodec::Jpeg);
  EXPECT_EQ(jpeg.kind(), "jpeg cache");
  ASSERT_EQ(jpeg.videos().size(), 2u);
  EXPECT_EQ(jpeg.total_frames(), 10);
  for (size_t v = 0; v < 2; ++v) {
    for (int64_t k = 0; k < 5; ++k) {
      std::vector<Image> a, b, crop;
      raw.read(v, {k}, raw.full_rect(v), a);
      jpeg.read(v, {k}, jpeg.full_rect(v), b);
      EXPECT_EQ(a[0].data, textured_frame(10 * int(v) + int(k), 160, 96).data);
      EXPECT_GT(psnr(a[0], b[0]), 30.0) << v << " " << k;
      jpeg.read(v, {k}, {20, 10, 50, 40}, crop);
      ASSERT_EQ(crop[0].width, 50);
      for (int y = 0; y < 40; ++y) {
        ASSERT_EQ(std::memcmp(crop[0].px(0, y), b[0].px(20, 10 + y), 150), 0) << y;
      }
    }
  }
  EXPECT_LT(fs::file_size(d / "jpeg.ctc") * 3, fs::file_size(d / "raw.ctc"));
  EXPECT_THROW(jpeg.frame_data(0, 0), Error);
  // A frame table pointing outside the file is refused when the cache is opened.
  std::string bytes = read_bytes(d / "jpeg.ctc");
  const size_t at = bytes.find("\"table\":");
  ASSERT_NE(at, std::string::npos);
  bytes.replace(at, 9, "\"table\":9");
  write_bytes(d / "bad.ctc", bytes);
  try {
    ClipCache c(d / "bad.ctc");
    ADD_FAILURE() << "a damaged frame table was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("bad.ctc"), std::string::npos) << e.what();
  }
}

// Property: a build interrupted after two videos leaves no cache, and the next run takes those
// two from its parts and writes a file byte-identical to an uninterrupted build (raw with one
// worker, JPEG with three).
TEST(ClipCacheBuild, InterruptedBuildContinues) {
  TempDir d;
  const auto videos = synthetic_videos(d / "videos", 4);
  for (auto [codec, workers] : {std::pair{ClipCodec::Raw, 1}, std::pair{ClipCodec::Jpeg, 3}}) {
    ClipCacheBuildOptions o;
    o.short_side = 48;
    o.codec = codec;
    o.workers = workers;
    o.progress = [](const ProgressInfo&) {};
    const std::string whole = d / ("whole-" + clip_codec_name(codec) + ".ctc");
    const auto full = clip_cache_build({d / "videos"}, whole, o);
    EXPECT_EQ(full.videos, 4);
    EXPECT_EQ(full.frames, 12 + 15 + 18 + 21);
    EXPECT_EQ(full.resumed, 0);

    const std::string out = d / ("resumed-" + clip_codec_name(codec) + ".ctc");
    ClipCacheBuildOptions stopping = o;
    stopping.progress = [](const ProgressInfo& p) {
      if (p.done >= 2) throw std::runtime_error("interrupted");
    };
    EXPECT_THROW(clip_cache_build({d / "videos"}, out, stopping), std::runtime_error);
    EXPECT_FALSE(fs::exists(out));
    EXPECT_TRUE(fs::is_directory(out + ".parts"));
    const auto again = clip_cache_build({d / "videos"}, out, o);
    EXPECT_GE(again.resumed, 2);
    EXPECT_EQ(again.frames, full.frames);
    EXPECT_EQ(read_bytes(out), read_bytes(whole));
    EXPECT_FALSE(fs::exists(out + ".parts"));
    ClipCache c(out);
    EXPECT_EQ(c.codec(), codec);
    EXPECT_EQ(c.videos()[0].width, 72);   // 96x64 with the short side at 48
    EXPECT_EQ(c.videos()[0].height, 48);
  }
  // Other settings do not reuse the parts of an interrupted build.
  ClipCacheBuildOptions o;
  o.short_side = 32;
  o.progress = [](const ProgressInfo& p) {
    if (p.done >= 1) throw std::runtime_error("interrupted");
  };
  EXPECT_THROW(clip_cache_build({d / "videos"}, d / "x.ctc", o), std::runtime_error);
  o.short_side = 40;
  o.progress = [](const ProgressInfo&) {};
  EXPECT_EQ(clip_cache_build({d / "videos"}, d / "x.ctc", o).resumed, 0);
  EXPECT_EQ(ClipCache(d / "x.ctc").videos()[0].height, 40);
}

// Property: videos that cannot be decoded are skipped and counted, the others cached; when none
// can be decoded the build fails naming one.
TEST(ClipCacheBuild, UndecodableVideosAreSkippedAndCounted) {
  TempDir d;
  synthetic_videos(d / "videos", 2);
  write_bytes(d / "videos/garbage.mp4", std::string(4000, 'x'));
  const std::string good = read_bytes(d / "videos/v1.mp4");
  write_bytes(d / "videos/truncated.mp4", good.substr(0, 200));
  ClipCacheBuildOptions o;
  o.workers = 2;
  o.progress = [](const ProgressInfo&) {};
  const auto r = clip_cache_build({d / "videos"}, d / "c.ctc", o);
  EXPECT_EQ(r.videos, 2);
  EXPECT_EQ(r.skipped, 2);
  ClipCache c(d / "c.ctc");
  ASSERT_EQ(c.videos().size(), 2u);
  EXPECT_EQ(c.videos()[0].name, "v0.mp4");
  fs::create_directories(d / "bad");
  write_bytes(d / "bad/garbage.mp4", std::string(4000, 'x'));
  try {
    clip_cache_build({d / "bad"}, d / "none.ctc", o);
    ADD_FAILURE() << "a build of nothing succeeded";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("garbage.mp4"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(d / "none.ctc"));
}

// Property: a text list names inputs relative to its folder, skipping comments and blank lines; a
// missing entry is an error naming the list and the line.
TEST(ClipInputs, TextLists) {
  TempDir d;
  synthetic_videos(d / "videos", 3);
  write_bytes(d / "list.txt", "# training videos\nvideos/v2.mp4\n\n  videos/v0.mp4  \n" + (d / "videos/v1.mp4") + "\n");
  const auto got = clip_cache_expand_inputs({d / "list.txt"});
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(fs::path(got[0]).filename(), "v2.mp4");
  EXPECT_EQ(fs::path(got[1]).filename(), "v0.mp4");
  EXPECT_EQ(fs::path(got[2]).filename(), "v1.mp4");
  write_bytes(d / "broken.txt", "videos/v0.mp4\nvideos/missing.mp4\n");
  try {
    clip_cache_expand_inputs({d / "broken.txt"});
    ADD_FAILURE() << "a missing entry was accepted";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("broken.txt"), std::string::npos) << m;
    EXPECT_NE(m.find("line 2"), std::string::npos) << m;
  }
}

// Property: streamed frames equal FrameSource's frames at the same size bit for bit (random
// access after the index pass, in any order), the index is stored in the folder and reused by the
// next open, and re-made for a file that changed.
TEST(ClipStream, FramesEqualFrameSourceAndIndexIsReused) {
  TempDir d;
  const auto videos = synthetic_videos(d / "videos", 3);
  ClipStreamOptions o;
  o.short_side = 48;
  o.workers = 2;
  ClipStreamReport r;
  auto store = clip_stream_open({d / "videos"}, o, &r);
  EXPECT_EQ(store->kind(), "stream");
  EXPECT_EQ(r.videos, 3);
  EXPECT_EQ(r.indexed, 3);
  EXPECT_EQ(r.index_path, d / "videos/.corrtrack-index.json");
  ASSERT_TRUE(fs::exists(r.index_path));
  ASSERT_EQ(store->videos().size(), 3u);
  EXPECT_EQ(store->videos()[2].frames, 18);
  EXPECT_EQ(store->videos()[2].width, 72);
  FrameSourceOptions fo;
  fo.width = 72;
  fo.height = 48;
  auto src = frame_source_open(videos[2], fo);
  std::vector<Image> sequential;
  Image f;
  while (src->next(f)) sequential.push_back(f);
  ASSERT_EQ(sequential.size(), 18u);
  for (const std::vector<int64_t>& frames : {std::vector<int64_t>{13, 14, 17}, std::vector<int64_t>{0, 4, 8}, std::vector<int64_t>{9}}) {
    std::vector<Image> got;
    store->read(2, frames, store->full_rect(2), got);
    for (size_t i = 0; i < frames.size(); ++i) EXPECT_EQ(got[i].data, sequential[size_t(frames[i])].data) << frames[i];
  }
  ClipStreamReport again;
  clip_stream_open({d / "videos"}, o, &again);
  EXPECT_EQ(again.indexed, 0);
  EXPECT_EQ(again.reused, 3);
  corrtrack::test::write_synthetic_video(videos[1], 7);
  auto changed = clip_stream_open({d / "videos"}, o, &again);
  EXPECT_EQ(again.indexed, 1);
  EXPECT_EQ(changed->videos()[1].frames, 7);
}

// Property: videos that cannot be decoded are left out of the stream (one warning each, counted),
// the stored index remembers them; with none readable the open fails naming one.
TEST(ClipStream, UndecodableVideosAreSkippedAndCounted) {
  TempDir d;
  synthetic_videos(d / "videos", 2);
  write_bytes(d / "videos/garbage.mp4", std::string(4000, 'x'));
  write_bytes(d / "videos/truncated.mp4", read_bytes(d / "videos/v0.mp4").substr(0, 300));
  ClipStreamReport r;
  auto store = clip_stream_open({d / "videos"}, ClipStreamOptions{}, &r);
  EXPECT_EQ(r.videos, 2);
  EXPECT_EQ(r.failed, 2);
  ASSERT_EQ(store->videos().size(), 2u);
  EXPECT_EQ(store->videos()[0].name, "v0.mp4");
  clip_stream_open({d / "videos"}, ClipStreamOptions{}, &r);
  EXPECT_EQ(r.reused, 4);
  EXPECT_EQ(r.failed, 2);
  fs::create_directories(d / "bad");
  write_bytes(d / "bad/garbage.mp4", std::string(4000, 'x'));
  try {
    clip_stream_open({d / "bad"}, ClipStreamOptions{});
    ADD_FAILURE() << "a stream of nothing opened";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("garbage.mp4"), std::string::npos) << e.what();
  }
}

// Property (real data): streamed frames of DAVIS JPEG folders and of an H.264 clip equal
// FrameSource's frames at the stored size, and the raw cache of the same inputs holds the same bytes.
TEST(ClipStream, RealVideosEqualFrameSourceAndCache) {
  CORRTRACK_REQUIRE_DATA(data);
  TempDir d;
  const std::string davis = data + "/davis2016-train-240p/JPEGImages/bear";
  const std::string clip = data + "/videos/sam2/03_blocks.mp4";
  if (!fs::exists(davis) || !fs::exists(clip)) GTEST_SKIP() << "DAVIS train or the SAM 2 clips are missing";
  ClipStreamOptions o;
  o.short_side = 128;
  o.index_path = d / "index.json";
  auto store = clip_stream_open({davis, clip}, o);
  ClipCacheBuildOptions co;
  co.short_side = 128;
  co.progress = [](const ProgressInfo&) {};
  clip_cache_build({davis, clip}, d / "c.ctc", co);
  ClipCache cache(d / "c.ctc");
  ASSERT_EQ(store->videos().size(), 2u);
  for (size_t v = 0; v < 2; ++v) {
    const auto& sv = store->videos()[v];
    EXPECT_EQ(sv.frames, cache.videos()[v].frames);
    EXPECT_EQ(sv.width, cache.videos()[v].width);
    FrameSourceOptions fo;
    fo.width = sv.width;
    fo.height = sv.height;
    auto src = frame_source_open(v == 0 ? davis : clip, fo);
    const std::vector<int64_t> frames{sv.frames / 2, sv.frames / 2 + 3, sv.frames - 1};
    std::vector<Image> got, cached;
    store->read(v, frames, store->full_rect(v), got);
    cache.read(v, frames, cache.full_rect(v), cached);
    for (size_t i = 0; i < frames.size(); ++i) {
      EXPECT_EQ(got[i].data, src->frame(frames[i]).data) << v << " " << frames[i];
      EXPECT_EQ(got[i].data, cached[i].data) << v << " " << frames[i];
    }
  }
}

// Property (real data): JPEG caches of DAVIS frames at quality 90 (the default) and 75 stay within
// the PSNR stated in the README of the raw cache's frames (every frame of two sequences).
TEST(JpegCache, DavisFramesPsnr) {
  CORRTRACK_REQUIRE_DATA(data);
  TempDir d;
  const std::string root = data + "/davis2016-train-240p/JPEGImages";
  if (!fs::exists(root + "/bear")) GTEST_SKIP() << "DAVIS train is missing";
  const std::vector<std::string> inputs{root + "/bear", root + "/boat"};
  ClipCacheBuildOptions o;
  o.progress = [](const ProgressInfo&) {};
  clip_cache_build(inputs, d / "raw.ctc", o);
  ClipCache raw(d / "raw.ctc");
  for (const auto& [quality, floor] : {std::pair{90, 44.0}, std::pair{75, 37.0}}) {
    o.codec = ClipCodec::Jpeg;
    o.quality = quality;
    const std::string path = d / ("q" + std::to_string(quality) + ".ctc");
    clip_cache_build(inputs, path, o);
    ClipCache jpeg(path);
    double worst = 99.0, sum = 0.0;
    int64_t n = 0;
    for (size_t v = 0; v < 2; ++v) {
      for (int64_t k = 0; k < raw.videos()[v].frames; ++k) {
        std::vector<Image> a, b;
        raw.read(v, {k}, raw.full_rect(v), a);
        jpeg.read(v, {k}, jpeg.full_rect(v), b);
        const double p = psnr(a[0], b[0]);
        worst = std::min(worst, p);
        sum += p;
        ++n;
      }
    }
    std::printf("quality %d: mean PSNR %.2f dB, worst %.2f dB over %lld frames; %.1fx smaller\n", quality, sum / n, worst,
                static_cast<long long>(n), double(fs::file_size(d / "raw.ctc")) / double(fs::file_size(path)));
    EXPECT_GT(worst, floor) << quality;
  }
}
