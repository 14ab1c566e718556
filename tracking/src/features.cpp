// Feature extractors for propagation: the parameter-free Lab baseline, a randomly initialised
// ResNet-18 (CRW's stride-8 res3 layout) and encoders loaded from checkpoints.
#include "corrtrack/tracking.h"

#include <nlohmann/json.hpp>

namespace F = torch::nn::functional;

namespace corrtrack {

const std::vector<double> kImageNetMean{0.485, 0.456, 0.406};
const std::vector<double> kImageNetStd{0.229, 0.224, 0.225};

namespace {

torch::Tensor l2_normalize(const torch::Tensor& f) {
  return F::normalize(f, F::NormalizeFuncOptions().p(2).dim(0).eps(1e-12));
}

// Parameter-free baseline: Lab averaged over 4x4 pixels, each stride-8 cell described by its
// 2x2 sub-cells (12 values: L-50, a, b scaled by 1/50), L2-normalised.
class PixelFeatures : public FeatureExtractor {
 public:
  torch::Tensor extract(const Image& frame) override {
    torch::NoGradGuard ng;
    auto lab = rgb_to_lab(image_to_tensor(frame));
    lab = normalize_channels(lab, {50.0, 0.0, 0.0}, {50.0, 50.0, 50.0});
    auto pooled = F::avg_pool2d(lab.unsqueeze(0), F::AvgPool2dFuncOptions(4).stride(4).ceil_mode(true).count_include_pad(false));
    const int64_t h4 = pooled.size(2), w4 = pooled.size(3);
    pooled = F::pad(pooled, F::PadFuncOptions({0, w4 % 2, 0, h4 % 2}).mode(torch::kReplicate));
    auto cells = torch::pixel_unshuffle(pooled, 2).squeeze(0);
    return l2_normalize(cells).contiguous();
  }
  int stride() const override { return 8; }
  std::string name() const override { return "pixels"; }
};

// A ResNet encoder with its input convention (RGB + mean/std, or Lab).
class ResNetFeatures : public FeatureExtractor {
 public:
  ResNetFeatures(ResNet net, std::string name, std::string colour, std::vector<double> mean, std::vector<double> stdv,
                 torch::Device device)
      : m_net(std::move(net)), m_name(std::move(name)), m_colour(std::move(colour)), m_mean(std::move(mean)),
        m_std(std::move(stdv)), m_device(device) {
    m_net->eval();
    m_net->to(device);
  }

  torch::Tensor extract(const Image& frame) override {
    torch::NoGradGuard ng;
    auto x = image_to_tensor(frame);
    if (m_colour == "lab") x = rgb_to_lab(x);
    x = normalize_channels(x, m_mean, m_std).unsqueeze(0).to(m_device);
    auto f = m_net->forward(x).squeeze(0);
    return l2_normalize(f).to(torch::kCPU).contiguous();
  }
  int stride() const override { return m_net->config().output_stride(); }
  std::string name() const override { return m_name; }

 private:
  ResNet m_net;
  std::string m_name, m_colour;
  std::vector<double> m_mean, m_std;
  torch::Device m_device;
};

ResNet random_resnet(uint64_t seed) {
  ResNet net(ResNetConfig::crw_res3());
  resnet_init(net, seed);
  return net;
}

}  // namespace

std::unique_ptr<FeatureExtractor> feature_extractor_create(const std::string& kind, uint64_t seed, torch::Device device) {
  if (kind == "pixels") return std::make_unique<PixelFeatures>();
  if (kind == "random") {
    return std::make_unique<ResNetFeatures>(random_resnet(seed), "random", "rgb", kImageNetMean, kImageNetStd, device);
  }
  throw Error("unknown features '" + kind + "': use pixels, random, or --checkpoint FILE");
}

void feature_extractor_save_random(const std::string& path, uint64_t seed) {
  ResNet net = random_resnet(seed);
  nlohmann::json meta = {{"format", 1},
                         {"method", "random"},
                         {"encoder", nlohmann::json::parse(resnet_config_to_json(net->config()))},
                         {"input", {{"colour", "rgb"}, {"mean", kImageNetMean}, {"std", kImageNetStd}}},
                         {"seed", seed}};
  checkpoint_save(path, *net, meta.dump());
}

void feature_encoder_export(const std::string& checkpoint, const std::string& out, bool half, const std::string& propagation_json) {
  nlohmann::json meta;
  try {
    meta = nlohmann::json::parse(checkpoint_metadata(checkpoint));
  } catch (const nlohmann::json::exception&) {
    throw Error("checkpoint '" + checkpoint + "' has unreadable metadata");
  }
  if (!meta.contains("encoder")) throw Error("checkpoint '" + checkpoint + "' holds no feature encoder to export");
  ResNet net(resnet_config_from_json(meta["encoder"].dump()));
  checkpoint_load(checkpoint, *net, meta.value("encoder_module", std::string()));
  if (half) {
    torch::NoGradGuard ng;
    for (auto& p : net->parameters()) p.set_data(p.to(torch::kHalf));
    for (auto& b : net->buffers()) if (b.is_floating_point()) b.set_data(b.to(torch::kHalf));
  }
  meta.erase("encoder_module");
  meta.erase("optimizer");
  meta["exported_from"] = {{"step", meta.value("step", int64_t(0))}};
  meta["weights"] = half ? "float16" : "float32";
  if (!propagation_json.empty()) {
    auto p = nlohmann::json::parse(propagation_json, nullptr, false);
    if (p.is_discarded() || !p.is_object()) throw Error("--propagation must be a JSON object, got '" + propagation_json + "'");
    meta["propagation"] = p;
  }
  checkpoint_save(out, *net, meta.dump());
}

std::unique_ptr<FeatureExtractor> feature_extractor_load(const std::string& checkpoint, torch::Device device) {
  const std::string text = checkpoint_metadata(checkpoint);
  nlohmann::json meta;
  try {
    meta = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception&) {
    throw Error("checkpoint '" + checkpoint + "' has unreadable metadata");
  }
  if (!meta.contains("encoder") || !meta.contains("input")) {
    throw Error("checkpoint '" + checkpoint + "' does not describe a feature encoder (no 'encoder'/'input' metadata)");
  }
  ResNet net(resnet_config_from_json(meta["encoder"].dump()));
  checkpoint_load(checkpoint, *net, meta.value("encoder_module", std::string()));
  const auto& in = meta["input"];
  try {
    return std::make_unique<ResNetFeatures>(net, meta.value("method", std::string("checkpoint")), in.at("colour").get<std::string>(),
                                            in.at("mean").get<std::vector<double>>(), in.at("std").get<std::vector<double>>(), device);
  } catch (const nlohmann::json::exception& e) {
    throw Error("checkpoint '" + checkpoint + "' has invalid input metadata: " + e.what());
  }
}

}  // namespace corrtrack
