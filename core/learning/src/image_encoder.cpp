// Encoders of the image methods: a small ConvNet for 28x28 images and ResNet-18 for 32x32.
#include "corrtrack/image_encoder.h"

#include <nlohmann/json.hpp>

namespace nn = torch::nn;
using nlohmann::json;

namespace corrtrack {

std::string image_encoder_config_to_json(const ImageEncoderConfig& c) {
  json j{{"kind", c.kind}, {"in_channels", c.in_channels}, {"width", c.width}};
  if (c.patch > 0) {
    j["patch"] = c.patch;
    j["patch_stride"] = c.patch_stride;
  }
  return j.dump();
}

ImageEncoderConfig image_encoder_config_from_json(const std::string& text) {
  try {
    const auto j = json::parse(text);
    ImageEncoderConfig c{j.at("kind").get<std::string>(), j.at("in_channels").get<int>(), j.at("width").get<int>()};
    c.patch = j.value("patch", 0);
    c.patch_stride = j.value("patch_stride", 0);
    return c;
  } catch (const json::exception& e) {
    throw Error(std::string("invalid image encoder configuration: ") + e.what());
  }
}

namespace {
void conv_bn_relu(nn::Sequential& seq, int in, int out) {
  seq->push_back(nn::Conv2d(nn::Conv2dOptions(in, out, 3).padding(1).bias(false)));
  seq->push_back(SyncBatchNorm2d(out));
  seq->push_back(nn::ReLU());
}
}  // namespace

ImageEncoderImpl::ImageEncoderImpl(const ImageEncoderConfig& cfg) : m_cfg(cfg) {
  if (cfg.in_channels < 1 || cfg.width < 1) throw Error("image encoder needs in_channels and width >= 1");
  if (cfg.patch < 0 || (cfg.patch > 0 && cfg.patch_stride < 1)) throw Error("image encoder: a patch encoder needs a patch side and a stride >= 1");
  if (cfg.kind == "convnet") {
    const int w = cfg.width;
    nn::Sequential seq;
    conv_bn_relu(seq, cfg.in_channels, w);
    conv_bn_relu(seq, w, w);
    seq->push_back(nn::MaxPool2d(2));
    conv_bn_relu(seq, w, 2 * w);
    conv_bn_relu(seq, 2 * w, 2 * w);
    seq->push_back(nn::MaxPool2d(2));
    conv_bn_relu(seq, 2 * w, 4 * w);
    m_convnet = register_module("convnet", seq);
    m_dim = 4 * w;
  } else if (cfg.kind == "resnet18") {
    ResNetConfig rc;
    rc.in_channels = cfg.in_channels;
    rc.stem_stride = 1;
    rc.max_pool = false;
    m_resnet = register_module("resnet", ResNet(rc));
    m_dim = rc.output_channels();
  } else {
    throw Error("unknown image encoder '" + cfg.kind + "': use convnet or resnet18");
  }
}

torch::Tensor ImageEncoderImpl::forward(torch::Tensor x) {
  auto f = m_convnet ? m_convnet->forward(x) : m_resnet->forward(x);
  return f.mean({2, 3});
}

torch::Tensor ImageEncoderImpl::patch_features(const torch::Tensor& x) {
  const int p = m_cfg.patch;
  if (p <= 0) throw Error("patch_features: the encoder has no patch configuration");
  if (x.size(2) < p || x.size(3) < p) {
    throw Error("images of " + std::to_string(x.size(3)) + "x" + std::to_string(x.size(2)) + " are smaller than the encoder's " +
                std::to_string(p) + "-pixel patches");
  }
  const int64_t b = x.size(0), c = x.size(1);
  auto patches = x.unfold(2, p, m_cfg.patch_stride).unfold(3, p, m_cfg.patch_stride);   // [B, C, Gy, Gx, p, p]
  const int64_t gy = patches.size(2), gx = patches.size(3);
  auto flat = patches.permute({0, 2, 3, 1, 4, 5}).reshape({b * gy * gx, c, p, p});
  return forward(flat).view({b, gy, gx, -1});
}

torch::Tensor ImageEncoderImpl::embed(const torch::Tensor& x) { return m_cfg.patch > 0 ? patch_features(x).mean({1, 2}) : forward(x); }

ImageEncoderConfig image_checkpoint_encoder(const CheckpointInfo& info, const std::string& checkpoint) {
  if (info.image_encoder_json.empty()) {
    throw Error("checkpoint '" + checkpoint + "' is not an image-method checkpoint (method '" + info.method + "')");
  }
  try {
    return image_encoder_config_from_json(info.image_encoder_json);
  } catch (const Error& e) {
    throw Error("checkpoint '" + checkpoint + "': " + e.what());
  }
}

ImageEncoderConfig image_checkpoint_encoder(const std::string& checkpoint) {
  return image_checkpoint_encoder(checkpoint_info_read(checkpoint), checkpoint);
}


}  // namespace corrtrack
