// The anchor term of the test-time adaptation (anchor_term.h).
#include "anchor_term.h"

#include "corrtrack/augment.h"
#include "corrtrack/checkpoint_info.h"
#include "corrtrack/ops.h"

#include "label_grid.h"

#include <algorithm>
#include <cmath>

namespace corrtrack::detail {

torch::Tensor anchor_readout_loss(const torch::Tensor& keys, const torch::Tensor& key_labels, const torch::Tensor& queries,
                                  const torch::Tensor& query_labels, const torch::Tensor& valid, int topk, double temperature) {
  const auto affinity = queries.t().matmul(keys) / temperature;   // [Q, K]
  torch::Tensor predicted;                                         // [Q, L]
  if (topk > 0 && topk < keys.size(1)) {
    const auto [values, index] = affinity.topk(topk, 1);
    const auto w = torch::softmax(values, 1);                                            // [Q, k]
    predicted = (w.unsqueeze(-1) * key_labels.index({index})).sum(1);                    // [Q, k, L] -> [Q, L]
  } else {
    predicted = torch::softmax(affinity, 1).matmul(key_labels);
  }
  const auto ce = -(query_labels * predicted.clamp(1e-4, 1.0).log()).sum(1);   // [Q]
  const auto cls = query_labels.argmax(1);
  auto total = torch::zeros({}, ce.options());
  int present = 0;
  for (int64_t c = 0; c < query_labels.size(1); ++c) {
    const auto cells = valid.logical_and(cls == c);
    if (!cells.any().item<bool>()) continue;
    total = total + ce.masked_select(cells).mean();
    ++present;
  }
  return present ? total / present : total;
}

AnchorWarped anchor_warp(const torch::Tensor& input, const torch::Tensor& labels, const AnchorWarp& w, bool lab) {
  // affine_grid's inverse map from output to input coordinates in [-1, 1].
  const double m = w.mirror ? -1.0 : 1.0;
  const auto theta = torch::tensor({float(m / w.scale), 0.0f, float(w.shift_x), 0.0f, float(1.0 / w.scale), float(w.shift_y)})
                         .view({1, 2, 3})
                         .to(input.device());
  const auto grid = F::affine_grid(theta, input.sizes(), false);
  const auto opts = F::GridSampleFuncOptions().mode(torch::kBilinear).padding_mode(torch::kZeros).align_corners(false);
  std::vector<float> gain(size_t(input.size(1)), lab ? 1.0f : float(w.contrast));
  gain[0] = float(w.contrast);
  const auto g = torch::tensor(gain).view({1, input.size(1), 1, 1}).to(input.device());
  return {F::grid_sample(input, grid, opts) * g, F::grid_sample(labels, grid, opts),
          F::grid_sample(torch::ones_like(labels.narrow(1, 0, 1)), grid, opts)};
}

namespace {

constexpr int64_t kMaxQueries = 8192;   // query cells per step (a 427x240 frame at stride 4 has 6420)

// One annotated frame at the internal resolution.
struct AnchorView {
  torch::Tensor input;    // [1, C, Hs, Ws]: the encoder's input (the model's colour space, standardised)
  torch::Tensor labels;   // [1, L, Hs, Ws]: the one-hot mask, area-resized to the internal size
};

class AnchorTermMethod : public TrainableMethod {
 public:
  AnchorTermMethod(std::unique_ptr<TrainableMethod> inner, const std::vector<AdaptAnchor>& anchors, const AnchorTermConfig& config)
      : m_inner(std::move(inner)), m_config(config) {
    if (anchors.empty()) throw Error("the adaptation's anchor term needs at least one annotated frame");
    const CheckpointInfo info = m_inner->checkpoint_info();
    if (!info.input || !info.encoder) throw Error("method " + info.method + " has no video encoder for the anchor term");
    m_input = *info.input;
    m_stride = info.encoder->output_stride();
    for (const auto& item : m_inner->module().named_modules()) {
      if (item.key() == info.encoder_module) m_encoder = std::dynamic_pointer_cast<ResNetImpl>(item.value());
    }
    if (!m_encoder) throw Error("method " + info.method + " has no ResNet encoder '" + info.encoder_module + "'");
    int64_t labels = 0;
    for (const auto& a : anchors) {
      if (a.mask.width != a.frame.width || a.mask.height != a.frame.height || a.mask.channels != 1) {
        throw Error("an anchor mask is not a 1-channel mask of its frame's size");
      }
      labels = std::max<int64_t>(labels, mask_num_objects(a.mask) + 1);
    }
    if (labels < 2) throw Error("the anchor masks hold no object to adapt to");
    for (const auto& a : anchors) m_views.push_back(view_of(a, labels));
  }

  std::string name() const override { return m_inner->name(); }
  torch::nn::Module& module() override { return m_inner->module(); }
  std::vector<torch::Tensor> trainable_parameters() override { return m_inner->trainable_parameters(); }
  void set_device(torch::Device device) override {
    m_inner->set_device(device);
    m_device = device;
    for (auto& v : m_views) v = AnchorView{v.input.to(device), v.labels.to(device)};
  }
  void after_step(int64_t step, int64_t total) override { m_inner->after_step(step, total); }
  CheckpointInfo checkpoint_info() const override { return m_inner->checkpoint_info(); }

  StepOutput step(int64_t step, torch::Generator& gen) override {
    StepOutput out = m_inner->step(step, gen);
    const auto term = anchor_term(m_views[size_t(random_int(gen, int64_t(m_views.size())))], gen);
    out.loss = out.loss + m_config.weight * term;
    out.metrics.emplace_back("anchor", term.item<double>());
    return out;
  }

 private:
  AnchorView view_of(const AdaptAnchor& a, int64_t labels) {
    LabelGrid grid;
    grid.set_frame(a.frame.width, a.frame.height, m_config.scale);
    grid.area = true;
    AnchorView v;
    v.input = input_of(image_to_tensor(grid.internal(a.frame)).unsqueeze(0));
    v.labels = grid.internal_labels(a.mask, labels);
    return v;
  }

  // The encoder's input from RGB [1, 3, H, W] in [0, 1], by the model's input convention.
  torch::Tensor input_of(const torch::Tensor& rgb) const {
    auto x = rgb.squeeze(0);
    if (m_input.colour == "lab") x = rgb_to_lab(x);
    return standardise_channels(x, m_input.mean, m_input.std).unsqueeze(0);
  }

  // A view's feature cells: features [C, h * w], L2-normalised, labels [h * w, L], and the grid
  // that averages any [1, n, Hs, Ws] map of the view over its cells.
  struct Cells {
    torch::Tensor features, labels;
    LabelGrid grid;
  };
  Cells cells_of(const torch::Tensor& input, const torch::Tensor& labels) {
    const auto f = m_encoder->forward(input).squeeze(0);   // [C, h, w]
    LabelGrid grid;
    grid.Hs = input.size(2);
    grid.Ws = input.size(3);
    grid.h = f.size(1);
    grid.w = f.size(2);
    grid.stride = m_stride;
    grid.area = true;
    const auto l = grid.labels_from_internal(labels);   // [L, h, w]: each cell's label fractions
    return {l2_normalise(f.flatten(1), 0), l.flatten(1).t(), grid};
  }

  torch::Tensor anchor_term(const AnchorView& v, torch::Generator& gen) {
    AnchorWarp w;
    w.scale = random_uniform(gen, 0.8, 1.2);
    w.shift_x = random_uniform(gen, -0.15, 0.15);
    w.shift_y = random_uniform(gen, -0.15, 0.15);
    w.mirror = random_uniform(gen) < 0.5;
    w.contrast = random_uniform(gen, 0.9, 1.1);
    const AnchorWarped copy = anchor_warp(v.input, v.labels, w, m_input.colour == "lab");
    const Cells key = cells_of(v.input, v.labels), query = cells_of(copy.input, copy.labels);
    // A query cell is valid when the warp took all of it from inside the frame.
    const auto valid = query.grid.labels_from_internal(copy.inside).flatten().gt(0.999);
    // At most kMaxQueries of the valid cells, drawn at random: the affinities are [queries, keys].
    auto cells = valid.nonzero().flatten();
    if (cells.size(0) > kMaxQueries) {
      cells = cells.index({torch::randperm(cells.size(0), gen, torch::TensorOptions().dtype(torch::kLong)).narrow(0, 0, kMaxQueries).to(cells.device())});
    }
    const auto all = torch::ones({cells.size(0)}, valid.options());
    return anchor_readout_loss(key.features, key.labels, query.features.index_select(1, cells), query.labels.index_select(0, cells),
                               all, m_config.topk, m_config.temperature);
  }

  std::unique_ptr<TrainableMethod> m_inner;
  AnchorTermConfig m_config;
  InputConvention m_input;
  int m_stride = 4;
  std::shared_ptr<ResNetImpl> m_encoder;
  std::vector<AnchorView> m_views;
};

}  // namespace

std::unique_ptr<TrainableMethod> method_with_anchor_term(std::unique_ptr<TrainableMethod> inner,
                                                         const std::vector<AdaptAnchor>& anchors, const AnchorTermConfig& config) {
  return std::make_unique<AnchorTermMethod>(std::move(inner), anchors, config);
}

}  // namespace corrtrack::detail
