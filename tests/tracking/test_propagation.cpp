// Propagation engine: the local-window affinity equals the dense masked one, masks follow
// moving objects, anchors work forward and backward, bad anchors are refused, checkpoints load.
#include "test_support.h"

#include "corrtrack/encoder_average.h"
#include "corrtrack/tracking.h"

#include <algorithm>
#include <fstream>
#include <map>

using namespace corrtrack;

namespace {

// In-memory frames: coloured squares moving right on a textured background.
class SquaresSource : public FrameSource {
 public:
  SquaresSource(int n, int w, int h, int objects, int jump_at = -1, int jump = 0)
      : m_n(n), m_w(w), m_h(h), m_objects(objects), m_jump_at(jump_at), m_jump(jump) {}
  int64_t size() override { return m_n; }
  Image frame(int64_t k) override {
    Image img(m_w, m_h, 3);
    for (int y = 0; y < m_h; ++y)
      for (int x = 0; x < m_w; ++x) {
        uint8_t* p = img.px(x, y);
        const bool check = ((x / 6) + (y / 6)) % 2;
        p[0] = check ? 90 : 60; p[1] = check ? 110 : 70; p[2] = check ? 80 : 100;
      }
    const Image m = truth(k);
    for (int y = 0; y < m_h; ++y)
      for (int x = 0; x < m_w; ++x) {
        const uint8_t v = m.data[size_t(y) * m_w + x];
        if (v == 1) { uint8_t* p = img.px(x, y); p[0] = 240; p[1] = 30; p[2] = 30; }
        if (v == 2) { uint8_t* p = img.px(x, y); p[0] = 30; p[1] = 220; p[2] = 240; }
      }
    return img;
  }
  // True object mask of frame k: object 1 moves right 2 px/frame, object 2 moves left.
  Image truth(int64_t k) const {
    Image m(m_w, m_h, 1, 0);
    auto box = [&](int x0, int y0, int s, uint8_t id) {
      for (int y = y0; y < y0 + s; ++y) for (int x = x0; x < x0 + s; ++x) if (x >= 0 && y >= 0 && x < m_w && y < m_h) m.data[size_t(y) * m_w + x] = id;
    };
    // 40 px objects: 5 feature cells at stride 8, so stride quantisation stays small.
    // From frame jump_at on, both objects are `jump` pixels further along (a cut-like jump).
    const int extra = (m_jump_at >= 0 && k >= m_jump_at) ? m_jump : 0;
    if (k < m_hide_from || k >= m_hide_to) box(10 + 2 * static_cast<int>(k) + extra, 12, 40, 1);
    if (m_objects > 1) box(m_w - 56 - 2 * static_cast<int>(k) - extra, m_h - 52, 40, 2);
    return m;
  }
  // Object 1 is hidden (not drawn, absent from the truth) in frames [from, to): an occlusion.
  void hide(int from, int to) { m_hide_from = from; m_hide_to = to; }
  bool next(Image& out) override { if (m_pos >= m_n) return false; out = frame(m_pos++); return true; }
  std::vector<double> timestamps() override { return std::vector<double>(size_t(m_n), 0.0); }
  std::string frame_name(int64_t k) override { return std::to_string(k); }
  VideoInfo info() override { VideoInfo v; v.width = m_w; v.height = m_h; v.frame_count = m_n; return v; }
  const std::string& path() const override { return m_path; }
 private:
  int m_n, m_w, m_h, m_objects, m_jump_at, m_jump;
  int m_hide_from = -1, m_hide_to = -1;
  int64_t m_pos = 0;
  std::string m_path = "squares";
};

double iou_of(const Image& a, const Image& b, int id) {
  int inter = 0, uni = 0;
  for (size_t i = 0; i < a.data.size(); ++i) {
    const bool x = a.data[i] == id, y = b.data[i] == id;
    inter += x && y;
    uni += x || y;
  }
  return uni ? double(inter) / uni : 1.0;
}

// Every mask of `src` propagated from its frame-0 truth with `cfg`, by frame (all frames expected).
std::map<int64_t, Image> propagate_all(SquaresSource& src, FeatureExtractor& feats, const PropagationConfig& cfg) {
  LabelPropagator prop(feats, cfg);
  std::map<int64_t, Image> out;
  prop.run(src, {Anchor{0, src.truth(0)}}, [&](int64_t k, const Image& m, const Image&) { out[k] = m; });
  EXPECT_EQ(static_cast<int64_t>(out.size()), src.size());
  return out;
}

// The soft masks' contract, for a configuration (Propagation.SoftMasksAgreeWithTheHardOnes).
void soft_masks_agree_with_the_hard_ones(const PropagationConfig& cfg) {
  SquaresSource src(8, 160, 128, 2);
  auto feats = feature_extractor_create("pixels");
  const auto plain = propagate_all(src, *feats, cfg);
  LabelPropagator prop(*feats, cfg);
  std::map<int64_t, std::vector<Image>> soft;
  std::map<int64_t, Image> hard;
  prop.set_soft_sink([&](int64_t k, const std::vector<Image>& objects) { soft[k] = objects; });
  prop.run(src, {Anchor{0, src.truth(0)}}, [&](int64_t k, const Image& m, const Image&) {
    hard[k] = m;
    EXPECT_EQ(soft.count(k), 1u) << "the soft masks of frame " << k << " come before its mask";
  });
  ASSERT_EQ(soft.size(), 8u);
  for (const auto& [k, m] : hard) EXPECT_TRUE(m == plain.at(k)) << "frame " << k;
  const Image truth0 = src.truth(0);
  for (size_t i = 0; i < truth0.data.size(); ++i) {
    for (int l = 1; l <= 2; ++l) ASSERT_EQ(soft[0][size_t(l - 1)].data[i], truth0.data[i] == l ? 255 : 0);
  }
  int64_t disagree = 0, partial = 0, pixels = 0;
  for (int64_t k = 1; k < 8; ++k) {
    ASSERT_EQ(soft[k].size(), 2u);
    for (size_t i = 0; i < hard[k].data.size(); ++i) {
      const int p1 = soft[k][0].data[i], p2 = soft[k][1].data[i], bg = 255 - p1 - p2;
      ASSERT_GE(bg, -2) << "objects' probabilities sum above 1 at frame " << k;
      const int best = std::max({bg, p1, p2});
      const int label = hard[k].data[i];
      const int mine = label == 0 ? bg : label == 1 ? p1 : p2;
      disagree += mine < best - 1 ? 1 : 0;   // one step of rounding either way
      partial += (p1 > 0 && p1 < 255) ? 1 : 0;
      ++pixels;
    }
  }
  EXPECT_EQ(disagree, 0);
  EXPECT_GT(partial, 0) << "propagated frames have soft edges";
  EXPECT_LT(partial, pixels / 2);
}


}  // namespace

TEST(Affinity, LocalWindowEqualsDenseMasked) {
  torch::manual_seed(11);
  auto q = torch::randn({8, 13, 19});
  auto k = torch::randn({8, 13, 19});
  for (int tile : {1, 3, 4, 8}) {
    for (double radius : {1.0, 2.5, 4.0}) {
      auto [dv, di] = affinity_topk(q, k, 5, radius, /*local_window=*/false);
      auto [lv, li] = affinity_topk(q, k, 5, radius, /*local_window=*/true, tile);
      // Radius 1 keeps one key (the same cell); the rest of the top-5 are -inf in both.
      EXPECT_TRUE(torch::equal(torch::isinf(dv), torch::isinf(lv))) << "tile " << tile << " radius " << radius;
      auto finite = torch::isfinite(dv);
      EXPECT_LT((dv.masked_select(finite) - lv.masked_select(finite)).abs().max().item<double>(), 1e-5);
      EXPECT_TRUE(torch::equal(di.masked_select(finite), li.masked_select(finite))) << "tile " << tile << " radius " << radius;
    }
  }
}

TEST(Affinity, RadiusIsStrictAndCircular) {
  // Identical one-hot-ish features: key j scores 1 only at the query's own cell; the number of
  // finite entries per query equals the count of cells with distance < radius.
  auto f = torch::ones({1, 9, 9});
  auto [v, i] = affinity_topk(f, f, 81, 2.0, true, 4);
  const int64_t centre = 4 * 9 + 4;
  // Offsets with dx^2+dy^2 < 4: 0,(±1,0),(0,±1),(±1,±1) = 9 cells.
  EXPECT_EQ(torch::isfinite(v[centre]).sum().item<int64_t>(), 9);
  // Corner (0,0): offsets (0,0),(1,0),(0,1),(1,1) = 4 cells.
  EXPECT_EQ(torch::isfinite(v[0]).sum().item<int64_t>(), 4);
}

TEST(Propagation, FollowsTwoMovingObjects) {
  SquaresSource src(12, 160, 128, 2);
  auto feats = feature_extractor_create("pixels");
  LabelPropagator prop(*feats, PropagationConfig{});
  std::map<int64_t, Image> out;
  auto r = prop.run(src, {Anchor{0, src.truth(0)}}, [&](int64_t k, const Image& m, const Image&) { out[k] = m; });
  EXPECT_EQ(r.frames, 12);
  ASSERT_EQ(out.size(), 12u);
  EXPECT_TRUE(out[0] == src.truth(0));
  for (int64_t k : {1, 6, 11}) {
    EXPECT_GT(iou_of(out[k], src.truth(k), 1), 0.8) << "frame " << k;
    EXPECT_GT(iou_of(out[k], src.truth(k), 2), 0.8) << "frame " << k;
  }
}

// What the edge refinement is for: at half resolution (16-pixel cells) the squares' masks
// leave the grid with their corners rounded and edges off by up to a cell; the guided filter,
// with the frame's colours as guide, puts them back on the squares' edges (mean IoU of both
// objects over frames 1-11 measured 0.63 without, 0.84 with radius 8).
TEST(Propagation, RefineMovesMaskEdgesOntoTheObjects) {
  SquaresSource src(12, 160, 128, 2);
  auto feats = feature_extractor_create("pixels");
  PropagationConfig cfg;
  cfg.scale = 0.5;
  auto mean_iou = [&](const std::map<int64_t, Image>& masks) {
    double sum = 0;
    for (int64_t k = 1; k < 12; ++k) sum += iou_of(masks.at(k), src.truth(k), 1) + iou_of(masks.at(k), src.truth(k), 2);
    return sum / 22;
  };
  const double plain = mean_iou(propagate_all(src, *feats, cfg));
  cfg.refine_radius = 8;
  const double refined = mean_iou(propagate_all(src, *feats, cfg));
  EXPECT_GT(refined, plain + 0.15);
  EXPECT_GT(refined, 0.8);
}

// The bfloat16 encoder and products (--precision bf16) follow the objects as float32 does: the
// masks of the random encoder agree on at least 98 % of the pixels of every frame, in the CRW
// context and in MAST's memory (top-k and the full softmax).
TEST(Propagation, BFloat16KeepsTheMasks) {
  SquaresSource src(8, 160, 128, 2);
  auto exact = feature_extractor_create("random", 1, torch::kCPU, Precision::Float32);
  auto fast = feature_extractor_create("random", 1, torch::kCPU, Precision::BFloat16);
  PropagationConfig crw, mast, mast_all;
  mast.mode = mast_all.mode = PropagationMode::Mast;
  mast.radius = mast_all.radius = 6;
  mast_all.topk = 0;
  for (const auto& cfg : {crw, mast, mast_all}) {
    const auto want = propagate_all(src, *exact, cfg);
    const auto got = propagate_all(src, *fast, cfg);
    ASSERT_EQ(got.size(), want.size());
    for (const auto& [k, m] : want) {
      int64_t same = 0;
      for (size_t i = 0; i < m.data.size(); ++i) same += m.data[i] == got.at(k).data[i] ? 1 : 0;
      EXPECT_GT(double(same) / double(m.data.size()), 0.98)
          << propagation_mode_name(cfg.mode) << " top-k " << cfg.topk << ", frame " << k;
    }
  }
}

// Soft masks agree with the hard ones: each pixel's probabilities (background = 255 - the
// objects') have their maximum at the hard mask's label, up to rounding ties; they sum to 255
// within rounding; anchors are exactly 0/255. Setting the sink leaves the hard masks unchanged.
// The same holds with the edge refinement on (refined labels are clamped and renormalised).
TEST(Propagation, SoftMasksAgreeWithTheHardOnes) {
  for (int refine : {0, 8}) {
    SCOPED_TRACE("refine " + std::to_string(refine));
    PropagationConfig cfg;
    cfg.refine_radius = refine;
    soft_masks_agree_with_the_hard_ones(cfg);
  }
}

// Property: MAST memory mode tracks both objects over 24 frames although they jump 148 px at
// frame 16: the 40 px objects land beyond the short-term windows (radius 12 cells = 96 px), but
// the anchor is then more than roi_gap = 15 frames away and its ROI search (dilation 2, reach
// 24 cells) finds them. Without ROI (roi_gap beyond the clip) the objects are lost.
TEST(Propagation, MastMemoryModeRoiFollowsAJump) {
  SquaresSource src(24, 256, 128, 2, /*jump_at=*/16, /*jump=*/148);
  auto feats = feature_extractor_create("pixels");
  auto run = [&](int roi_gap) {
    PropagationConfig cfg;
    cfg.mode = PropagationMode::Mast;
    cfg.roi_gap = roi_gap;
    return propagate_all(src, *feats, cfg);
  };
  auto with_roi = run(15);
  for (int64_t k : {1, 15, 16, 20, 23}) {
    EXPECT_GT(iou_of(with_roi[k], src.truth(k), 1), 0.7) << "frame " << k;
    EXPECT_GT(iou_of(with_roi[k], src.truth(k), 2), 0.7) << "frame " << k;
  }
  auto without = run(1000);
  EXPECT_LT(iou_of(without[23], src.truth(23), 1), 0.5);
  EXPECT_THROW(propagation_mode_parse("xmem"), Error);
}

// Property: long-term memory recovers an object after an occlusion that short-term memory alone
// loses. The red square is hidden in frames 8..19; while hidden every short-term reference learns
// "background" where it was, so from frame 20 on only the anchor (long-term, ROI-localised at gap
// > 15) still holds its label.
TEST(Propagation, MastLongTermMemoryRecoversAfterOcclusion) {
  SquaresSource src(30, 160, 96, 1);
  src.hide(8, 20);
  auto feats = feature_extractor_create("pixels");
  auto run = [&](std::vector<int> long_term, int topk, LabelFeedback feedback) {
    PropagationConfig cfg;
    cfg.mode = PropagationMode::Mast;
    cfg.long_term = long_term;
    cfg.topk = topk;
    cfg.feedback = feedback;
    return propagate_all(src, *feats, cfg);
  };
  auto count = [](const Image& m) { return std::count(m.data.begin(), m.data.end(), 1); };
  for (int topk : {0, 10}) {
    for (auto feedback : {LabelFeedback::Soft, LabelFeedback::Hard}) {
      const std::string what = "top-k " + std::to_string(topk) + ", " + label_feedback_name(feedback);
      auto full = run({0, 5}, topk, feedback);
      EXPECT_GT(iou_of(full[7], src.truth(7), 1), 0.7) << what;
      EXPECT_LT(count(full[14]), 40 * 40 / 10) << what;   // hidden: (almost) nothing labelled
      for (int64_t k : {21, 25, 29}) EXPECT_GT(iou_of(full[k], src.truth(k), 1), 0.7) << what << ", frame " << k;
      auto short_only = run({}, topk, feedback);
      EXPECT_GT(iou_of(short_only[7], src.truth(7), 1), 0.7) << what;
      EXPECT_LT(iou_of(short_only[25], src.truth(25), 1), 0.1) << what;
    }
  }
  PropagationConfig none;
  none.mode = PropagationMode::Mast;
  none.long_term = {5};
  none.short_term = {3};
  EXPECT_THROW(LabelPropagator(*feats, none), Error);   // the first frame would have no reference
}

// Property: the feedback power changes only what predicted frames leave in memory. Frame 1 is
// predicted from the anchor alone (the context is padded with copies of it), so its soft masks
// are the same at powers 1 and 4; from frame 2 on the memory holds sharpened labels and the soft
// masks differ, with fewer partial (neither 0 nor 255) pixels. With context 0 nothing is
// remembered, and hard feedback remembers the argmax whatever the power: equal soft masks.
TEST(Propagation, FeedbackPowerChangesOnlyWhatIsRemembered) {
  SquaresSource src(8, 160, 128, 2);
  auto feats = feature_extractor_create("pixels");
  using Soft = std::map<int64_t, std::vector<Image>>;
  auto soft_of = [&](PropagationConfig cfg, double power) {
    cfg.feedback_power = power;
    LabelPropagator prop(*feats, cfg);
    Soft soft;
    prop.set_soft_sink([&](int64_t k, const std::vector<Image>& objects) { soft[k] = objects; });
    prop.run(src, {Anchor{0, src.truth(0)}}, [](int64_t, const Image&, const Image&) {});
    return soft;
  };
  auto partial = [](const Soft& soft) {
    int64_t n = 0;
    for (const auto& [k, objects] : soft)
      for (const auto& m : objects) n += std::count_if(m.data.begin(), m.data.end(), [](uint8_t v) { return v > 0 && v < 255; });
    return n;
  };
  PropagationConfig cfg;
  cfg.context = 4;
  const Soft as_predicted = soft_of(cfg, 1.0), sharpened = soft_of(cfg, 4.0);
  ASSERT_EQ(as_predicted.size(), 8u);
  ASSERT_EQ(sharpened.size(), 8u);
  EXPECT_TRUE(as_predicted.at(1) == sharpened.at(1)) << "frame 1 sees only the anchor";
  int differ = 0;
  for (int64_t k = 2; k < 8; ++k) differ += as_predicted.at(k) == sharpened.at(k) ? 0 : 1;
  EXPECT_GE(differ, 3) << "frames 2..7 remember sharpened labels";
  EXPECT_LT(partial(sharpened), partial(as_predicted));
  PropagationConfig anchor_only = cfg;
  anchor_only.context = 0;
  EXPECT_TRUE(soft_of(anchor_only, 1.0) == soft_of(anchor_only, 4.0));
  PropagationConfig hard = cfg;
  hard.feedback = LabelFeedback::Hard;
  EXPECT_TRUE(soft_of(hard, 1.0) == soft_of(hard, 4.0));
}

TEST(Propagation, BackwardFromAMiddleAnchorAndSecondAnchor) {
  SquaresSource src(10, 160, 128, 1);
  auto feats = feature_extractor_create("pixels");
  PropagationConfig cfg;
  cfg.context = 4;
  LabelPropagator prop(*feats, cfg);
  std::vector<int64_t> order;
  std::map<int64_t, Image> out;
  prop.run(src, {Anchor{5, src.truth(5)}, Anchor{8, src.truth(8)}},
           [&](int64_t k, const Image& m, const Image&) { order.push_back(k); out[k] = m; });
  EXPECT_EQ(order, (std::vector<int64_t>{4, 3, 2, 1, 0, 5, 6, 7, 8, 9}));
  EXPECT_TRUE(out[8] == src.truth(8));
  EXPECT_GT(iou_of(out[0], src.truth(0), 1), 0.8);
  EXPECT_GT(iou_of(out[9], src.truth(9), 1), 0.8);
}

TEST(Propagation, CancelKeepsFinishedFrames) {
  SquaresSource src(10, 64, 64, 1);
  auto feats = feature_extractor_create("pixels");
  LabelPropagator prop(*feats, PropagationConfig{});
  int delivered = 0;
  auto r = prop.run(src, {Anchor{0, src.truth(0)}}, [&](int64_t, const Image&, const Image&) { ++delivered; }, nullptr,
                    [&] { return delivered >= 4; });
  EXPECT_TRUE(r.cancelled);
  EXPECT_EQ(delivered, 4);
  EXPECT_EQ(r.frames, 4);
}

TEST(Propagation, RefusesBadAnchors) {
  SquaresSource src(5, 64, 64, 1);
  auto feats = feature_extractor_create("pixels");
  LabelPropagator prop(*feats, PropagationConfig{});
  auto sink = [](int64_t, const Image&, const Image&) {};
  EXPECT_THROW(prop.run(src, {Anchor{0, Image(32, 64, 1, 1)}}, sink), Error);      // wrong size
  EXPECT_THROW(prop.run(src, {Anchor{0, Image(64, 64, 1, 0)}}, sink), Error);      // no objects
  EXPECT_THROW(prop.run(src, {Anchor{7, src.truth(0)}}, sink), Error);             // past the end
  EXPECT_THROW(prop.run(src, {}, sink), Error);
  EXPECT_THROW(feature_extractor_create("sift"), Error);
}

TEST(Features, RandomEncoderIsStride8Res3AndNormalised) {
  auto feats = feature_extractor_create("random", 3);
  const Image frame = corrtrack::test::synthetic_frame(0, 100, 60);
  auto f = feats->extract(frame);
  EXPECT_EQ(f.sizes(), (std::vector<int64_t>{256, 8, 13}));  // ceil(60/8), ceil(100/8)
  EXPECT_LT((f.norm(2, 0) - 1).abs().max().item<double>(), 1e-4);
  auto p = feature_extractor_create("pixels")->extract(frame);
  EXPECT_EQ(p.sizes(), (std::vector<int64_t>{12, 8, 13}));
}

// Property: flip-averaged features of a frame's mirror image are the mirrored features of the
// frame (width 96, a multiple of the stride), still unit vectors; the encoder alone is not
// mirror-equivariant (its mirrored features differ by far more), so the property is the averaging's.
TEST(Features, FlipAveragingIsMirrorEquivariant) {
  auto feats = feature_extractor_create("random", 3);
  const Image frame = corrtrack::test::synthetic_frame(0, 96, 56);
  Image mirror = frame;
  for (int y = 0; y < frame.height; ++y)
    for (int x = 0; x < frame.width; ++x)
      for (int c = 0; c < 3; ++c) mirror.px(x, y)[c] = frame.px(frame.width - 1 - x, y)[c];
  const auto g = features_flip_averaged(*feats, frame);
  const auto gm = features_flip_averaged(*feats, mirror);
  EXPECT_LT((gm - g.flip({2})).abs().max().item<double>(), 1e-5);
  EXPECT_LT((g.norm(2, 0) - 1).abs().max().item<double>(), 1e-4);
  EXPECT_GT((feats->extract(mirror) - feats->extract(frame).flip({2})).abs().max().item<double>(), 0.05);
}

// Weight averaging (encoder_average.h): every weight and batch-norm statistic of the average of
// two encoders is (a + b) / 2; averaging a model with itself changes nothing (its features equal
// the plain export's, float16 included); the sources are recorded; an encoder of another shape is
// refused, naming its file.
TEST(Features, EncoderAverageIsTheMeanOfTheWeights) {
  corrtrack::test::TempDir dir;
  const std::string a = dir / "a.ckpt", b = dir / "b.ckpt";
  feature_extractor_save_random(a, 1);
  {  // b: another initialisation, and batch-norm statistics other than 0 and 1
    feature_extractor_save_random(b, 2);
    CheckpointInfo info = checkpoint_info_read(b);
    ResNet net(*info.encoder);
    checkpoint_load(b, *net);
    torch::NoGradGuard ng;
    for (auto& buf : net->named_buffers()) {
      if (buf.key().find("running_") != std::string::npos) buf.value().uniform_(0.5, 2.0);
    }
    checkpoint_save(b, *net, info);
  }
  feature_encoder_average({a, b}, dir / "ab.ckpt", false);
  const auto load = [](const std::string& path) {
    ResNet net(*checkpoint_info_read(path).encoder);
    checkpoint_load(path, *net);
    return net;
  };
  ResNet na = load(a), nb = load(b), nab = load(dir / "ab.ckpt");
  int checked = 0;
  const auto pa = na->named_parameters(), pb = nb->named_parameters();
  for (const auto& p : nab->named_parameters()) {
    EXPECT_TRUE(torch::allclose(p.value(), (pa[p.key()] + pb[p.key()]) / 2, 0, 1e-6)) << p.key();
    ++checked;
  }
  const auto ba = na->named_buffers(), bb = nb->named_buffers();
  int statistics = 0;
  for (const auto& buf : nab->named_buffers()) {
    if (!buf.value().is_floating_point()) continue;
    EXPECT_TRUE(torch::allclose(buf.value(), (ba[buf.key()] + bb[buf.key()]) / 2, 0, 1e-6)) << buf.key();
    statistics += !torch::equal(ba[buf.key()], bb[buf.key()]);
  }
  EXPECT_GT(checked, 20);
  EXPECT_GT(statistics, 20);   // the statistics did differ, so their mean was computed
  const auto record = checkpoint_info_read(dir / "ab.ckpt").record;
  ASSERT_TRUE(record.contains("average"));
  EXPECT_EQ(record["average"].size(), 2u);
  EXPECT_EQ(record["average"][1]["checkpoint"], b);

  feature_encoder_average({a, a}, dir / "aa.ckpt", true);
  feature_encoder_export(a, dir / "a-half.ckpt", true);
  const Image frame = corrtrack::test::synthetic_frame(1, 64, 48);
  EXPECT_TRUE(torch::equal(feature_extractor_load(dir / "aa.ckpt")->extract(frame),
                           feature_extractor_load(dir / "a-half.ckpt")->extract(frame)));

  {  // another architecture under the same method name
    CheckpointInfo info = checkpoint_info_read(a);
    info.encoder = ResNetConfig::stride4_64d();
    ResNet other(*info.encoder);
    checkpoint_save(dir / "other.ckpt", *other, info);
  }
  try {
    feature_encoder_average({a, dir / "other.ckpt"}, dir / "bad.ckpt", false);
    FAIL() << "encoders of different shapes were averaged";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("other.ckpt"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(std::filesystem::exists(dir / "bad.ckpt"));
}

TEST(Features, CheckpointRoundTripGivesTheSameFeatures) {
  corrtrack::test::TempDir dir;
  feature_extractor_save_random(dir / "r.ckpt", 5);
  auto loaded = feature_extractor_load(dir / "r.ckpt");
  auto direct = feature_extractor_create("random", 5);
  const Image frame = corrtrack::test::synthetic_frame(2, 64, 48);
  EXPECT_TRUE(torch::allclose(loaded->extract(frame), direct->extract(frame), 1e-5, 1e-6));
  auto other = feature_extractor_create("random", 6);
  EXPECT_FALSE(torch::allclose(other->extract(frame), direct->extract(frame), 1e-3, 1e-3));
  corrtrack::test::TempDir d2;
  { std::ofstream(d2 / "bad.ckpt") << "not a checkpoint"; }
  try {
    feature_extractor_load(d2 / "bad.ckpt");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("bad.ckpt"), std::string::npos);
  }
}
