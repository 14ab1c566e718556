// Clip cache, clip sampler, MAST and CorrFlow training on a synthetic panning scene, and the
// exported encoder as a propagation feature extractor.
#include "corrtrack/tracking.h"
#include "corrtrack/training_setup.h"
#include "corrtrack/video_methods.h"
#include "test_support.h"
#include "train_support.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <random>

using namespace corrtrack;
using corrtrack::test::TempDir;
namespace fs = std::filesystem;

namespace {

// A camera panning over a fixed colourful texture (8x8 blocks of random colours): frame k is
// the window at x = 2k, so consecutive frames correspond by a known shift.
Image pan_frame(int k, int w = 64, int h = 48) {
  static const Image canvas = [] {
    std::mt19937 rng(5);
    Image c(256, 48, 3);
    std::vector<uint8_t> colours(32 * 6 * 3);
    for (auto& v : colours) v = uint8_t(rng() % 256);
    for (int y = 0; y < c.height; ++y)
      for (int x = 0; x < c.width; ++x)
        for (int ch = 0; ch < 3; ++ch) c.px(x, y)[ch] = colours[((y / 8) * 32 + x / 8) * 3 + ch];
    return c;
  }();
  Image f(w, h, 3);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int ch = 0; ch < 3; ++ch) f.px(x, y)[ch] = canvas.px((x + 2 * k) % canvas.width, y)[ch];
  return f;
}

std::string write_pan_cache(const std::string& path, int videos = 2, int frames = 24, int width = 64) {
  ClipCacheWriter w(path);
  for (int v = 0; v < videos; ++v) {
    w.begin_video("pan" + std::to_string(v), width, 48);
    for (int k = 0; k < frames; ++k) w.add_frame(pan_frame(k + 7 * v, width));
  }
  w.close();
  return path;
}

std::string read_file(const std::string& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void write_file(const std::string& p, const std::string& bytes) {
  std::ofstream out(p, std::ios::binary);
  out << bytes;
}

}  // namespace

// Property: frames come back from the cache byte for byte, in order, per video.
TEST(ClipCache, RoundTrip) {
  TempDir d;
  const auto path = write_pan_cache(d / "c.ctc", 2, 5);
  ClipCache c(path);
  ASSERT_EQ(c.videos().size(), 2u);
  EXPECT_EQ(c.total_frames(), 10);
  EXPECT_EQ(c.videos()[1].name, "pan1");
  for (int k : {0, 4}) {
    const Image want = pan_frame(k + 7);
    EXPECT_EQ(std::memcmp(c.frame_data(1, k), want.data.data(), want.data.size()), 0) << k;
  }
  auto t = c.frame_tensor(0, 3);
  EXPECT_EQ(t.sizes(), (std::vector<int64_t>{3, 48, 64}));
  EXPECT_NEAR(t[1][10][20].item<float>(), pan_frame(3).px(20, 10)[1] / 255.0f, 1e-6);
  EXPECT_THROW(c.frame_data(0, 5), Error);
}

// Property: damaged caches are refused with an error naming the file; an abandoned writer leaves nothing.
TEST(ClipCache, CorruptAndAbandoned) {
  TempDir d;
  const std::string good = read_file(write_pan_cache(d / "c.ctc", 1, 3));
  auto expect_bad = [&](const std::string& name, const std::string& bytes) {
    write_file(d / name, bytes);
    try {
      ClipCache c(d / name);
      ADD_FAILURE() << name << " was accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(name), std::string::npos) << e.what();
    }
  };
  expect_bad("truncated.ctc", good.substr(0, good.size() - 10));
  expect_bad("head.ctc", good.substr(0, 5000));
  expect_bad("empty.ctc", "");
  expect_bad("text.ctc", std::string(200, 'x'));
  std::string flipped = good;
  flipped[1] = 'X';
  expect_bad("magic.ctc", flipped);
  // An index that claims more frames than the file holds.
  std::string grown = good;
  const auto at = grown.find("\"frames\":3");
  ASSERT_NE(at, std::string::npos);
  grown.replace(at, 10, "\"frames\":9");
  expect_bad("frames.ctc", grown);
  {
    ClipCacheWriter w(d / "abandoned.ctc");
    w.begin_video("v", 64, 48);
    w.add_frame(pan_frame(0));
    EXPECT_THROW(w.add_frame(Image(10, 10, 3)), Error);
  }
  EXPECT_FALSE(fs::exists(d / "abandoned.ctc"));
  for (const auto& e : fs::directory_iterator(d.path())) EXPECT_EQ(e.path().string().find(".tmp-"), std::string::npos);
}

// Property: a clip has the requested frames and size, values in [0, 1]; with no jitter, flip or
// rescale, frame t+2 is frame t shifted by 4 pixels (the pan), proving the offsets are honoured.
TEST(ClipSampler, OffsetsAndCrop) {
  TempDir d;
  // Square 48x48 frames: with min_scale 1 every crop box is the whole frame, so no resampling.
  auto cache = std::make_shared<ClipCache>(write_pan_cache(d / "c.ctc", 1, 24, 48));
  ClipSamplerConfig cfg;
  cfg.crop = 48;
  cfg.min_scale = 1.0;
  cfg.flip = false;
  cfg.jitter = 0.0;
  ClipSampler s(cache, cfg);
  auto gen = at::make_generator<at::CPUGeneratorImpl>(1);
  torch::Generator g(gen);
  for (int i = 0; i < 5; ++i) {
    auto clip = s.sample({0, 2}, g);
    ASSERT_EQ(clip.sizes(), (std::vector<int64_t>{2, 3, 48, 48}));
    EXPECT_GE(clip.min().item<float>(), 0.0f);
    EXPECT_LE(clip.max().item<float>(), 1.0f);
    EXPECT_LT((clip[1].slice(2, 0, 40) - clip[0].slice(2, 4, 44)).abs().max().item<float>(), 1e-6);
  }
  EXPECT_THROW(s.sample({0, 30}, g), Error);
}

namespace {

// A store whose video 0 cannot be read: the sampler must draw past it.
class HalfBrokenStore : public ClipStore {
 public:
  explicit HalfBrokenStore(std::shared_ptr<const ClipStore> inner) : m_inner(std::move(inner)) {}
  const std::vector<ClipVideo>& videos() const override { return m_inner->videos(); }
  const std::string& path() const override { return m_inner->path(); }
  std::string kind() const override { return "test"; }
  void read(size_t video, const std::vector<int64_t>& frames, const PixelRect& rect, std::vector<Image>& out) const override {
    if (video == 0) throw Error("video 0 is broken");
    m_inner->read(video, frames, rect, out);
  }
 private:
  std::shared_ptr<const ClipStore> m_inner;
};

}  // namespace

// Property: a batch depends only on (seed, step, rank, clip): the same with 0, 1 or 3 workers,
// in any order of requests (a jump back restarts the workers), different on another rank.
TEST(ClipLoader, SameBatchesForAnyWorkerCount) {
  TempDir d;
  auto cache = std::make_shared<ClipCache>(write_pan_cache(d / "c.ctc", 3, 24));
  ClipSamplerConfig sc;
  sc.crop = 32;
  const ClipOffsets gaps{{{0, 2}, {0, 5}, {0, 8}}, {0.4, 0.4, 0.2}};
  std::vector<torch::Tensor> want;
  ClipLoader sync(ClipSampler(cache, sc), 7, ClipLoaderConfig{0, 2});
  for (int64_t s = 0; s < 4; ++s) want.push_back(sync.batch(s, 0, 5, gaps, torch::kCPU));
  ASSERT_EQ(want[0].sizes(), (std::vector<int64_t>{5, 2, 3, 32, 32}));
  EXPECT_FALSE(torch::equal(want[0], want[1]));
  for (int workers : {1, 3}) {
    ClipLoader loader(ClipSampler(cache, sc), 7, ClipLoaderConfig{workers, 2});
    for (int64_t s = 0; s < 4; ++s) EXPECT_TRUE(torch::equal(loader.batch(s, 0, 5, gaps, torch::kCPU), want[size_t(s)])) << workers << " " << s;
    EXPECT_TRUE(torch::equal(loader.batch(1, 0, 5, gaps, torch::kCPU), want[1])) << workers;
    EXPECT_FALSE(torch::equal(loader.batch(2, 1, 5, gaps, torch::kCPU), want[2])) << workers;
    EXPECT_EQ(loader.stats().clips, 30);
  }
  // The gap choices follow their weights: over 400 clips about 40 % / 40 % / 20 %.
  auto gen = at::make_generator<at::CPUGeneratorImpl>(3);
  torch::Generator g(gen);
  std::map<int, int> count;
  ClipSampler s(cache, sc);
  for (int i = 0; i < 400; ++i) ++count[s.draw(gaps, g).offsets[1]];
  EXPECT_NEAR(count[2] / 400.0, 0.4, 0.08);
  EXPECT_NEAR(count[5] / 400.0, 0.4, 0.08);
  EXPECT_NEAR(count[8] / 400.0, 0.2, 0.06);
}

// Property: an unreadable video is drawn past (counted), with and without workers; when nothing
// is readable the batch fails with an error naming the store.
TEST(ClipLoader, UnreadableVideosAreRedrawn) {
  TempDir d;
  auto cache = std::make_shared<ClipCache>(write_pan_cache(d / "c.ctc", 2, 24));
  ClipSamplerConfig sc;
  sc.crop = 32;
  for (int workers : {0, 2}) {
    ClipLoader loader(ClipSampler(std::make_shared<HalfBrokenStore>(cache), sc), 1, ClipLoaderConfig{workers, 2});
    for (int64_t s = 0; s < 3; ++s) EXPECT_EQ(loader.batch(s, 0, 8, ClipOffsets::fixed({0, 4}), torch::kCPU).size(0), 8);
    EXPECT_GT(loader.stats().failed_reads, 0) << workers;
  }
  auto one = std::make_shared<ClipCache>(write_pan_cache(d / "one.ctc", 1, 24));
  ClipLoader broken(ClipSampler(std::make_shared<HalfBrokenStore>(one), sc), 1, ClipLoaderConfig{2, 2});
  try {
    broken.batch(0, 0, 2, ClipOffsets::fixed({0, 4}), torch::kCPU);
    ADD_FAILURE() << "a batch from nothing readable";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("one.ctc"), std::string::npos) << e.what();
  }
}

namespace {

// Mean loss of the first and last `n` steps of a short run.
std::pair<double, double> loss_trend(const std::string& method, const std::string& cache_path, int crop, int steps, int n,
                                     const std::function<void(VideoMethodConfig&)>& tweak = {}, bool bf16 = false,
                                     std::vector<double>* all = nullptr) {
  TempDir d;
  auto cache = std::make_shared<ClipCache>(cache_path);
  VideoMethodConfig cfg;
  cfg.method = method;
  cfg.batch = 4;
  cfg.sampler.crop = crop;
  cfg.sampler.jitter = 0.0;
  if (tweak) tweak(cfg);
  cfg.total_steps = steps;
  auto m = video_method_create(cfg, cache);
  const std::vector<double> losses = corrtrack::test::train_losses(*m, d / "run", steps, 1e-3, bf16);
  EXPECT_EQ(int(losses.size()), steps);
  if (all) *all = losses;
  double a = 0, b = 0;
  for (int i = 0; i < n; ++i) {
    a += losses[size_t(i)];
    b += losses[losses.size() - 1 - size_t(i)];
  }
  return {a / n, b / n};
}

// The bundled CC0 street clip as a clip cache at 96 pixels in `dir`; returns its path.
std::string city_cache(const std::string& dir) {
  ClipCacheBuildOptions o;
  o.short_side = 96;
  const std::string path = dir + "/city.ctc";
  clip_cache_build({std::string(CORRTRACK_TEST_SOURCE_DIR) + "/assets/sample/city.mp4"}, path, o);
  return path;
}

}  // namespace

// Property: MAST's reconstruction loss falls within 80 steps on real video (the bundled CC0
// street clip at 96 pixels). Its chroma copy needs natural colour statistics: on the random-block
// pan scene 60 steps are not enough for the features to start separating blocks.
TEST(VideoMethods, MastLossFalls) {
  if (!video_support_available()) GTEST_SKIP() << "built without video support";
  TempDir d;
  const std::string city = city_cache(d.path());
  const auto [first, last] = loss_trend("mast", city, 48, 80, 20);
  EXPECT_LT(last, 0.9 * first) << "first " << first << " last " << last;
}

// Property: with the encoder in bfloat16 (train --precision bf16) MAST learns as in float32: the
// first step (same weights, same batch) has the float32 loss to bf16 precision, and the loss falls
// as much over the same 80 steps of the same clip.
TEST(VideoMethods, MastLossFallsInBf16) {
  if (!video_support_available()) GTEST_SKIP() << "built without video support";
  TempDir d;
  const std::string city = city_cache(d.path());
  std::vector<double> f32, bf16;
  loss_trend("mast", city, 48, 1, 1, {}, false, &f32);
  const auto [first, last] = loss_trend("mast", city, 48, 80, 20, {}, true, &bf16);
  ASSERT_FALSE(f32.empty());
  ASSERT_FALSE(bf16.empty());
  EXPECT_NE(bf16[0], f32[0]) << "identical to float32: the encoder did not run in bf16";
  EXPECT_NEAR(bf16[0], f32[0], 0.02 * f32[0]);
  EXPECT_LT(last, 0.9 * first) << "first " << first << " last " << last;
}

// Property: one seed gives one run, bit for bit, whatever state the process's global generator is
// in (LibTorch seeds it nondeterministically): every parameter at creation and the first steps'
// losses are identical (issue 19 item 10: the head's bias used to come from that generator).
TEST(VideoMethods, SameSeedSameRunBitForBit) {
  TempDir d;
  const std::string cache_path = write_pan_cache(d / "c.ctc", 2, 24);
  for (const std::string method : {"mast", "corrflow", "timecycle"}) {
    std::vector<std::vector<double>> losses;
    std::vector<std::vector<torch::Tensor>> params;
    for (uint64_t global : {1ull, 987654321ull}) {
      torch::manual_seed(global);
      VideoMethodConfig cfg;
      cfg.method = method;
      cfg.batch = 2;
      cfg.sampler.crop = method == "timecycle" ? 64 : 32;
      cfg.backbone_depth = 18;   // timecycle, small enough for a test
      cfg.patch = 32;
      cfg.total_steps = 2;
      auto m = video_method_create(cfg, std::make_shared<ClipCache>(cache_path));
      params.emplace_back();
      for (const auto& p : m->module().parameters()) params.back().push_back(p.detach().clone());
      losses.push_back(corrtrack::test::train_losses(*m, d / (method + std::to_string(global)), 2, 1e-3));
    }
    ASSERT_EQ(params[0].size(), params[1].size());
    for (size_t i = 0; i < params[0].size(); ++i) EXPECT_TRUE(torch::equal(params[0][i], params[1][i])) << method << " parameter " << i;
    EXPECT_EQ(losses[0], losses[1]) << method;
  }
}

// Property: CorrFlow's colour-copy loss falls on a panning scene.
TEST(VideoMethods, CorrFlowLossFalls) {
  TempDir d;
  const auto [first, last] = loss_trend("corrflow", write_pan_cache(d / "c.ctc", 2, 24), 32, 30, 6);
  EXPECT_LT(last, 0.9 * first) << "first " << first << " last " << last;
}

// Property: a training checkpoint is a feature extractor (stride 4, 64-d, L2-normalised) and its
// float16 export gives the same features to float16 precision.
TEST(VideoMethods, CheckpointAndHalfExportAsFeatures) {
  TempDir d;
  auto cache = std::make_shared<ClipCache>(write_pan_cache(d / "c.ctc", 1, 24));
  VideoMethodConfig cfg;
  cfg.batch = 2;
  cfg.sampler.crop = 32;
  auto m = video_method_create(cfg, cache);
  TrainOptions o;
  o.out_dir = d / "run";
  o.steps = 2;
  o.progress = [](const ProgressInfo&) {};
  train_run(*m, OptimizerConfig{}, LrSchedule{}, o);
  auto full = feature_extractor_load(d / "run/last.ckpt");
  EXPECT_EQ(full->stride(), 4);
  EXPECT_EQ(full->name(), "mast");
  auto f = full->extract(pan_frame(3));
  EXPECT_EQ(f.sizes(), (std::vector<int64_t>{64, 12, 16}));
  EXPECT_NEAR(f.pow(2).sum(0).mean().item<double>(), 1.0, 1e-4);
  feature_encoder_export(d / "run/last.ckpt", d / "model.ckpt", /*half=*/true);
  EXPECT_LT(fs::file_size(d / "model.ckpt"), fs::file_size(d / "run/last.ckpt") / 4);
  auto half = feature_extractor_load(d / "model.ckpt");
  auto fh = half->extract(pan_frame(3));
  EXPECT_LT((fh - f).abs().max().item<double>(), 2e-2);
  EXPECT_GT((fh * f).sum(0).min().item<double>(), 0.999);  // cosine similarity per cell
}

// Property: with batch norm frozen (train --freeze-bn) a run leaves every running statistic as it
// was and still trains the weights, batch norm's scale and shift included; without it the
// statistics move.
TEST(VideoMethods, FrozenBatchNormKeepsItsStatistics) {
  TempDir d;
  auto cache = std::make_shared<ClipCache>(write_pan_cache(d / "c.ctc", 1, 24));
  for (const bool freeze : {true, false}) {
    VideoMethodConfig cfg;
    cfg.batch = 2;
    cfg.sampler.crop = 32;
    auto m = video_method_create(cfg, cache);
    auto snapshot = [&] {
      std::map<std::string, torch::Tensor> out;
      for (const auto& b : m->module().named_buffers()) out[b.key()] = b.value().detach().clone();
      for (const auto& p : m->module().named_parameters()) out[p.key()] = p.value().detach().clone();
      return out;
    };
    const auto before = snapshot();
    TrainOptions o;
    o.out_dir = d / (freeze ? "frozen" : "free");
    o.steps = 2;
    o.freeze_batch_norm = freeze;
    o.progress = [](const ProgressInfo&) {};
    train_run(*m, OptimizerConfig{}, LrSchedule{}, o);
    const auto after = snapshot();
    int stats = 0, bn_params = 0;
    for (const auto& [name, value] : before) {
      const bool stat = name.find("running_") != std::string::npos || name.find("num_batches_tracked") != std::string::npos;
      const bool bn_param = (name.find("bn") != std::string::npos) && !stat;
      stats += stat;
      bn_params += bn_param;
      if (stat) EXPECT_EQ(torch::equal(after.at(name), value), freeze) << name << (freeze ? " moved while frozen" : " did not move");
      if (bn_param && name.find("weight") != std::string::npos) EXPECT_FALSE(torch::equal(after.at(name), value)) << name << " did not train";
    }
    EXPECT_GT(stats, 20);
    EXPECT_GT(bn_params, 20);
    EXPECT_EQ(checkpoint_info_read(d / (freeze ? "frozen/last.ckpt" : "free/last.ckpt")).record.value("batch_norm", "trained"),
              freeze ? "frozen" : "trained");
  }
}

// Property: an unknown method and a too-short cache are clear errors.
TEST(VideoMethods, BadInput) {
  TempDir d;
  auto cache = std::make_shared<ClipCache>(write_pan_cache(d / "c.ctc", 1, 6));
  VideoMethodConfig cfg;
  cfg.method = "timecycle-ish";
  EXPECT_THROW(video_method_create(cfg, cache), Error);
  cfg.method = "corrflow";  // needs 9 frames per clip
  cfg.sampler.crop = 32;
  auto m = video_method_create(cfg, cache);
  auto gen = at::make_generator<at::CPUGeneratorImpl>(1);
  torch::Generator g(gen);
  try {
    m->step(0, g);
    FAIL() << "expected a too-short error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("shorter"), std::string::npos) << e.what();
  }
}

// ---------------------------------------------------------------------------------------------
// CRW and TimeCycle
// ---------------------------------------------------------------------------------------------

// Property: TimeCycle's localiser puts a patch cut out of the frame's own features back where it
// was cut (the least-squares affine map of the soft-argmax positions), at 512 channels and the
// published temperature 1/sqrt(512).
TEST(TimeCycle, LocaliserFindsPlantedPatch) {
  torch::manual_seed(11);
  auto frame = torch::randn({2, 512, 30, 30});
  frame = frame / frame.norm(2, 1, true);
  // Batch 0: 10x10 cells at rows 12..21, columns 5..14; batch 1: 10x10 at rows 0..9, columns 20..29.
  auto patch = torch::stack({frame[0].slice(1, 12, 22).slice(2, 5, 15), frame[1].slice(1, 0, 10).slice(2, 20, 30)});
  auto loc = affine_localize(patch, frame, std::sqrt(512.0));
  ASSERT_EQ(loc.theta.sizes(), (std::vector<int64_t>{2, 2, 3}));
  ASSERT_EQ(loc.affinity.sizes(), (std::vector<int64_t>{2, 100, 900}));
  // x' = (10/30) x + tx with tx = (2 * x0 + 10) / 30 - 1 (cell-centre convention of affine_grid).
  const double s = 10.0 / 30.0;
  const double want[2][2][3] = {{{s, 0, 20.0 / 30 - 1}, {0, s, 34.0 / 30 - 1}}, {{s, 0, 50.0 / 30 - 1}, {0, s, 10.0 / 30 - 1}}};
  for (int b = 0; b < 2; ++b)
    for (int r = 0; r < 2; ++r)
      for (int c = 0; c < 3; ++c) EXPECT_NEAR(loc.theta[b][r][c].item<double>(), want[b][r][c], 1e-3) << b << r << c;
  // Reading the frame at theta gives the patch back.
  auto grid = torch::nn::functional::affine_grid(loc.theta, {2, 512, 10, 10}, false);
  auto read = torch::nn::functional::grid_sample(frame, grid, torch::nn::functional::GridSampleFuncOptions().align_corners(false));
  EXPECT_LT((read - patch).abs().max().item<double>(), 1e-2);
}

namespace {

// One training step's loss, then the gradient norms of the named parameter groups.
std::map<std::string, double> step_gradients(TrainableMethod& m) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(3);
  torch::Generator g(gen);
  m.module().zero_grad();
  auto out = m.step(0, g);
  EXPECT_TRUE(std::isfinite(out.loss.item<double>()));
  out.loss.backward();
  std::map<std::string, double> norms;
  for (const auto& p : m.module().named_parameters()) {
    const std::string group = p.key().substr(0, p.key().find('.'));
    if (p.value().grad().defined()) norms[group] += p.value().grad().pow(2).sum().item<double>();
  }
  return norms;
}

}  // namespace

// Property: gradients reach the encoder and the head through the walk, with patch and dense nodes;
// the walk loss of a fresh network lies between 0 and log N.
TEST(Crw, StepShapesAndGradients) {
  TempDir d;
  auto cache = std::make_shared<ClipCache>(write_pan_cache(d / "c.ctc", 2, 24));
  for (const std::string nodes : {"patch", "dense"}) {
    VideoMethodConfig cfg;
    cfg.method = "crw";
    cfg.batch = 2;
    cfg.frame_gap = 2;
    cfg.nodes = nodes;
    cfg.sampler.crop = nodes == "patch" ? 128 : 64;
    auto m = video_method_create(cfg, cache);
    auto gen = at::make_generator<at::CPUGeneratorImpl>(3);
    torch::Generator g(gen);
    auto out = m->step(0, g);
    const double n = nodes == "patch" ? 9.0 : 64.0;  // 3x3 patches of 64 at stride 32 on 128; 8x8 cells on 64
    std::map<std::string, double> metrics(out.metrics.begin(), out.metrics.end());
    EXPECT_EQ(metrics["nodes"], n);
    EXPECT_GT(out.loss.item<double>(), 0.0);
    EXPECT_LT(out.loss.item<double>(), std::log(n) + 1e-4);
    auto grads = step_gradients(*m);
    EXPECT_GT(grads["encoder"], 0.0) << nodes;
    EXPECT_GT(grads["head"], 0.0) << nodes;
  }
}

// Property: the walk learns the pan: its loss falls within 30 steps (dense nodes, 64-pixel crops).
TEST(Crw, LossFalls) {
  TempDir d;
  const auto [first, last] = loss_trend("crw", write_pan_cache(d / "c.ctc", 2, 24), 64, 30, 6, [](VideoMethodConfig& c) {
    c.nodes = "dense";
    c.frame_gap = 2;
    c.edge_dropout = 0.0;
  });
  EXPECT_LT(last, 0.8 * first) << "first " << first << " last " << last;
}

// Property: each TimeCycle term alone sends gradient to the encoder and to the transform
// correction (the correction's output layer starts at zero, so its convolutions get gradient only
// after the first update).
TEST(TimeCycle, EveryLossTermHasGradient) {
  TempDir d;
  auto cache = std::make_shared<ClipCache>(write_pan_cache(d / "c.ctc", 2, 24));
  struct Weights { double align, inlier, skip; };
  for (const Weights w : {Weights{1, 0, 0}, Weights{0, 1, 0}, Weights{0, 0, 1}}) {
    VideoMethodConfig cfg;
    cfg.method = "timecycle";
    cfg.batch = 2;
    cfg.backbone_depth = 18;
    cfg.sampler.crop = 64;
    cfg.patch = 32;
    cfg.align_weight = w.align;
    cfg.inlier_weight = w.inlier;
    cfg.skip_weight = w.skip;
    auto m = video_method_create(cfg, cache);
    auto grads = step_gradients(*m);
    EXPECT_GT(grads["encoder"], 0.0) << w.align << w.inlier << w.skip;
    EXPECT_GT(grads["correction"], 0.0) << w.align << w.inlier << w.skip;
  }
}

// Property: CRW checkpoints propagate with the res3 features (stride 8, 256 channels, head
// dropped); TimeCycle's with its 512-d stride-8 features and its own protocol recommended.
TEST(CycleMethods, CheckpointsAreFeatureExtractors) {
  TempDir d;
  auto cache = std::make_shared<ClipCache>(write_pan_cache(d / "c.ctc", 1, 24));
  for (const std::string method : {"crw", "timecycle"}) {
    VideoMethodConfig cfg;
    cfg.method = method;
    cfg.batch = 1;
    cfg.nodes = "dense";
    cfg.backbone_depth = 18;
    cfg.sampler.crop = 64;
    cfg.patch = 32;
    auto m = video_method_create(cfg, cache);
    TrainOptions o;
    o.out_dir = d / method;
    o.steps = 1;
    o.progress = [](const ProgressInfo&) {};
    train_run(*m, OptimizerConfig{}, LrSchedule{}, o);
    const std::string ckpt = d / method + "/last.ckpt";
    auto f = feature_extractor_load(ckpt);
    EXPECT_EQ(f->stride(), 8);
    EXPECT_EQ(f->name(), method);
    auto x = f->extract(pan_frame(2));
    EXPECT_EQ(x.sizes(), (std::vector<int64_t>{method == "crw" ? 256 : 512, 6, 8}));
    EXPECT_NEAR(x.pow(2).sum(0).mean().item<double>(), 1.0, 1e-4);
    auto meta = nlohmann::json::parse(checkpoint_metadata(ckpt));
    if (method == "timecycle") {
      EXPECT_EQ(meta["propagation"]["context"], 8);
      EXPECT_EQ(meta["propagation"]["topk"], 5);
    } else {
      EXPECT_FALSE(meta.contains("propagation"));
    }
  }
}

// Property: settings the cycle methods cannot use are refused with the option's name.
TEST(CycleMethods, BadSettings) {
  TempDir d;
  auto cache = std::make_shared<ClipCache>(write_pan_cache(d / "c.ctc", 1, 24));
  auto expect_error = [&](VideoMethodConfig cfg, const std::string& needle) {
    try {
      video_method_create(cfg, cache);
      ADD_FAILURE() << "expected an error mentioning " << needle;
    } catch (const SettingError& e) {
      EXPECT_EQ(e.setting(), needle) << e.what();
    }
  };
  VideoMethodConfig crw;
  crw.method = "crw";
  crw.sampler.crop = 128;
  auto c = crw;
  c.nodes = "pixels";
  expect_error(c, "nodes");
  c = crw;
  c.sampler.crop = 32;
  expect_error(c, "crop");
  c = crw;
  c.edge_dropout = 1.0;
  expect_error(c, "edge-dropout");
  VideoMethodConfig tc;
  tc.method = "timecycle";
  tc.sampler.crop = 128;
  tc.backbone_depth = 34;
  expect_error(tc, "backbone");
  tc.backbone_depth = 18;
  tc.patch = 128;
  expect_error(tc, "patch");
  tc.patch = 80;
  tc.clip_frames = 1;
  expect_error(tc, "clip-frames");
}

// Property: each method's recipe holds its paper's settings (docs/protocols.md): video methods
// with the published batch on CUDA and 4 clips on the CPU; image methods with their optimiser,
// rate per 256 images, weight decay, temperature and momentum, a 5 % warm-up and a cosine decay.
TEST(TrainingRecipe, PublishedSettingsPerMethod) {
  const TrainingRecipe crw = training_recipe("crw", true);
  EXPECT_EQ(crw.lr.value_or(0), 1e-4);
  EXPECT_EQ(crw.batch.value_or(0), 20);
  EXPECT_EQ(crw.crop.value_or(0), 256);
  EXPECT_EQ(crw.min_scale.value_or(0), 0.8);
  EXPECT_EQ(training_recipe("crw", false).batch.value_or(0), 4);
  const TrainingRecipe tc = training_recipe("timecycle", true);
  EXPECT_EQ(tc.lr.value_or(0), 2e-4);
  EXPECT_EQ(tc.beta1.value_or(0), 0.5);
  EXPECT_EQ(tc.optimizer.value_or(""), "adam");   // so that another --optimizer drops its rate and beta1
  EXPECT_EQ(tc.clip_grad.value_or(0), 10.0);
  EXPECT_EQ(tc.batch.value_or(0), 36);
  EXPECT_EQ(tc.crop.value_or(0), 240);
  const TrainingRecipe corrflow = training_recipe("corrflow", true);
  EXPECT_EQ(corrflow.lr.value_or(0), 2e-4);
  EXPECT_EQ(corrflow.batch.value_or(0), 6);
  // MAST halves the lr at 0.4M/0.6M/0.8M/1M samples: steps of the batch in use.
  const TrainingRecipe mast = training_recipe("mast", true);
  EXPECT_EQ(mast.schedule.value_or(""), "step");
  EXPECT_EQ(mast.milestones, (std::vector<int64_t>{33333, 50000, 66666, 83333}));
  EXPECT_EQ(mast.gamma.value_or(0), 0.5);
  EXPECT_EQ(training_recipe("mast", false).milestones, (std::vector<int64_t>{100000, 150000, 200000, 250000}));
  const TrainingRecipe simclr = training_recipe("simclr", false);
  EXPECT_EQ(simclr.optimizer.value_or(""), "lars");
  EXPECT_EQ(simclr.lr.value_or(0), 0.4);
  EXPECT_EQ(simclr.lars_eta.value_or(0), 0.02);
  EXPECT_TRUE(simclr.lars_clip.value_or(false));
  EXPECT_EQ(simclr.weight_decay.value_or(0), 1e-4);
  EXPECT_EQ(simclr.temperature.value_or(0), 0.2);   // the recipe's, not the method's default 0.5
  EXPECT_TRUE(training_recipe_to_json(simclr)["lars_clip"].get<bool>());
  EXPECT_FALSE(training_recipe("byol", false).lars_clip.has_value());
  EXPECT_EQ(simclr.schedule.value_or(""), "cosine");
  EXPECT_EQ(simclr.warmup_fraction.value_or(0), 0.05);
  const TrainingRecipe moco = training_recipe("moco", false);
  EXPECT_EQ(moco.optimizer.value_or(""), "sgd");
  EXPECT_EQ(moco.lr.value_or(0), 0.03);
  EXPECT_EQ(moco.weight_decay.value_or(0), 1e-4);
  EXPECT_EQ(moco.temperature.value_or(0), 0.2);
  const TrainingRecipe byol = training_recipe("byol", true);
  EXPECT_EQ(byol.ema.value_or(0), 0.99);
  EXPECT_EQ(byol.lars_eta.value_or(0), 0.02);
  EXPECT_EQ(training_recipe_to_json(byol)["lars_eta"].get<double>(), 0.02);
  EXPECT_EQ(training_recipe("swav", false).lars_eta.value_or(0), 0.02);
  EXPECT_EQ(training_recipe("npid", false).temperature.value_or(0), 0.07);
  EXPECT_EQ(training_recipe("iic", false).optimizer.value_or(""), "adam");
  for (const auto& m : image_method_names()) {
    const TrainingRecipe r = training_recipe(m, false);
    EXPECT_FALSE(r.source.empty()) << m;
    EXPECT_EQ(r.batch.value_or(0), 256) << m;
    EXPECT_TRUE(r.optimizer && r.lr && *r.lr > 0) << m;
  }
  EXPECT_EQ(training_recipe_to_json(crw)["lr"].get<double>(), 1e-4);
}
