// MAST and Correspondence Flow training (the published recipes, scaled by the caller's batch and
// crop) and the clip sampler; both share the stride-4 64-d encoder and the local-window copy.
#include "corrtrack/video_methods.h"

#include "cycle_methods.h"

#include <nlohmann/json.hpp>

#include <cmath>

namespace F = torch::nn::functional;
using nlohmann::json;

namespace corrtrack {

const std::vector<double> kLabMean{50.0, 0.0, 0.0};
const std::vector<double> kLabStd{50.0, 127.0, 127.0};

namespace {
constexpr int kCopyRadius = 6;        // 13x13 window at stride 4 (both recipes)
constexpr double kHuberScale = 20.0;  // MAST compares 20 * prediction with 20 * target
constexpr int kColours = 16;          // CorrFlow's quantised ab colours
constexpr double kCycleWeight = 0.1;  // CorrFlow's forward-backward term
}  // namespace

namespace {

// Holds the encoder (saved as "encoder") and method buffers.
class VideoModelImpl : public torch::nn::Module {
 public:
  explicit VideoModelImpl(const ResNetConfig& cfg) : encoder(register_module("encoder", ResNet(cfg))) {}
  ResNet encoder;
};
TORCH_MODULE(VideoModel);

// Shared parts of the two stride-4 methods.
class Stride4Method : public TrainableMethod {
 public:
  Stride4Method(const VideoMethodConfig& cfg, std::shared_ptr<const ClipStore> clips)
      : m_cfg(cfg), m_loader(ClipSampler(std::move(clips), cfg.sampler), cfg.seed, cfg.loader), m_model(ResNetConfig::stride4_64d()) {
    if (cfg.batch < 1) throw SettingError("batch", "must be at least 1");
    if (cfg.sampler.crop % 4 != 0) throw SettingError("crop", "must be a multiple of 4 (the encoder's stride)");
    ResNet enc = m_model->encoder;
    resnet_init(enc, cfg.seed);
  }
  torch::nn::Module& module() override { return *m_model; }
  CheckpointInfo checkpoint_info() const override {
    CheckpointInfo info;
    info.method = name();
    info.encoder = m_model->encoder->config();
    info.encoder_module = "encoder";
    info.input = InputConvention{"lab", kLabMean, kLabStd, 0};
    info.record["train"] = {{"batch", m_cfg.batch}, {"crop", m_cfg.sampler.crop}, {"min_scale", m_cfg.sampler.min_scale},
                            {"jitter", m_cfg.sampler.jitter}, {"data", m_loader.sampler().store().path()},
                            {"data_form", m_loader.sampler().store().kind()}};
    extra_info(info);
    return info;
  }

 protected:
  virtual void extra_info(CheckpointInfo&) const {}

  // This rank's Lab-normalised clips of `step`, [B, T, 3, H, W] on the training device.
  torch::Tensor sample_lab(int64_t step, const ClipOffsets& offsets) {
    auto rgb = m_loader.batch(step, m_dist->rank(), m_cfg.batch, offsets, m_device);
    return standardise_channels(rgb_to_lab(rgb), kLabMean, kLabStd);
  }
  // Encoder features of [B, T, 3, H, W] -> [B, T, 64, H/4, W/4].
  torch::Tensor encode(const torch::Tensor& x) {
    const auto s = x.sizes();
    auto f = m_model->encoder->forward(x.reshape({s[0] * s[1], s[2], s[3], s[4]}));
    return f.reshape({s[0], s[1], f.size(1), f.size(2), f.size(3)});
  }
  double affinity_scale() const { return 1.0 / std::sqrt(double(m_model->encoder->config().output_channels())); }

  VideoMethodConfig m_cfg;
  ClipLoader m_loader;
  VideoModel m_model;
};

// MAST: drop one of a/b (zeroed, the rest x1.5) in the encoder input and reconstruct it in the
// target frame by copying from the reference over a 13x13 window; smooth-L1 on x20 values.
class MastMethod : public Stride4Method {
 public:
  using Stride4Method::Stride4Method;
  std::string name() const override { return "mast"; }

  StepOutput step(int64_t step, torch::Generator& step_gen) override {
    auto gen = m_dist->rank_generator(step_gen);   // this rank's draws
    const int b = m_cfg.batch;
    // Reference and target 2, 5 or 8 frames apart, with probabilities 0.4 / 0.4 / 0.2.
    static const ClipOffsets kGaps{{{0, 2}, {0, 5}, {0, 8}}, {0.4, 0.4, 0.2}};
    std::vector<int64_t> dropped;
    auto lab = sample_lab(step, kGaps);  // [B, 2, 3, H, W]
    for (int i = 0; i < b; ++i) dropped.push_back(1 + random_int(gen, 2));
    auto idx = torch::tensor(dropped, torch::kLong).to(m_device);
    auto keep = torch::ones({b, 1, 3, 1, 1}, lab.options()) * 1.5;
    keep.index_put_({torch::arange(b, torch::kLong).to(m_device), 0, idx}, 0.0);
    auto feats = encode(lab * keep);
    // Target values: the dropped channel of each frame.
    auto channel = lab.gather(2, idx.view({b, 1, 1, 1, 1}).expand({b, 2, 1, lab.size(3), lab.size(4)}));  // [B, 2, 1, H, W]
    auto ref_values = F::avg_pool2d(channel.select(1, 0), F::AvgPool2dFuncOptions(4));
    auto pred = local_window_attention(feats.select(1, 1), feats.select(1, 0), ref_values, kCopyRadius, affinity_scale());
    pred = F::interpolate(pred, F::InterpolateFuncOptions().scale_factor(std::vector<double>{4.0, 4.0}).mode(torch::kBilinear).align_corners(false));
    auto target = channel.select(1, 1);
    auto loss = F::smooth_l1_loss(kHuberScale * pred, kHuberScale * target);
    const double mae = (pred - target).abs().mean().item<double>() * 127.0;  // in Lab units
    return {loss, {{"abs_error_ab", mae}}, b};
  }
};

// Correspondence Flow: copy quantised ab colours (16 k-means centres) from frame to frame,
// recursively with scheduled sampling (ground truth fed with probability 0.9 -> 0.6), plus a
// forward-backward cycle back to the first frame; channel dropout on the input.
class CorrFlowMethod : public Stride4Method {
 public:
  CorrFlowMethod(const VideoMethodConfig& cfg, std::shared_ptr<const ClipStore> clips) : Stride4Method(cfg, std::move(clips)) {
    // Colour centres from the training data; a resumed run overwrites them from the checkpoint.
    auto gen = at::make_generator<at::CPUGeneratorImpl>(cfg.seed ^ 0xC0105ull);
    torch::Generator g(gen);
    const auto& c = m_loader.sampler().store();
    std::vector<torch::Tensor> samples;
    for (int i = 0; i < 64; ++i) {
      const size_t v = size_t(random_int(g, int64_t(c.videos().size())));
      auto lab = standardise_channels(rgb_to_lab(c.frame_tensor(v, random_int(g, c.videos()[v].frames))), kLabMean, kLabStd);
      auto ab = lab.slice(0, 1, 3).reshape({2, -1}).t();
      auto pick = at::randint(ab.size(0), {1024}, g, torch::TensorOptions().dtype(torch::kLong));
      samples.push_back(ab.index({pick}));
    }
    auto centres = kmeans(torch::cat(samples), kColours, 30, g);
    m_centres = m_model->register_buffer("colour_centres", centres);
  }
  std::string name() const override { return "corrflow"; }

  StepOutput step(int64_t step, torch::Generator& step_gen) override {
    auto gen = m_dist->rank_generator(step_gen);   // this rank's draws
    const int b = m_cfg.batch;
    auto lab = sample_lab(step, ClipOffsets::fixed({0, 4, 8}));  // [B, 3, 3, H, W]
    const int64_t h = lab.size(3), w = lab.size(4);
    // Labels: nearest colour centre per pixel.
    auto ab = lab.slice(2, 1, 3).permute({0, 1, 3, 4, 2}).reshape({-1, 2});
    auto labels = kmeans_assign(ab, m_centres).view({b, 3, h, w});
    auto onehot = F::one_hot(labels, kColours).permute({0, 1, 4, 2, 3}).to(lab.dtype());  // [B, 3, 16, H, W]
    auto soft = F::avg_pool2d(onehot.reshape({b * 3, kColours, h, w}), F::AvgPool2dFuncOptions(4)).view({b, 3, kColours, h / 4, w / 4});
    // Channel dropout: with p 0.7 drop 1 or 2 of the 3 channels, rescale the rest by 3 / (3 - k).
    auto scale = torch::ones({b, 1, 3, 1, 1});
    for (int i = 0; i < b; ++i) {
      if (random_uniform(gen) >= 0.7) continue;
      const int k = 1 + int(random_int(gen, 2));
      auto perm = at::randperm(3, gen, torch::TensorOptions().dtype(torch::kLong));
      for (int j = 0; j < 3; ++j) scale[i][0][j] = 3.0 / (3.0 - k);
      for (int j = 0; j < k; ++j) scale[i][0][perm[j].item<int64_t>()] = 0.0;
    }
    auto feats = encode(lab * scale.to(m_device));
    auto f0 = feats.select(1, 0), f1 = feats.select(1, 1), f2 = feats.select(1, 2);
    const double s = affinity_scale();
    auto copy = [&](const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v) {
      return local_window_attention(q, k, v, kCopyRadius, s);
    };
    auto p1 = copy(f1, f0, soft.select(1, 0));
    const double p_truth = 0.9 - 0.3 * std::min(1.0, double(step) / double(std::max<int64_t>(1, m_cfg.total_steps)));
    auto l1 = random_uniform(gen) < p_truth ? soft.select(1, 1) : p1;
    auto p2 = copy(f2, f1, l1);
    auto back1 = copy(f1, f2, p2);
    auto back0 = copy(f0, f1, back1);
    auto nll = [&](const torch::Tensor& prob, int frame) {
      auto up = F::interpolate(prob, F::InterpolateFuncOptions().size(std::vector<int64_t>{h, w}).mode(torch::kBilinear).align_corners(false));
      return F::nll_loss(torch::log(up.clamp_min(1e-6)).contiguous(), labels.select(1, frame).contiguous());
    };
    auto forward = nll(p1, 1) + nll(p2, 2);
    auto cycle = nll(back0, 0);
    auto loss = forward + kCycleWeight * cycle;
    return {loss, {{"forward_nll", forward.item<double>()}, {"cycle_nll", cycle.item<double>()}}, b};
  }
 protected:
  void extra_info(CheckpointInfo& info) const override { info.record["colours"] = kColours; }

 private:
  torch::Tensor m_centres;
};

}  // namespace

std::vector<std::string> video_method_names() { return {"mast", "corrflow", "crw", "timecycle"}; }

std::unique_ptr<TrainableMethod> video_method_create(const VideoMethodConfig& cfg, std::shared_ptr<const ClipStore> cache) {
  if (!cache) throw Error("video methods need a clip cache");
  // Modules not set by resnet_init (the cycle methods' localiser, heads) take LibTorch's default
  // initialisation from the global generator, which is seeded nondeterministically: seed it.
  torch::manual_seed(cfg.seed);
  if (cfg.method == "mast") return std::make_unique<MastMethod>(cfg, std::move(cache));
  if (cfg.method == "corrflow") return std::make_unique<CorrFlowMethod>(cfg, std::move(cache));
  if (auto m = make_cycle_method(cfg, cache)) return m;
  throw Error("unknown video method '" + cfg.method + "'");
}

}  // namespace corrtrack
