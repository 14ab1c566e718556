// Encoders of the image methods: a small ConvNet for 28x28 images and ResNet-18 for 32x32.
#include "corrtrack/image_encoder.h"

#include <nlohmann/json.hpp>

namespace nn = torch::nn;
using nlohmann::json;

namespace corrtrack {

std::string image_encoder_config_to_json(const ImageEncoderConfig& c) {
  return json{{"kind", c.kind}, {"in_channels", c.in_channels}, {"width", c.width}}.dump();
}

ImageEncoderConfig image_encoder_config_from_json(const std::string& text) {
  try {
    const auto j = json::parse(text);
    return {j.at("kind").get<std::string>(), j.at("in_channels").get<int>(), j.at("width").get<int>()};
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
