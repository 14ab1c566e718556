// BatchNorm folding and the reduced-precision forward pass of a ResNet encoder.
#include "inference_encoder.h"

#include <map>
#include <memory>

namespace corrtrack::detail {

namespace {

using Modules = std::map<std::string, std::shared_ptr<torch::nn::Module>>;

template <class M>
M* module_at(const Modules& modules, const std::string& name) {
  auto it = modules.find(name);
  M* m = it == modules.end() ? nullptr : it->second->as<M>();
  if (!m) throw Error("encoder has no module '" + name + "' of the expected kind");
  return m;
}

// The conv `name` with the BatchNorm `bn` (empty: none) folded in, cast to dtype, channels-last.
InferenceEncoder::Conv fold(const Modules& modules, const std::string& name, const std::string& bn,
                            torch::ScalarType dtype, torch::Device device) {
  const auto* conv = module_at<torch::nn::Conv2dImpl>(modules, name);
  const auto& o = conv->options;
  InferenceEncoder::Conv c;
  auto w = conv->weight.detach().to(torch::kFloat);
  auto b = conv->bias.defined() ? conv->bias.detach().to(torch::kFloat) : torch::zeros({w.size(0)}, w.options());
  if (!bn.empty()) {
    const auto* norm = module_at<SyncBatchNormImpl>(modules, bn);
    auto s = norm->weight.to(torch::kFloat) * torch::rsqrt(norm->running_var.to(torch::kFloat) + norm->eps);
    w = w * s.view({-1, 1, 1, 1});
    b = norm->bias.to(torch::kFloat) + (b - norm->running_mean.to(torch::kFloat)) * s;
  }
  c.weight = w.to(device, dtype).contiguous(at::MemoryFormat::ChannelsLast);
  c.bias = b.to(device, dtype);
  // Our ResNets use square strides, paddings and dilations: one number each.
  const auto& pad = c10::get<torch::ExpandingArray<2>>(o.padding());
  c.stride = (*o.stride())[0];
  c.padding = (*pad)[0];
  c.dilation = (*o.dilation())[0];
  c.reflect = c10::holds_alternative<torch::enumtype::kReflect>(o.padding_mode());
  return c;
}

}  // namespace

torch::Tensor reflect_pad(const torch::Tensor& x, int64_t p) {
  if (p == 0) return x;
  const int64_t H = x.size(2), W = x.size(3);
  TORCH_CHECK(p < H && p < W, "reflect_pad: padding must be smaller than the input");
  // Written into a tensor of the input's layout (channels-last stays channels-last): the centre,
  // then the mirrored columns, then the mirrored rows (corners included).
  auto out = at::empty({x.size(0), x.size(1), H + 2 * p, W + 2 * p}, x.options(), x.suggest_memory_format());
  auto rows = out.narrow(2, p, H);
  rows.narrow(3, p, W).copy_(x);
  for (int64_t i = 1; i <= p; ++i) {
    rows.narrow(3, p - i, 1).copy_(x.narrow(3, i, 1));
    rows.narrow(3, p + W - 1 + i, 1).copy_(x.narrow(3, W - 1 - i, 1));
  }
  for (int64_t i = 1; i <= p; ++i) {
    out.narrow(2, p - i, 1).copy_(out.narrow(2, p + i, 1));
    out.narrow(2, p + H - 1 + i, 1).copy_(out.narrow(2, p + H - 1 - i, 1));
  }
  return out;
}

torch::Tensor InferenceEncoder::Conv::operator()(const torch::Tensor& x) const {
  const std::vector<int64_t> s{stride, stride}, d{dilation, dilation};
  if (!reflect) return torch::conv2d(x, weight, bias, s, std::vector<int64_t>{padding, padding}, d);
  // Convolving the mirrored input without padding is what reflect padding means, but oneDNN's
  // bfloat16 kernel for unpadded inputs of odd width ran 6x slower (76 vs 12 ms for 256 channels
  // at 60x107). So it is given `stride` more zero padding, and the outer ring of outputs (the only
  // ones that see it) is cut off again.
  const auto padded = reflect_pad(x, padding);
  const auto y = torch::conv2d(padded, weight, bias, s, std::vector<int64_t>{stride, stride}, d);
  auto out_size = [&](int64_t n, int64_t kernel) { return (n - dilation * (kernel - 1) - 1) / stride + 1; };
  return y.narrow(2, 1, out_size(padded.size(2), weight.size(2))).narrow(3, 1, out_size(padded.size(3), weight.size(3)));
}

InferenceEncoder::InferenceEncoder(ResNetImpl& net, torch::ScalarType dtype, torch::Device device) : m_dtype(dtype) {
  torch::NoGradGuard ng;
  Modules modules;
  for (const auto& item : net.named_modules()) modules[item.key()] = item.value();
  const ResNetConfig& cfg = net.config();
  m_max_pool = cfg.max_pool;
  m_stem = fold(modules, "conv1", "bn1", dtype, device);
  const bool bottleneck = cfg.depth == 50;
  for (int s = 0; s < cfg.num_stages; ++s) {
    const std::string stage = "layer" + std::to_string(s + 1) + ".";
    for (int b = 0;; ++b) {
      const std::string p = stage + std::to_string(b) + ".";
      if (!modules.count(p + "conv1")) break;
      Block block;
      for (int i = 1; i <= (bottleneck ? 3 : 2); ++i) {
        block.convs.push_back(fold(modules, p + "conv" + std::to_string(i), p + "bn" + std::to_string(i), dtype, device));
      }
      if (modules.count(p + "downsample")) block.down = fold(modules, p + "downsample.0", p + "downsample.1", dtype, device);
      m_blocks.push_back(std::move(block));
    }
  }
  if (cfg.head_channels > 0) m_head = fold(modules, "head", "", dtype, device);
}

torch::Tensor InferenceEncoder::forward(const torch::Tensor& input) const {
  torch::NoGradGuard ng;
  auto x = torch::relu(m_stem(input.to(m_dtype).contiguous(at::MemoryFormat::ChannelsLast)));
  if (m_max_pool) x = torch::max_pool2d(x, 3, 2, 1);
  for (const auto& block : m_blocks) {
    auto y = x;
    for (size_t i = 0; i < block.convs.size(); ++i) {
      y = block.convs[i](y);
      if (i + 1 < block.convs.size()) y = torch::relu(y);
    }
    x = torch::relu(y + (block.down ? (*block.down)(x) : x));
  }
  if (m_head) x = (*m_head)(x);
  return x.to(torch::kFloat).contiguous();
}

}  // namespace corrtrack::detail
