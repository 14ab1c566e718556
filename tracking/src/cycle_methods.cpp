// Cycle-consistency of time, in two forms (the published recipes, scaled by the caller's batch and
// crop): the contrastive random walk (CRW) over patch or dense nodes, and TimeCycle's
// differentiable patch tracker run backward then forward through a clip.
#include "cycle_methods.h"

#include "corrtrack/contrastive.h"
#include "corrtrack/tracking.h"

#include <nlohmann/json.hpp>

#include <cmath>

namespace F = torch::nn::functional;
namespace nn = torch::nn;
using nlohmann::json;

namespace corrtrack {

namespace {

constexpr int kCrwPatch = 64;          // CRW patch nodes: 64x64 pixels ...
constexpr int kCrwPatchStride = 32;    // ... every 32 pixels (7x7 = 49 nodes on a 256 crop)
constexpr int kCrwEmbedding = 128;     // linear head output
constexpr double kCrwTemperature = 0.05;
constexpr double kInlierRadius = 1.5;  // TimeCycle: affinity mass within this many cells counts as inlier

// Normalised coordinates of the cell centres of an n-cell axis (affine_grid, align_corners=false).
torch::Tensor cell_centres(int64_t n, const torch::TensorOptions& o) {
  return (torch::arange(n, o) * 2.0 + 1.0) / double(n) - 1.0;
}

// Shared parts of the two RGB clip methods: sampler, device, ImageNet-normalised clips.
class RgbClipMethod : public TrainableMethod {
 public:
  RgbClipMethod(const VideoMethodConfig& cfg, std::shared_ptr<const ClipStore> clips, int default_gap)
      : m_cfg(cfg), m_loader(ClipSampler(std::move(clips), cfg.sampler), cfg.seed, cfg.loader) {
    if (cfg.batch < 1) throw SettingError("batch", "must be at least 1");
    if (m_cfg.clip_frames == 0) m_cfg.clip_frames = 4;
    if (m_cfg.frame_gap == 0) m_cfg.frame_gap = default_gap;
    if (m_cfg.clip_frames < 2) throw SettingError("clip-frames", "must be at least 2");
    if (m_cfg.frame_gap < 1) throw SettingError("frame-gap", "must be at least 1");
    if (cfg.sampler.crop % 8 != 0) throw SettingError("crop", "must be a multiple of 8 (the encoder's stride)");
  }

 protected:
  // This rank's clips of `step`, [B, T, 3, crop, crop], ImageNet-normalised, on the training device.
  torch::Tensor sample_clips(int64_t step) {
    std::vector<int> offsets;
    for (int t = 0; t < m_cfg.clip_frames; ++t) offsets.push_back(t * m_cfg.frame_gap);
    auto clips = m_loader.batch(step, m_dist->rank(), m_cfg.batch, ClipOffsets::fixed(offsets), m_device);
    return standardise_channels(clips, kImageNetMean, kImageNetStd);
  }
  CheckpointInfo base_info(const ResNetConfig& enc) const {
    CheckpointInfo info;
    info.method = name();
    info.encoder = enc;
    info.encoder_module = "encoder";
    info.input = InputConvention{"rgb", kImageNetMean, kImageNetStd, 0};
    info.record["train"] = {{"batch", m_cfg.batch}, {"crop", m_cfg.sampler.crop}, {"min_scale", m_cfg.sampler.min_scale},
                            {"jitter", m_cfg.sampler.jitter}, {"clip_frames", m_cfg.clip_frames}, {"frame_gap", m_cfg.frame_gap},
                            {"data", m_loader.sampler().store().path()}, {"data_form", m_loader.sampler().store().kind()}};
    return info;
  }

  VideoMethodConfig m_cfg;
  ClipLoader m_loader;
};

// ---------------------------------------------------------------------------------------------
// CRW
// ---------------------------------------------------------------------------------------------

class CrwModelImpl : public nn::Module {
 public:
  CrwModelImpl()
      : encoder(register_module("encoder", ResNet(ResNetConfig::crw_res3()))),
        head(register_module("head", nn::Linear(ResNetConfig::crw_res3().output_channels(), kCrwEmbedding))) {}
  ResNet encoder;
  nn::Linear head;
};
TORCH_MODULE(CrwModel);

// The encoder (res3, stride 8) and a linear head to 128-d give L2-normalised node embeddings; the
// random walk over the clip's frames and back must return every node to itself. At test time the
// head is dropped and the res3 features are used.
class CrwMethod : public RgbClipMethod {
 public:
  CrwMethod(const VideoMethodConfig& cfg, std::shared_ptr<const ClipStore> cache) : RgbClipMethod(cfg, std::move(cache), 3) {
    if (m_cfg.temperature == 0.0) m_cfg.temperature = kCrwTemperature;
    if (m_cfg.temperature <= 0.0) throw SettingError("temperature", "must be positive");
    if (m_cfg.edge_dropout < 0.0 || m_cfg.edge_dropout >= 1.0) throw SettingError("edge-dropout", "must be in [0, 1)");
    if (m_cfg.nodes != "patch" && m_cfg.nodes != "dense") throw SettingError("nodes", "must be patch or dense, got '" + m_cfg.nodes + "'");
    // One 64-pixel patch per frame leaves the walk a single node: the loss is 0 and nothing is learned.
    if (m_cfg.nodes == "patch" && m_cfg.sampler.crop < kCrwPatch + kCrwPatchStride) {
      throw SettingError("crop", "must be at least 96 for patch nodes (64-pixel patches every 32 pixels; a smaller crop holds one node, which makes the loss 0)");
    }
    ResNet enc = m_model->encoder;
    resnet_init(enc, cfg.seed);
    torch::NoGradGuard ng;
    auto g = at::make_generator<at::CPUGeneratorImpl>(cfg.seed ^ 0x4EADull);
    const double bound = 1.0 / std::sqrt(double(m_model->head->weight.size(1)));
    m_model->head->weight.copy_(at::rand(m_model->head->weight.sizes(), g) * (2 * bound) - bound);
    m_model->head->bias.zero_();
  }
  std::string name() const override { return "crw"; }
  torch::nn::Module& module() override { return *m_model; }

  StepOutput step(int64_t step, torch::Generator& step_gen) override {
    auto gen = m_dist->rank_generator(step_gen);   // this rank's draws
    auto clip = sample_clips(step);  // [B, T, 3, S, S]
    const int64_t b = clip.size(0), t = clip.size(1), s = clip.size(3);
    auto frames = clip.reshape({b * t, 3, s, s});
    torch::Tensor nodes;  // [B, T, N, 128]
    if (m_cfg.nodes == "patch") {
      auto patches = frames.unfold(2, kCrwPatch, kCrwPatchStride).unfold(3, kCrwPatch, kCrwPatchStride);  // [BT, 3, nh, nw, 64, 64]
      const int64_t nh = patches.size(2), nw = patches.size(3);
      patches = patches.permute({0, 2, 3, 1, 4, 5}).reshape({b * t * nh * nw, 3, kCrwPatch, kCrwPatch});
      auto f = m_model->encoder->forward(patches).mean({2, 3});  // average-pooled res3 per patch
      nodes = l2_normalise(m_model->head->forward(f), 1).view({b, t, nh * nw, -1});
    } else {
      auto f = m_model->encoder->forward(frames);  // [BT, 256, S/8, S/8]
      f = f.flatten(2).transpose(1, 2);            // [BT, N, 256]
      nodes = l2_normalise(m_model->head->forward(f), 2).view({b, t, f.size(1), -1});
    }
    std::vector<torch::Tensor> per_frame;
    for (int64_t i = 0; i < t; ++i) per_frame.push_back(nodes.select(1, i));
    auto walk = random_walk_loss(per_frame, m_cfg.temperature, m_cfg.edge_dropout, &gen);
    StepOutput out{walk.loss, {}, b};
    for (size_t k = 0; k < walk.per_length.size(); ++k) out.metrics.push_back({"walk" + std::to_string(k + 1) + "_loss", walk.per_length[k]});
    out.metrics.push_back({"walk_accuracy", walk.accuracy.back()});
    out.metrics.push_back({"nodes", double(nodes.size(2))});
    return out;
  }

  CheckpointInfo checkpoint_info() const override {
    auto info = base_info(m_model->encoder->config());
    info.record["train"]["nodes"] = m_cfg.nodes;
    info.record["train"]["temperature"] = m_cfg.temperature;
    info.record["train"]["edge_dropout"] = m_cfg.edge_dropout;
    info.record["head"] = {{"embedding", kCrwEmbedding}, {"used_for_propagation", false}};
    return info;
  }

 private:
  CrwModel m_model;
};

// ---------------------------------------------------------------------------------------------
// TimeCycle
// ---------------------------------------------------------------------------------------------

class TimeCycleModelImpl : public nn::Module {
 public:
  explicit TimeCycleModelImpl(int depth)
      : encoder(register_module("encoder", ResNet(ResNetConfig::timecycle_res4(depth)))),
        regressor(register_module("regressor", nn::Sequential(nn::Conv2d(nn::Conv2dOptions(3, 32, 3).padding(1)), nn::ReLU(),
                                                               nn::Conv2d(nn::Conv2dOptions(32, 32, 3).padding(1)), nn::ReLU()))),
        correction(register_module("correction", nn::Linear(32, 6))) {}
  ResNet encoder;
  nn::Sequential regressor;  // reads each patch cell's expected position and peak affinity ...
  nn::Linear correction;     // ... and corrects the least-squares affine map (starts at zero)
};
TORCH_MODULE(TimeCycleModel);

// One localisation step: where the patch went, the patch read there, and the inlier mass.
struct Track {
  torch::Tensor theta;    // [B, 2, 3]
  torch::Tensor patch;    // [B, C, h, w], L2-normalised
  torch::Tensor inlier;   // scalar: mean affinity mass within kInlierRadius cells of the predicted position
};

int checked_depth(int depth) {
  if (depth != 18 && depth != 50) throw SettingError("backbone", "must be resnet18 or resnet50");
  return depth;
}

class TimeCycleMethod : public RgbClipMethod {
 public:
  TimeCycleMethod(const VideoMethodConfig& cfg, std::shared_ptr<const ClipStore> cache)
      : RgbClipMethod(cfg, std::move(cache), 2), m_model(checked_depth(cfg.backbone_depth)) {
    if (cfg.patch < 16 || cfg.patch % 8 != 0 || cfg.patch >= cfg.sampler.crop) {
      throw SettingError("patch", "must be a multiple of 8, at least 16 and smaller than the crop");
    }
    ResNet enc = m_model->encoder;
    resnet_init(enc, cfg.seed);
    torch::NoGradGuard ng;
    m_model->correction->weight.zero_();
    m_model->correction->bias.zero_();
  }
  std::string name() const override { return "timecycle"; }
  torch::nn::Module& module() override { return *m_model; }

  StepOutput step(int64_t step, torch::Generator& step_gen) override {
    auto gen = m_dist->rank_generator(step_gen);   // this rank's draws
    auto clip = sample_clips(step);  // [B, T, 3, S, S]
    const int64_t b = clip.size(0), t = clip.size(1), s = clip.size(3), p = m_cfg.patch;
    auto feats = l2_normalise(m_model->encoder->forward(clip.reshape({b * t, 3, s, s})), 1);
    feats = feats.view({b, t, feats.size(1), feats.size(2), feats.size(3)});
    m_scale = std::sqrt(double(feats.size(2)));  // softmax temperature 1/sqrt(C)
    // The patch: a random p x p window of the last frame, encoded on its own.
    std::vector<float> th;
    for (int64_t i = 0; i < b; ++i) {
      const int64_t x0 = random_int(gen, s - p + 1), y0 = random_int(gen, s - p + 1);
      const float sc = float(p) / float(s);
      th.insert(th.end(), {sc, 0.f, float(2 * x0 + p) / float(s) - 1.f, 0.f, sc, float(2 * y0 + p) / float(s) - 1.f});
    }
    auto theta0 = torch::tensor(th).view({b, 2, 3}).to(m_device);
    auto last = clip.select(1, t - 1);
    auto crop = F::grid_sample(last, F::affine_grid(theta0, {b, 3, p, p}, false),
                               F::GridSampleFuncOptions().mode(torch::kBilinear).align_corners(false));
    auto patch0 = l2_normalise(m_model->encoder->forward(crop), 1);
    auto frame = [&](int64_t i) { return feats.select(1, i); };

    // Long cycles: backward from the last frame to frame t-1-k, then forward back, k = 1..T-1.
    std::vector<Track> back{Track{theta0, patch0, {}}};
    for (int64_t k = 1; k < t; ++k) back.push_back(localize(back.back().patch, frame(t - 1 - k)));
    torch::Tensor align_long = torch::zeros({}, feats.options()), inlier_sum = torch::zeros({}, feats.options());
    int n_loc = 0;
    for (int64_t k = 1; k < t; ++k) {
      inlier_sum = inlier_sum + back[size_t(k)].inlier;
      ++n_loc;
      Track cur = back[size_t(k)];
      for (int64_t j = t - k; j < t; ++j) {
        cur = localize(cur.patch, frame(j));
        inlier_sum = inlier_sum + cur.inlier;
        ++n_loc;
      }
      align_long = align_long + alignment(cur.theta, theta0, patch0);
    }
    align_long = align_long / double(t - 1);
    auto inlier = inlier_sum / double(n_loc);
    // Skip cycles: straight to frame t-1-k and back, k = 2..T-1; their alignment is the skip term.
    torch::Tensor skip = torch::zeros({}, feats.options());
    for (int64_t k = 2; k < t; ++k) {
      auto there = localize(patch0, frame(t - 1 - k));
      skip = skip + alignment(localize(there.patch, frame(t - 1)).theta, theta0, patch0);
    }
    if (t > 2) skip = skip / double(t - 2);
    auto loss = m_cfg.align_weight * align_long + m_cfg.inlier_weight * (1.0 - inlier) + m_cfg.skip_weight * skip;
    const double miss = std::sqrt(align_long.item<double>() / double(patch0.size(2) * patch0.size(3))) * double(s) / 2.0;
    return {loss,
            {{"align", align_long.item<double>()}, {"inlier", inlier.item<double>()}, {"skip_align", skip.item<double>()},
             {"cycle_error_px", miss}},
            b};
  }

  CheckpointInfo checkpoint_info() const override {
    auto info = base_info(m_model->encoder->config());
    info.record["train"]["patch"] = m_cfg.patch;
    info.record["train"]["weights"] = {{"align", m_cfg.align_weight}, {"inlier", m_cfg.inlier_weight}, {"skip", m_cfg.skip_weight}};
    info.propagation.context = 8;  // TimeCycle's protocol
    info.propagation.topk = 5;
    return info;
  }

 private:
  // Localises `patch` in `frame`: least-squares affine map from the affinity plus the learned
  // correction; reads the patch there.
  Track localize(const torch::Tensor& patch, const torch::Tensor& frame) {
    auto loc = affine_localize(patch, frame, m_scale);
    const int64_t b = patch.size(0), h = patch.size(2), w = patch.size(3);
    auto peak = std::get<0>(loc.affinity.max(-1));                                  // [B, hw]
    auto cues = torch::cat({loc.expected, peak.unsqueeze(-1)}, -1).transpose(1, 2).reshape({b, 3, h, w});
    auto delta = m_model->correction->forward(m_model->regressor->forward(cues).mean({2, 3})).view({b, 2, 3});
    auto theta = loc.theta + delta;
    auto read = F::grid_sample(frame, F::affine_grid(theta, {b, frame.size(1), h, w}, false),
                               F::GridSampleFuncOptions().mode(torch::kBilinear).padding_mode(torch::kBorder).align_corners(false));
    // Inlier mass: affinity within kInlierRadius cells of where theta puts each patch cell.
    const int64_t fh = frame.size(2), fw = frame.size(3);
    auto where = F::affine_grid(theta.detach(), {b, 1, h, w}, false).view({b, h * w, 1, 2});
    auto o = frame.options();
    auto fy = cell_centres(fh, o).view({fh, 1}).expand({fh, fw}).reshape({1, 1, fh * fw});
    auto fx = cell_centres(fw, o).view({1, fw}).expand({fh, fw}).reshape({1, 1, fh * fw});
    auto dx = (fx - where.select(-1, 0)) * (double(fw) / 2.0), dy = (fy - where.select(-1, 1)) * (double(fh) / 2.0);
    auto near = (dx * dx + dy * dy <= kInlierRadius * kInlierRadius).to(loc.affinity.dtype());
    auto inlier = (loc.affinity * near).sum(-1).mean();
    return {theta, l2_normalise(read, 1), inlier};
  }

  // Sum over the patch's grid points of the squared distance (normalised coordinates) between
  // where the cycle ended and where it began, averaged over the batch.
  static torch::Tensor alignment(const torch::Tensor& theta, const torch::Tensor& theta0, const torch::Tensor& patch) {
    const std::vector<int64_t> size{patch.size(0), 1, patch.size(2), patch.size(3)};
    auto d = F::affine_grid(theta, size, false) - F::affine_grid(theta0, size, false);
    return d.pow(2).sum({1, 2, 3}).mean();
  }

  TimeCycleModel m_model;
  double m_scale = 1.0;
};

}  // namespace

AffineLocalization affine_localize(const torch::Tensor& patch, const torch::Tensor& frame, double logit_scale) {
  if (patch.dim() != 4 || frame.dim() != 4 || patch.size(0) != frame.size(0) || patch.size(1) != frame.size(1)) {
    throw Error("affine_localize: need patch [B, C, h, w] and frame [B, C, H, W] with the same B and C");
  }
  const int64_t h = patch.size(2), w = patch.size(3), fh = frame.size(2), fw = frame.size(3);
  auto o = frame.options();
  auto logits = torch::bmm(patch.flatten(2).transpose(1, 2), frame.flatten(2)) * logit_scale;  // [B, hw, HW]
  auto affinity = torch::softmax(logits, -1);
  auto fy = cell_centres(fh, o).view({fh, 1}).expand({fh, fw}).reshape({fh * fw});
  auto fx = cell_centres(fw, o).view({1, fw}).expand({fh, fw}).reshape({fh * fw});
  auto expected = torch::stack({torch::matmul(affinity, fx), torch::matmul(affinity, fy)}, -1);  // [B, hw, 2]
  // Least squares: rows [px, py, 1] of the patch cells; theta_row = (PᵀP)⁻¹ Pᵀ q.
  auto py = cell_centres(h, o).view({h, 1}).expand({h, w}).reshape({h * w});
  auto px = cell_centres(w, o).view({1, w}).expand({h, w}).reshape({h * w});
  auto pm = torch::stack({px, py, torch::ones_like(px)}, 1);                   // [hw, 3]
  auto solve = torch::linalg_pinv(pm);                                         // [3, hw]
  auto theta = torch::matmul(solve, expected).transpose(1, 2).contiguous();    // [B, 2, 3]
  return {theta, affinity, expected};
}

std::unique_ptr<TrainableMethod> make_cycle_method(const VideoMethodConfig& cfg, std::shared_ptr<const ClipStore> cache) {
  if (cfg.method == "crw") return std::make_unique<CrwMethod>(cfg, std::move(cache));
  if (cfg.method == "timecycle") return std::make_unique<TimeCycleMethod>(cfg, std::move(cache));
  return nullptr;
}

}  // namespace corrtrack
