// ResNet-18/50 from scratch with per-stage strides and dilations (CRW res3, CorrFlow/MAST stride 4).
#include "corrtrack/core.h"
#include "corrtrack/encoder_precision.h"
#include "encoder_autocast.h"

#include <cmath>
#include <optional>

namespace corrtrack {

namespace nn = torch::nn;

namespace {

nn::Conv2d conv3x3(int in, int out, int stride, int dilation, bool reflect) {
  auto opts = nn::Conv2dOptions(in, out, 3).stride(stride).padding(dilation).dilation(dilation).bias(false);
  if (reflect) opts.padding_mode(torch::kReflect);
  return nn::Conv2d(opts);
}

nn::Conv2d conv1x1(int in, int out, int stride) {
  return nn::Conv2d(nn::Conv2dOptions(in, out, 1).stride(stride).bias(false));
}

// Residual block; BasicBlock (two 3x3) for ResNet-18, Bottleneck (1x1-3x3-1x1, x4) for ResNet-50.
class BlockImpl : public nn::Module {
 public:
  BlockImpl(bool bottleneck, int in, int width, int stride, int dilation, bool reflect) : m_bottleneck(bottleneck) {
    const int out = bottleneck ? width * 4 : width;
    if (bottleneck) {
      c1 = register_module("conv1", conv1x1(in, width, 1));
      b1 = register_module("bn1", SyncBatchNorm2d(width));
      c2 = register_module("conv2", conv3x3(width, width, stride, dilation, reflect));
      b2 = register_module("bn2", SyncBatchNorm2d(width));
      c3 = register_module("conv3", conv1x1(width, out, 1));
      b3 = register_module("bn3", SyncBatchNorm2d(out));
    } else {
      c1 = register_module("conv1", conv3x3(in, width, stride, dilation, reflect));
      b1 = register_module("bn1", SyncBatchNorm2d(width));
      c2 = register_module("conv2", conv3x3(width, width, 1, dilation, reflect));
      b2 = register_module("bn2", SyncBatchNorm2d(width));
    }
    if (stride != 1 || in != out) {
      down = register_module("downsample", nn::Sequential(conv1x1(in, out, stride), SyncBatchNorm2d(out)));
    }
  }

  torch::Tensor forward(torch::Tensor x) {
    torch::Tensor identity = down ? down->forward(x) : x;
    torch::Tensor y = torch::relu(b1(c1(x)));
    y = b2(c2(y));
    if (m_bottleneck) y = b3(c3(torch::relu(y)));
    return torch::relu(y + identity);
  }

 private:
  bool m_bottleneck;
  nn::Conv2d c1{nullptr}, c2{nullptr}, c3{nullptr};
  SyncBatchNorm2d b1{nullptr}, b2{nullptr}, b3{nullptr};
  nn::Sequential down{nullptr};
};
TORCH_MODULE(Block);

int blocks_per_stage(int depth, int stage) {
  static const int k18[4] = {2, 2, 2, 2};
  static const int k50[4] = {3, 4, 6, 3};
  return depth == 18 ? k18[stage] : k50[stage];
}

void validate(const ResNetConfig& c) {
  if (c.depth != 18 && c.depth != 50) throw Error("ResNet depth must be 18 or 50, got " + std::to_string(c.depth));
  if (c.num_stages < 1 || c.num_stages > 4) throw Error("ResNet num_stages must be 1..4");
  if (c.head_channels < 0) throw Error("ResNet head_channels must be >= 0");
  if (c.head_kernel != 1 && c.head_kernel != 3) throw Error("ResNet head_kernel must be 1 or 3");
  if (c.strides.size() != 4 || c.dilations.size() != 4 || c.widths.size() != 4) {
    throw Error("ResNet strides, dilations and widths need 4 entries each");
  }
}

}  // namespace

int ResNetConfig::output_stride() const {
  int s = stem_stride * (max_pool ? 2 : 1);
  for (int i = 0; i < num_stages; ++i) s *= strides[i];
  return s;
}

int ResNetConfig::output_channels() const {
  if (head_channels > 0) return head_channels;
  return widths[num_stages - 1] * (depth == 50 ? 4 : 1);
}

ResNetConfig ResNetConfig::crw_res3() {
  ResNetConfig c;
  c.depth = 18;
  c.strides = {1, 2, 1, 1};
  c.num_stages = 3;
  c.reflect_pad = true;
  return c;
}

ResNetConfig ResNetConfig::stride4_64d() {
  ResNetConfig c;
  c.depth = 18;
  c.max_pool = false;
  c.strides = {1, 2, 1, 1};
  c.widths = {64, 128, 256, 256};
  c.head_channels = 64;
  return c;
}

ResNetConfig ResNetConfig::timecycle_res4(int depth) {
  ResNetConfig c;
  c.depth = depth;
  c.strides = {1, 2, 1, 1};
  c.num_stages = 3;
  c.head_channels = 512;
  c.head_kernel = 1;
  return c;
}

ResNetImpl::ResNetImpl(const ResNetConfig& cfg) : m_cfg(cfg) {
  validate(cfg);
  auto stem = nn::Conv2dOptions(cfg.in_channels, 64, 7).stride(cfg.stem_stride).padding(3).bias(false);
  m_conv1 = register_module("conv1", nn::Conv2d(stem));
  m_bn1 = register_module("bn1", SyncBatchNorm2d(64));
  const bool bottleneck = cfg.depth == 50;
  int in = 64;
  for (int s = 0; s < cfg.num_stages; ++s) {
    nn::Sequential stage;
    const int width = cfg.widths[s];
    for (int b = 0; b < blocks_per_stage(cfg.depth, s); ++b) {
      const int stride = b == 0 ? cfg.strides[s] : 1;
      stage->push_back(Block(bottleneck, in, width, stride, cfg.dilations[s], cfg.reflect_pad));
      in = bottleneck ? width * 4 : width;
    }
    m_stages.push_back(register_module("layer" + std::to_string(s + 1), stage));
  }
  if (cfg.head_channels > 0) {
    m_head = register_module("head", nn::Conv2d(nn::Conv2dOptions(in, cfg.head_channels, cfg.head_kernel).padding(cfg.head_kernel / 2)));
  }
}

torch::Tensor ResNetImpl::forward(torch::Tensor x) {
  // Under an EncoderBf16Scope: bf16 autocast for the layers, the features back in float32.
  const bool bf16 = EncoderBf16Scope::active() && x.scalar_type() == torch::kFloat;
  std::optional<detail::AutocastBf16> autocast;
  if (bf16) autocast.emplace(x.device());
  x = torch::relu(m_bn1(m_conv1(x)));
  if (m_cfg.max_pool) x = torch::max_pool2d(x, 3, 2, 1);
  for (auto& stage : m_stages) x = stage->forward(x);
  if (m_head) x = m_head(x);
  return bf16 ? x.to(torch::kFloat) : x;
}

void resnet_init(ResNet& net, uint64_t seed) {
  torch::NoGradGuard no_grad;
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  for (auto& m : net->modules(/*include_self=*/false)) {
    if (auto* conv = m->as<nn::Conv2d>()) {
      auto& w = conv->weight;
      const double fan_out = static_cast<double>(w.size(0) * w.size(2) * w.size(3));
      // Kaiming normal, mode fan_out, ReLU gain; drawn on CPU so the seed fixes the values everywhere.
      auto v = at::normal(0.0, std::sqrt(2.0 / fan_out), w.sizes(), gen, torch::TensorOptions().dtype(torch::kFloat));
      w.copy_(v);
      // A bias (the projection head's) gets PyTorch's default range, U(-1/sqrt(fan_in), 1/sqrt(fan_in)),
      // from the same generator: left to the default init it came from the process's global
      // generator, which LibTorch seeds nondeterministically, so runs with one seed differed.
      if (conv->bias.defined()) {
        const double bound = 1.0 / std::sqrt(static_cast<double>(w.size(1) * w.size(2) * w.size(3)));
        auto u = at::empty(conv->bias.sizes(), torch::TensorOptions().dtype(torch::kFloat)).uniform_(-bound, bound, gen);
        conv->bias.copy_(u);
      }
    } else if (auto* bn = m->as<SyncBatchNorm>()) {
      bn->weight.fill_(1.0);
      bn->bias.fill_(0.0);
    }
  }
}

bool ResNetConfig::operator==(const ResNetConfig& o) const {
  return depth == o.depth && in_channels == o.in_channels && stem_stride == o.stem_stride && max_pool == o.max_pool &&
         strides == o.strides && dilations == o.dilations && widths == o.widths && num_stages == o.num_stages &&
         reflect_pad == o.reflect_pad && head_channels == o.head_channels && head_kernel == o.head_kernel;
}

}  // namespace corrtrack
