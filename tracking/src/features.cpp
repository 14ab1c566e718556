// Feature extractors for propagation: the parameter-free Lab baseline, a randomly initialised
// ResNet-18 (CRW's stride-8 res3 layout) and encoders loaded from checkpoints.
#include "corrtrack/tracking.h"

#include "corrtrack/ops.h"

#include "encoder_file.h"
#include "inference_encoder.h"

#include <cpuid.h>
#include <cstring>
#include <optional>

namespace F = torch::nn::functional;

namespace corrtrack {

const std::vector<double> kImageNetMean{0.485, 0.456, 0.406};
const std::vector<double> kImageNetStd{0.229, 0.224, 0.225};

namespace {

// Parameter-free baseline: Lab averaged over 4x4 pixels, each stride-8 cell described by its
// 2x2 sub-cells (12 values: L-50, a, b scaled by 1/50), L2-normalised.
class PixelFeatures : public FeatureExtractor {
 public:
  explicit PixelFeatures(torch::Device device) : m_device(device) {}
  torch::Tensor extract(const Image& frame) override {
    torch::NoGradGuard ng;
    auto lab = rgb_to_lab(image_to_tensor(frame));
    lab = standardise_channels(lab, {50.0, 0.0, 0.0}, {50.0, 50.0, 50.0});
    auto pooled = F::avg_pool2d(lab.unsqueeze(0), F::AvgPool2dFuncOptions(4).stride(4).ceil_mode(true).count_include_pad(false));
    const int64_t h4 = pooled.size(2), w4 = pooled.size(3);
    pooled = F::pad(pooled, F::PadFuncOptions({0, w4 % 2, 0, h4 % 2}).mode(torch::kReplicate));
    auto cells = torch::pixel_unshuffle(pooled, 2).squeeze(0);
    return l2_normalise(cells, 0).contiguous().to(m_device);
  }
  torch::Device device() const override { return m_device; }
  int stride() const override { return 8; }
  std::string name() const override { return "pixels"; }

 private:
  torch::Device m_device;
};

// A ResNet encoder with its input convention (RGB + mean/std, or Lab), run as it is (float32) or
// folded and cast for reduced precision.
class ResNetFeatures : public FeatureExtractor {
 public:
  ResNetFeatures(ResNet net, std::string name, std::string colour, std::vector<double> mean, std::vector<double> stdv,
                 torch::Device device, Precision precision)
      : m_net(std::move(net)), m_name(std::move(name)), m_colour(std::move(colour)), m_mean(std::move(mean)),
        m_std(std::move(stdv)), m_device(device), m_precision(precision_resolve(precision, device)) {
    m_net->eval();
    m_net->to(device);
    if (m_precision == Precision::BFloat16) m_fast.emplace(*m_net, torch::kBFloat16, device);
  }

  torch::Tensor extract(const Image& frame) override {
    torch::NoGradGuard ng;
    auto x = image_to_tensor(frame);
    if (m_colour == "lab") x = rgb_to_lab(x);
    x = standardise_channels(x, m_mean, m_std).unsqueeze(0).to(m_device);
    auto f = (m_fast ? m_fast->forward(x) : m_net->forward(x)).squeeze(0);
    return l2_normalise(f, 0).contiguous();
  }
  torch::Device device() const override { return m_device; }
  int stride() const override { return m_net->config().output_stride(); }
  std::string name() const override { return m_name; }
  Precision precision() const override { return m_precision; }

 private:
  ResNet m_net;
  std::string m_name, m_colour;
  std::vector<double> m_mean, m_std;
  torch::Device m_device;
  Precision m_precision;
  std::optional<detail::InferenceEncoder> m_fast;   // the folded reduced-precision encoder
};

ResNet random_resnet(uint64_t seed) {
  ResNet net(ResNetConfig::crw_res3());
  resnet_init(net, seed);
  return net;
}

}  // namespace

Precision precision_parse(const std::string& name) {
  if (name == "auto") return Precision::Auto;
  if (name == "fp32") return Precision::Float32;
  if (name == "bf16") return Precision::BFloat16;
  throw SettingError("precision", "must be auto, fp32 or bf16, got '" + name + "'");
}

std::string precision_name(Precision precision) {
  switch (precision) {
    case Precision::Float32: return "fp32";
    case Precision::BFloat16: return "bf16";
    case Precision::Auto: break;
  }
  return "auto";
}

bool cpu_has_native_bf16() {
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (__get_cpuid_max(0, nullptr) < 7) return false;
  __cpuid_count(7, 0, a, b, c, d);
  const bool amx_bf16 = (d >> 22) & 1u;             // leaf 7.0 EDX bit 22
  __cpuid_count(7, 1, a, b, c, d);
  const bool avx512_bf16 = (a >> 5) & 1u;           // leaf 7.1 EAX bit 5
  return amx_bf16 || avx512_bf16;
}

Precision precision_resolve(Precision precision, torch::Device device) {
  if (precision != Precision::Auto) return precision;
  return device.is_cpu() && cpu_has_native_bf16() ? Precision::BFloat16 : Precision::Float32;
}

std::unique_ptr<FeatureExtractor> feature_extractor_create(const std::string& kind, uint64_t seed, torch::Device device,
                                                           Precision precision) {
  if (kind == "pixels") return std::make_unique<PixelFeatures>(device);
  if (kind == "random") {
    return std::make_unique<ResNetFeatures>(random_resnet(seed), "random", "rgb", kImageNetMean, kImageNetStd, device,
                                            precision);
  }
  throw Error("unknown features '" + kind + "': use pixels, random, or a checkpoint");
}

void feature_extractor_save_random(const std::string& path, uint64_t seed) {
  ResNet net = random_resnet(seed);
  CheckpointInfo info;
  info.method = "random";
  info.encoder = net->config();
  info.input = InputConvention{"rgb", kImageNetMean, kImageNetStd, 0};
  info.record["seed"] = seed;
  checkpoint_save(path, *net, info);
}

ResNet detail::encoder_load(const std::string& checkpoint, const CheckpointInfo& info) {
  if (!info.encoder || !info.input) {
    throw Error("checkpoint '" + checkpoint + "' does not describe a feature encoder (no 'encoder'/'input' metadata)");
  }
  ResNet net(*info.encoder);
  checkpoint_load(checkpoint, *net, info.encoder_module);
  return net;
}

void feature_encoder_export(const std::string& checkpoint, const std::string& out, bool half, const PropagationHints& hints) {
  CheckpointInfo info = checkpoint_info_read(checkpoint);
  ResNet net = detail::encoder_load(checkpoint, info);   // throws, naming the file, when it holds no encoder
  detail::encoder_save(out, net, std::move(info), half, hints);
}

void detail::encoder_save(const std::string& out, ResNet& net, CheckpointInfo info, bool half, const PropagationHints& hints) {
  if (half) {
    torch::NoGradGuard ng;
    for (auto& p : net->parameters()) p.set_data(p.to(torch::kHalf));
    for (auto& b : net->buffers()) if (b.is_floating_point()) b.set_data(b.to(torch::kHalf));
  }
  info.encoder_module.clear();
  info.record.erase("optimizer");
  info.exported_from_step = info.step;
  info.weights = half ? "float16" : "float32";
  if (!hints.empty()) info.propagation = hints;
  checkpoint_save(out, *net, info);
}

std::unique_ptr<FeatureExtractor> feature_extractor_load(const std::string& checkpoint, torch::Device device,
                                                         Precision precision) {
  const CheckpointInfo info = checkpoint_info_read(checkpoint);
  ResNet net = detail::encoder_load(checkpoint, info);
  if (info.input->colour != "rgb" && info.input->colour != "lab") {
    throw Error("checkpoint '" + checkpoint + "': key 'input.colour' must be rgb or lab, got '" + info.input->colour + "'");
  }
  return std::make_unique<ResNetFeatures>(net, info.method, info.input->colour, info.input->mean, info.input->std, device,
                                          precision);
}

torch::Tensor features_flip_averaged(FeatureExtractor& features, const Image& frame) {
  Image mirror = frame;
  const size_t c = size_t(frame.channels);
  for (int y = 0; y < frame.height; ++y)
    for (int x = 0; x < frame.width; ++x) std::memcpy(mirror.px(x, y), frame.px(frame.width - 1 - x, y), c);
  const auto sum = features.extract(frame) + features.extract(mirror).flip({2});
  return F::normalize(sum, F::NormalizeFuncOptions().dim(0));
}

}  // namespace corrtrack
