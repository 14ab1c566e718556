// Image self-supervised methods: encoders, batched augmentation, the eleven methods and their
// evaluation (kNN, linear probe, NMI, alignment/uniformity). Settings follow PROTOCOLS.md.
#include "corrtrack/image_methods.h"

#include "corrtrack/contrastive.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <functional>

namespace F = torch::nn::functional;
namespace nn = torch::nn;
using nlohmann::json;

namespace corrtrack {

// ---------------------------------------------------------------------------------------------
// Encoders and heads
// ---------------------------------------------------------------------------------------------

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
  seq->push_back(nn::BatchNorm2d(out));
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

namespace {

class MlpHeadImpl : public nn::Module {
 public:
  MlpHeadImpl(int in, int hidden, int out)
      : fc1(register_module("fc1", nn::Linear(in, hidden))), bn(register_module("bn", nn::BatchNorm1d(hidden))),
        fc2(register_module("fc2", nn::Linear(hidden, out))) {}
  torch::Tensor forward(torch::Tensor x) { return fc2(torch::relu(bn(fc1(x)))); }
  nn::Linear fc1;
  nn::BatchNorm1d bn;
  nn::Linear fc2;
};
TORCH_MODULE(MlpHead);

torch::Tensor unit(const torch::Tensor& x) { return F::normalize(x, F::NormalizeFuncOptions().dim(1)); }

}  // namespace

// ---------------------------------------------------------------------------------------------
// Augmentation
// ---------------------------------------------------------------------------------------------

namespace {
// (x - mean) / std per channel of float images [B, C, H, W] in [0, 1].
torch::Tensor standardise(const torch::Tensor& x, const std::vector<double>& mean, const std::vector<double>& stdv) {
  const int64_t c = x.size(1);
  auto m = torch::tensor(std::vector<float>(mean.begin(), mean.end())).view({1, c, 1, 1}).to(x.device());
  auto s = torch::tensor(std::vector<float>(stdv.begin(), stdv.end())).view({1, c, 1, 1}).to(x.device());
  return (x - m) / s;
}
}  // namespace

torch::Tensor normalise_images(const torch::Tensor& images, const std::vector<double>& mean, const std::vector<double>& stdv) {
  return standardise(images.to(torch::kFloat).div(255.0), mean, stdv);
}

void image_channel_stats(const torch::Tensor& images, std::vector<double>& mean, std::vector<double>& stdv) {
  auto x = images.to(torch::kFloat).div(255.0);
  mean.clear();
  stdv.clear();
  for (int64_t c = 0; c < x.size(1); ++c) {
    mean.push_back(x.select(1, c).mean().item<double>());
    stdv.push_back(x.select(1, c).std().item<double>());
  }
}

ImageEncoderConfig image_checkpoint_encoder(const std::string& checkpoint) {
  const auto meta = json::parse(checkpoint_metadata(checkpoint), nullptr, false);
  if (meta.is_discarded() || !meta.contains("image_encoder")) {
    throw Error("checkpoint '" + checkpoint + "' is not an image-method checkpoint (method '" +
                (meta.is_discarded() ? std::string("?") : meta.value("method", std::string("?"))) + "')");
  }
  return image_encoder_config_from_json(meta["image_encoder"].dump());
}

torch::Tensor augment_batch(const torch::Tensor& images, const AugmentConfig& cfg, const std::vector<double>& mean,
                            const std::vector<double>& stdv, torch::Generator& gen) {
  const int64_t b = images.size(0), c = images.size(1);
  auto x = images.to(torch::kFloat).div(255.0);
  // Crop box and flip per sample as one affine map of the output grid into the input.
  auto opts = torch::TensorOptions().dtype(torch::kFloat);
  auto area = at::empty({b}, opts).uniform_(cfg.min_scale, 1.0, gen);
  auto log_ratio = at::empty({b}, opts).uniform_(-std::log(cfg.aspect), std::log(cfg.aspect) + 1e-12, gen);
  auto ratio = log_ratio.exp();
  auto sx = (area * ratio).sqrt().clamp_max(1.0), sy = (area / ratio).sqrt().clamp_max(1.0);
  auto cx = (at::empty({b}, opts).uniform_(-1.0, 1.0, gen)) * (1.0 - sx);
  auto cy = (at::empty({b}, opts).uniform_(-1.0, 1.0, gen)) * (1.0 - sy);
  auto flip = (at::empty({b}, opts).uniform_(0.0, 1.0, gen) < 0.5).to(torch::kFloat) * 2.0 - 1.0;
  auto theta = torch::zeros({b, 2, 3}, opts);
  theta.select(1, 0).select(1, 0).copy_(sx * flip);
  theta.select(1, 0).select(1, 2).copy_(cx);
  theta.select(1, 1).select(1, 1).copy_(sy);
  theta.select(1, 1).select(1, 2).copy_(cy);
  theta = theta.to(x.device());
  auto grid = F::affine_grid(theta, {b, c, cfg.size, cfg.size}, /*align_corners=*/false);
  x = F::grid_sample(x, grid, F::GridSampleFuncOptions().mode(torch::kBilinear).padding_mode(torch::kBorder).align_corners(false));
  // Brightness and contrast per sample.
  auto bright = at::empty({b, 1, 1, 1}, opts).uniform_(1.0 - cfg.jitter, 1.0 + cfg.jitter, gen).to(x.device());
  auto contrast = at::empty({b, 1, 1, 1}, opts).uniform_(1.0 - cfg.jitter, 1.0 + cfg.jitter, gen).to(x.device());
  x = x * bright;
  auto mu = x.mean({1, 2, 3}, true);
  x = ((x - mu) * contrast + mu).clamp(0.0, 1.0);
  if (c == 3) {
    auto gray_p = (at::empty({b, 1, 1, 1}, opts).uniform_(0.0, 1.0, gen) < 0.2).to(torch::kFloat).to(x.device());
    auto gray = (0.299 * x.select(1, 0) + 0.587 * x.select(1, 1) + 0.114 * x.select(1, 2)).unsqueeze(1).expand_as(x);
    x = gray_p * gray + (1 - gray_p) * x;
  }
  if (cfg.blur) {
    auto k1 = torch::tensor({0.25f, 0.5f, 0.25f});
    auto k = (k1.view({3, 1}) * k1.view({1, 3})).view({1, 1, 3, 3}).repeat({c, 1, 1, 1}).to(x.device());
    auto blurred = F::conv2d(F::pad(x, F::PadFuncOptions({1, 1, 1, 1}).mode(torch::kReplicate)), k, F::Conv2dFuncOptions().groups(c));
    auto blur_p = (at::empty({b, 1, 1, 1}, opts).uniform_(0.0, 1.0, gen) < 0.5).to(torch::kFloat).to(x.device());
    x = blur_p * blurred + (1 - blur_p) * x;
  }
  return standardise(x, mean, stdv);
}

// ---------------------------------------------------------------------------------------------
// Methods
// ---------------------------------------------------------------------------------------------

std::vector<std::string> image_method_names() {
  return {"simclr", "moco", "byol", "swav", "npid", "sela", "deepcluster", "iic", "pcl", "supcon", "cpc"};
}

namespace {

// Holds every saved part: "encoder" and the method's heads / targets / buffers.
class ImageModelImpl : public nn::Module {
 public:
  explicit ImageModelImpl(const ImageEncoderConfig& cfg) : encoder(register_module("encoder", ImageEncoder(cfg))) {}
  ImageEncoder encoder;
};
TORCH_MODULE(ImageModel);

double default_temperature(const std::string& m) {
  if (m == "simclr") return 0.5;
  if (m == "moco" || m == "pcl") return 0.2;
  if (m == "npid") return 0.07;
  return 0.1;  // swav, supcon, cpc
}

int default_clusters(const std::string& m) { return m == "iic" ? 10 : 30; }

class ImageMethod : public TrainableMethod {
 public:
  ImageMethod(const ImageMethodConfig& cfg, torch::Tensor images, torch::Tensor labels)
      : m_cfg(cfg), m_images(std::move(images)), m_labels(std::move(labels)), m_model(cfg.encoder) {
    if (m_images.dim() != 4 || m_images.scalar_type() != torch::kUInt8) throw Error("image methods need uint8 images [N, C, H, W]");
    if (m_images.size(1) != cfg.encoder.in_channels) {
      throw Error("the images have " + std::to_string(m_images.size(1)) + " channels, the encoder expects " +
                  std::to_string(cfg.encoder.in_channels));
    }
    if (cfg.batch < 2 || cfg.batch > m_images.size(0)) throw Error("--batch must be in [2, number of images]");
    m_tau = cfg.temperature > 0 ? cfg.temperature : default_temperature(cfg.method);
    m_k = cfg.clusters > 0 ? cfg.clusters : default_clusters(cfg.method);
    image_channel_stats(m_images, m_mean, m_std);
    m_steps_per_epoch = std::max<int64_t>(1, m_images.size(0) / cfg.batch);
    torch::manual_seed(cfg.seed);  // head initialisation
  }
  std::string name() const override { return m_cfg.method; }
  torch::nn::Module& module() override { return *m_model; }
  void set_device(torch::Device d) override {
    m_device = d;
    m_model->to(d);
  }
  std::string metadata_json() const override {
    json j = {{"method", m_cfg.method}, {"kind", "image"},
              {"image_encoder", json::parse(image_encoder_config_to_json(m_cfg.encoder))},
              {"encoder_module", "encoder"},
              {"input", {{"mean", m_mean}, {"std", m_std}, {"size", m_cfg.augment.size}}},
              {"train", {{"batch", m_cfg.batch}, {"temperature", m_tau}, {"clusters", m_k}, {"proj_dim", m_cfg.proj_dim}}}};
    if (m_head_name.size()) j["cluster_head"] = m_head_name;
    return j.dump();
  }

 protected:
  torch::Tensor batch_indices(torch::Generator& gen) const {
    return at::randperm(m_images.size(0), gen, torch::TensorOptions().dtype(torch::kLong)).slice(0, 0, m_cfg.batch);
  }
  torch::Tensor view(const torch::Tensor& idx, torch::Generator& gen, int size = 0) const {
    AugmentConfig a = m_cfg.augment;
    if (size > 0) a.size = size;
    return augment_batch(m_images.index_select(0, idx).to(m_device), a, m_mean, m_std, gen);
  }
  // Encoder features of every training image (no augmentation), in chunks, without gradient.
  torch::Tensor embed_all(nn::Module& enc_owner, const std::function<torch::Tensor(const torch::Tensor&)>& f) const {
    torch::NoGradGuard ng;
    enc_owner.eval();
    std::vector<torch::Tensor> out;
    for (int64_t i = 0; i < m_images.size(0); i += 1024) {
      auto x = normalise_images(m_images.slice(0, i, std::min(m_images.size(0), i + 1024)).to(m_device), m_mean, m_std);
      out.push_back(f(x));
    }
    enc_owner.train();
    return torch::cat(out);
  }
  template <typename M>
  M add(const std::string& key, M module) {
    return m_model->register_module(key, module);
  }
  // A frozen copy (for EMA targets): same architecture, parameters copied, no gradient.
  template <typename M>
  M frozen_copy(const std::string& key, M source, M fresh) {
    torch::NoGradGuard ng;
    auto src = source->named_parameters(), dst = fresh->named_parameters();
    for (auto& p : src) dst[p.key()].copy_(p.value());
    auto sb = source->named_buffers(), db = fresh->named_buffers();
    for (auto& b : sb) db[b.key()].copy_(b.value());
    for (auto& p : fresh->parameters()) p.set_requires_grad(false);
    return add(key, fresh);
  }
  std::vector<torch::Tensor> params_of(std::initializer_list<nn::Module*> mods) {
    std::vector<torch::Tensor> out;
    for (auto* m : mods) for (auto& p : m->parameters()) out.push_back(p);
    return out;
  }

  ImageMethodConfig m_cfg;
  torch::Tensor m_images, m_labels;
  ImageModel m_model;
  std::vector<double> m_mean, m_std;
  double m_tau = 0.1;
  int m_k = 30;
  int64_t m_steps_per_epoch = 1;
  std::string m_head_name;
  torch::Device m_device = torch::kCPU;
};

// SimCLR (NT-Xent over two views) and SupCon (same pipeline, labels define positives).
class SimClr : public ImageMethod {
 public:
  SimClr(const ImageMethodConfig& c, torch::Tensor i, torch::Tensor l) : ImageMethod(c, i, l) {
    m_proj = add("projector", MlpHead(m_model->encoder->dim(), 512, c.proj_dim));
  }
  StepOutput step(int64_t, torch::Generator& gen) override {
    auto idx = batch_indices(gen);
    auto z1 = m_proj(m_model->encoder(view(idx, gen))), z2 = m_proj(m_model->encoder(view(idx, gen)));
    if (m_cfg.method == "supcon") {
      auto y = m_labels.index_select(0, idx).to(m_device);
      return {supcon_loss(unit(torch::cat({z1, z2})), torch::cat({y, y}), m_tau), {}, m_cfg.batch};
    }
    return {nt_xent_loss(z1, z2, m_tau), {}, m_cfg.batch};
  }
 private:
  MlpHead m_proj{nullptr};
};

// MoCo v2 (query/key encoders, FIFO queue, InfoNCE) and PCL (MoCo + ProtoNCE on k-means
// prototypes of the key features, recomputed every epoch, concentration per prototype).
class MoCo : public ImageMethod {
 public:
  MoCo(const ImageMethodConfig& c, torch::Tensor i, torch::Tensor l)
      : ImageMethod(c, i, l), m_queue(c.queue, c.proj_dim, c.seed) {
    m_proj = add("projector", MlpHead(m_model->encoder->dim(), 512, c.proj_dim));
    m_key_enc = frozen_copy("key_encoder", m_model->encoder, ImageEncoder(c.encoder));
    m_key_proj = frozen_copy("key_projector", m_proj, MlpHead(m_model->encoder->dim(), 512, c.proj_dim));
  }
  std::vector<torch::Tensor> trainable_parameters() override { return params_of({m_model->encoder.get(), m_proj.get()}); }
  void set_device(torch::Device d) override {
    ImageMethod::set_device(d);
    m_queue_dev = m_queue.keys().to(d);
  }
  StepOutput step(int64_t step, torch::Generator& gen) override {
    if (m_cfg.method == "pcl" && step % m_steps_per_epoch == 0) recluster(gen);
    auto idx = batch_indices(gen);
    auto q = unit(m_proj(m_model->encoder(view(idx, gen))));
    torch::Tensor k;
    {
      torch::NoGradGuard ng;
      k = unit(m_key_proj(m_key_enc(view(idx, gen))));
    }
    auto logits = torch::cat({(q * k).sum(1, true), torch::mm(q, m_queue_dev.t())}, 1) / m_tau;
    auto zeros = torch::zeros({q.size(0)}, torch::TensorOptions().dtype(torch::kLong).device(m_device));
    auto loss = info_nce_loss(logits, zeros);
    std::vector<std::pair<std::string, double>> metrics;
    if (m_cfg.method == "pcl" && m_protos.defined()) {
      auto assign = m_assign.index_select(0, idx.to(m_assign.device()));
      auto proto = proto_nce_loss(q, m_protos, m_phi, assign);
      metrics.push_back({"proto_loss", proto.item<double>()});
      loss = loss + proto;
    }
    m_last_keys = k.detach();
    return {loss, metrics, m_cfg.batch};
  }
  void after_step(int64_t, int64_t) override {
    torch::NoGradGuard ng;
    ema_update(*m_key_enc, *m_model->encoder, m_cfg.momentum);
    ema_update(*m_key_proj, *m_proj, m_cfg.momentum);
    if (m_last_keys.defined()) {
      m_queue.enqueue(m_last_keys.to(torch::kCPU));
      m_queue_dev = m_queue.keys().to(m_device);
    }
  }
 private:
  void recluster(torch::Generator& gen) {
    auto feats = embed_all(*m_model, [&](const torch::Tensor& x) { return unit(m_key_proj(m_key_enc(x))); }).to(torch::kCPU);
    auto centres = kmeans(feats, m_k, 20, gen);
    auto assign = kmeans_assign(feats, centres);
    // Concentration phi_c = sum |v - c| / (n log(n + alpha)), alpha = 10, clamped and rescaled to mean tau.
    auto dist = (feats - centres.index_select(0, assign)).norm(2, 1);
    auto n = torch::zeros({m_k}).index_add_(0, assign, torch::ones_like(dist));
    auto sum = torch::zeros({m_k}).index_add_(0, assign, dist);
    auto phi = sum / (n * (n + 10.0).log()).clamp_min(1e-6);
    phi = torch::where(n > 1, phi, phi.max());
    phi = phi.clamp(phi.quantile(0.1).item<double>(), phi.quantile(0.9).item<double>());
    phi = m_tau * phi / phi.mean();
    m_protos = unit(centres).to(m_device);
    m_phi = phi.to(m_device);
    m_assign = assign.to(m_device);
  }
  MlpHead m_proj{nullptr}, m_key_proj{nullptr};
  ImageEncoder m_key_enc{nullptr};
  KeyQueue m_queue;
  torch::Tensor m_queue_dev, m_last_keys, m_protos, m_phi, m_assign;
};

// BYOL: online encoder + projector + predictor regress the EMA target's projection of the
// other view (2 - 2 cos, symmetrised); momentum 0.996 -> 1 on a cosine schedule.
class Byol : public ImageMethod {
 public:
  Byol(const ImageMethodConfig& c, torch::Tensor i, torch::Tensor l) : ImageMethod(c, i, l) {
    const int d = m_model->encoder->dim();
    m_proj = add("projector", MlpHead(d, 512, c.proj_dim));
    m_pred = add("predictor", MlpHead(c.proj_dim, 512, c.proj_dim));
    m_t_enc = frozen_copy("target_encoder", m_model->encoder, ImageEncoder(c.encoder));
    m_t_proj = frozen_copy("target_projector", m_proj, MlpHead(d, 512, c.proj_dim));
  }
  std::vector<torch::Tensor> trainable_parameters() override {
    return params_of({m_model->encoder.get(), m_proj.get(), m_pred.get()});
  }
  StepOutput step(int64_t, torch::Generator& gen) override {
    auto idx = batch_indices(gen);
    auto v1 = view(idx, gen), v2 = view(idx, gen);
    auto p1 = unit(m_pred(m_proj(m_model->encoder(v1)))), p2 = unit(m_pred(m_proj(m_model->encoder(v2))));
    torch::Tensor t1, t2;
    {
      torch::NoGradGuard ng;
      t1 = unit(m_t_proj(m_t_enc(v1)));
      t2 = unit(m_t_proj(m_t_enc(v2)));
    }
    auto loss = byol_loss(p1, t2) + byol_loss(p2, t1);
    return {loss, {}, m_cfg.batch};
  }
  void after_step(int64_t step, int64_t total) override {
    const double m = byol_momentum(step, total, m_cfg.momentum > 0.99 ? m_cfg.momentum : 0.996);
    ema_update(*m_t_enc, *m_model->encoder, m);
    ema_update(*m_t_proj, *m_proj, m);
  }
 private:
  MlpHead m_proj{nullptr}, m_pred{nullptr}, m_t_proj{nullptr};
  ImageEncoder m_t_enc{nullptr};
};

// SwAV: prototypes (unit vectors), Sinkhorn codes (eps 0.05, 3 iterations) of each global view
// predicted from the other views (two global + two small crops), tau 0.1; prototypes frozen
// during the first epoch.
class Swav : public ImageMethod {
 public:
  Swav(const ImageMethodConfig& c, torch::Tensor i, torch::Tensor l) : ImageMethod(c, i, l) {
    m_proj = add("projector", MlpHead(m_model->encoder->dim(), 512, c.proj_dim));
    m_protos = add("prototypes", nn::Linear(nn::LinearOptions(c.proj_dim, m_k).bias(false)));
  }
  StepOutput step(int64_t step, torch::Generator& gen) override {
    {
      torch::NoGradGuard ng;
      m_protos->weight.copy_(unit(m_protos->weight));
    }
    m_protos->weight.set_requires_grad(step >= m_steps_per_epoch);
    auto idx = batch_indices(gen);
    const int small = std::max(8, m_cfg.augment.size * 4 / 7);
    std::vector<torch::Tensor> scores;
    for (int v = 0; v < 4; ++v) scores.push_back(m_protos(unit(m_proj(m_model->encoder(view(idx, gen, v < 2 ? 0 : small))))));
    torch::Tensor loss = torch::zeros({}, scores[0].options());
    int terms = 0;
    for (int g = 0; g < 2; ++g) {
      auto q = sinkhorn_knopp(scores[size_t(g)].detach(), 0.05, 3);
      for (int v = 0; v < 4; ++v) {
        if (v == g) continue;
        loss = loss + swapped_prediction_loss(scores[size_t(v)], q, m_tau);
        ++terms;
      }
    }
    return {loss / terms, {}, m_cfg.batch};
  }
 private:
  MlpHead m_proj{nullptr};
  nn::Linear m_protos{nullptr};
};

// NPID: a memory bank of unit features per image (momentum 0.5); the non-parametric softmax
// of an image's feature against its bank entry, estimated with `queue` sampled noise entries.
class Npid : public ImageMethod {
 public:
  Npid(const ImageMethodConfig& c, torch::Tensor i, torch::Tensor l) : ImageMethod(c, i, l) {
    m_proj = add("projector", nn::Linear(m_model->encoder->dim(), c.proj_dim));
    auto gen = at::make_generator<at::CPUGeneratorImpl>(c.seed + 1);
    m_bank = m_model->register_buffer("memory_bank", unit(at::normal(0.0, 1.0, {m_images.size(0), c.proj_dim}, gen)));
  }
  StepOutput step(int64_t, torch::Generator& gen) override {
    auto idx = batch_indices(gen);
    auto v = unit(m_proj(m_model->encoder(view(idx, gen))));
    auto noise_idx = at::randint(m_images.size(0), {m_cfg.queue}, gen, torch::TensorOptions().dtype(torch::kLong));
    auto pos = m_bank.index_select(0, idx.to(m_device));
    auto neg = m_bank.index_select(0, noise_idx.to(m_device));
    auto logits = torch::cat({(v * pos).sum(1, true), torch::mm(v, neg.t())}, 1) / m_tau;
    auto zeros = torch::zeros({v.size(0)}, torch::TensorOptions().dtype(torch::kLong).device(m_device));
    m_last = {idx.to(m_device), v.detach()};
    return {info_nce_loss(logits, zeros), {}, m_cfg.batch};
  }
  void after_step(int64_t, int64_t) override {
    memory_bank_update(m_bank, m_last.first, m_last.second, 0.5);
  }
 private:
  nn::Linear m_proj{nullptr};
  torch::Tensor m_bank;
  std::pair<torch::Tensor, torch::Tensor> m_last;
};

// Clustering methods with a classification head on pseudo-labels recomputed every epoch:
// SeLa (labels from Sinkhorn equipartition of the head's outputs over the whole set) and
// DeepCluster (k-means of the features, empty clusters re-seeded, head reset, batches sampled
// uniformly over clusters). IIC (mutual information of paired assignments) shares the head.
class Clustering : public ImageMethod {
 public:
  Clustering(const ImageMethodConfig& c, torch::Tensor i, torch::Tensor l) : ImageMethod(c, i, l) {
    m_head = add("cluster_head", nn::Linear(m_model->encoder->dim(), m_k));
    m_head_name = "cluster_head";
  }
  StepOutput step(int64_t step, torch::Generator& gen) override {
    if (m_cfg.method == "iic") {
      auto idx = batch_indices(gen);
      auto p1 = torch::softmax(m_head(m_model->encoder(view(idx, gen))), 1);
      auto p2 = torch::softmax(m_head(m_model->encoder(view(idx, gen))), 1);
      return {iic_loss(p1, p2), {}, m_cfg.batch};
    }
    if (step % m_steps_per_epoch == 0 || !m_pseudo.defined()) relabel(gen);
    torch::Tensor idx;
    if (m_cfg.method == "deepcluster") {
      // Uniform over clusters: a cluster, then one of its members.
      auto cl = at::randint(int64_t(m_members.size()), {m_cfg.batch}, gen, torch::TensorOptions().dtype(torch::kLong));
      std::vector<int64_t> picks;
      for (int64_t i = 0; i < m_cfg.batch; ++i) {
        const auto& mem = m_members[size_t(cl[i].item<int64_t>())];
        picks.push_back(mem[size_t(random_int(gen, int64_t(mem.size())))]);
      }
      idx = torch::tensor(picks, torch::kLong);
    } else {
      idx = batch_indices(gen);
    }
    auto logits = m_head(m_model->encoder(view(idx, gen)));
    return {F::cross_entropy(logits, m_pseudo.index_select(0, idx).to(m_device)), {}, m_cfg.batch};
  }
 private:
  void relabel(torch::Generator& gen) {
    if (m_cfg.method == "sela") {
      auto logits = embed_all(*m_model, [&](const torch::Tensor& x) { return m_head(m_model->encoder(x)); }).to(torch::kCPU);
      m_pseudo = sinkhorn_knopp(logits, 1.0 / 25.0, 10).argmax(1);  // SeLa's lambda = 25
      return;
    }
    auto feats = unit(embed_all(*m_model, [&](const torch::Tensor& x) { return m_model->encoder(x); }).to(torch::kCPU));
    auto centres = kmeans(feats, m_k, 20, gen);
    m_pseudo = kmeans_assign(feats, centres);
    m_members.assign(size_t(m_k), {});
    auto acc = m_pseudo.accessor<int64_t, 1>();
    for (int64_t i = 0; i < acc.size(0); ++i) m_members[size_t(acc[i])].push_back(i);
    m_members.erase(std::remove_if(m_members.begin(), m_members.end(), [](const auto& v) { return v.empty(); }), m_members.end());
    // DeepCluster resets the classifier after each clustering.
    torch::NoGradGuard ng;
    m_head->reset_parameters();
  }
  nn::Linear m_head{nullptr};
  torch::Tensor m_pseudo;
  std::vector<std::vector<int64_t>> m_members;
};

// CPC on images: the encoder embeds 8x8 patches on a stride-4 grid; a context per column is the
// mean of the patch embeddings of rows <= r; row r + k (k = 1, 2) is scored against it with a
// log-bilinear z.W_k.c, the other patches of the batch at that offset serving as negatives (InfoNCE).
class Cpc : public ImageMethod {
 public:
  Cpc(const ImageMethodConfig& c, torch::Tensor i, torch::Tensor l) : ImageMethod(c, i, l) {
    const int d = m_model->encoder->dim();
    for (int k = 1; k <= 2; ++k) m_w.push_back(add("predictor" + std::to_string(k), nn::Linear(nn::LinearOptions(d, d).bias(false))));
  }
  StepOutput step(int64_t, torch::Generator& gen) override {
    auto idx = batch_indices(gen);
    auto x = view(idx, gen);                                                     // [B, C, S, S]
    const int64_t b = x.size(0), ch = x.size(1);
    auto patches = x.unfold(2, 8, 4).unfold(3, 8, 4);                            // [B, C, G, G, 8, 8]
    const int64_t g = patches.size(2);
    auto flat = patches.permute({0, 2, 3, 1, 4, 5}).reshape({b * g * g, ch, 8, 8});
    auto z = m_model->encoder(flat).view({b, g, g, -1});                          // [B, row, col, D]
    auto ctx = z.cumsum(1) / torch::arange(1, g + 1, z.options()).view({1, g, 1, 1});
    torch::Tensor loss = torch::zeros({}, z.options());
    for (int k = 1; k <= 2; ++k) {
      auto c = ctx.slice(1, 0, g - k).reshape({-1, z.size(3)});                   // contexts
      auto t = z.slice(1, k, g).reshape({-1, z.size(3)});                         // their targets
      auto logits = torch::mm(m_w[size_t(k - 1)](c), t.t());                       // every target of the batch
      auto target = torch::arange(c.size(0), torch::TensorOptions().dtype(torch::kLong).device(m_device));
      loss = loss + info_nce_loss(logits, target);
    }
    return {loss / 2, {}, m_cfg.batch};
  }
 private:
  std::vector<nn::Linear> m_w;
};

}  // namespace

std::unique_ptr<TrainableMethod> image_method_create(const ImageMethodConfig& cfg, torch::Tensor images, torch::Tensor labels) {
  const auto& m = cfg.method;
  if (m == "simclr" || m == "supcon") return std::make_unique<SimClr>(cfg, images, labels);
  if (m == "moco" || m == "pcl") return std::make_unique<MoCo>(cfg, images, labels);
  if (m == "byol") return std::make_unique<Byol>(cfg, images, labels);
  if (m == "swav") return std::make_unique<Swav>(cfg, images, labels);
  if (m == "npid") return std::make_unique<Npid>(cfg, images, labels);
  if (m == "sela" || m == "deepcluster" || m == "iic") return std::make_unique<Clustering>(cfg, images, labels);
  if (m == "cpc") return std::make_unique<Cpc>(cfg, images, labels);
  throw Error("unknown image method '" + m + "'");
}

// ---------------------------------------------------------------------------------------------
// Evaluation
// ---------------------------------------------------------------------------------------------

ImageEvalResult image_evaluate(const std::string& checkpoint, const std::string& features,
                               const ImageEncoderConfig& random_encoder, const torch::Tensor& train_images,
                               const torch::Tensor& train_labels, const torch::Tensor& test_images,
                               const torch::Tensor& test_labels, int64_t num_classes, const ImageEvalOptions& o) {
  torch::NoGradGuard ng;
  ImageEvalResult r;
  r.train_images = train_images.size(0);
  r.test_images = test_images.size(0);
  // Statistics of the training images (the same normalisation training used).
  std::vector<double> mean, stdv;
  image_channel_stats(train_images, mean, stdv);
  ImageEncoder enc{nullptr};
  nn::Linear head{nullptr};
  if (!checkpoint.empty()) {
    const auto cfg = image_checkpoint_encoder(checkpoint);
    const auto meta = json::parse(checkpoint_metadata(checkpoint));
    if (cfg.in_channels != train_images.size(1)) {
      throw Error("checkpoint '" + checkpoint + "' expects " + std::to_string(cfg.in_channels) + "-channel images, the data has " +
                  std::to_string(train_images.size(1)));
    }
    enc = ImageEncoder(cfg);
    checkpoint_load(checkpoint, *enc, "encoder");
    mean = meta["input"]["mean"].get<std::vector<double>>();
    stdv = meta["input"]["std"].get<std::vector<double>>();
    if (meta.contains("cluster_head")) {
      head = nn::Linear(enc->dim(), meta["train"]["clusters"].get<int>());
      checkpoint_load(checkpoint, *head, meta["cluster_head"].get<std::string>());
    }
  } else if (features == "random") {
    enc = ImageEncoder(random_encoder);
  } else if (features != "pixels") {
    throw Error("unknown features '" + features + "': use pixels, random, or --checkpoint FILE");
  }
  if (enc) {
    enc->to(o.device);
    enc->eval();
  }
  auto embed = [&](const torch::Tensor& images, torch::Tensor* head_out) {
    std::vector<torch::Tensor> out, heads;
    for (int64_t i = 0; i < images.size(0); i += o.batch) {
      auto x = normalise_images(images.slice(0, i, std::min(images.size(0), i + o.batch)).to(o.device), mean, stdv);
      auto f = enc ? enc(x) : x.flatten(1);
      if (head_out && head) heads.push_back(head(f).argmax(1).to(torch::kCPU));
      out.push_back(f.to(torch::kCPU));
    }
    if (head_out && head) *head_out = torch::cat(heads);
    return torch::cat(out);
  };
  torch::Tensor head_assign;
  auto ftr = embed(train_images, nullptr), fte = embed(test_images, &head_assign);
  auto ntr = unit(ftr), nte = unit(fte);
  r.knn_top1_k20 = knn_top1(ntr, train_labels, nte, test_labels, 20, 0.07, num_classes);
  r.knn_top1_k200 = knn_top1(ntr, train_labels, nte, test_labels, 200, 0.07, num_classes);
  auto gen = at::make_generator<at::CPUGeneratorImpl>(o.seed);
  torch::Generator g(gen);
  r.nmi_kmeans = normalized_mutual_info(kmeans_assign(nte, kmeans(nte, int(num_classes), 30, g)), test_labels);
  if (head_assign.defined()) r.nmi_head = normalized_mutual_info(head_assign, test_labels);
  // Linear probe on standardised frozen features: Adam, cross-entropy, o.linear_epochs epochs.
  {
    torch::AutoGradMode grad(true);
    auto mu = ftr.mean({0}, true), sd = ftr.std({0}, true, true).clamp_min(1e-6);
    auto xtr = (ftr - mu) / sd, xte = (fte - mu) / sd;
    nn::Linear lin(ftr.size(1), num_classes);
    torch::optim::Adam opt(lin->parameters(), torch::optim::AdamOptions(1e-3).weight_decay(1e-5));
    for (int e = 0; e < o.linear_epochs; ++e) {
      auto perm = at::randperm(xtr.size(0), g, torch::TensorOptions().dtype(torch::kLong));
      for (int64_t i = 0; i < xtr.size(0); i += 256) {
        auto bi = perm.slice(0, i, std::min(xtr.size(0), i + 256));
        opt.zero_grad();
        F::cross_entropy(lin(xtr.index_select(0, bi)), train_labels.index_select(0, bi)).backward();
        opt.step();
      }
    }
    torch::NoGradGuard ng2;
    r.linear_top1 = lin(xte).argmax(1).eq(test_labels).to(torch::kFloat).mean().item<double>();
  }
  // Alignment and uniformity of the normalised features (Wang & Isola 2020), on up to 2048 test images.
  const int64_t n = std::min<int64_t>(2048, test_images.size(0));
  AugmentConfig aug;
  aug.size = int(test_images.size(2));
  auto a1 = augment_batch(test_images.slice(0, 0, n).to(o.device), aug, mean, stdv, g);
  auto a2 = augment_batch(test_images.slice(0, 0, n).to(o.device), aug, mean, stdv, g);
  auto f1 = unit(enc ? enc(a1) : a1.flatten(1)).to(torch::kCPU), f2 = unit(enc ? enc(a2) : a2.flatten(1)).to(torch::kCPU);
  r.alignment = (f1 - f2).pow(2).sum(1).mean().item<double>();
  auto sq = torch::cdist(f1, f1).pow(2);
  auto off = ~torch::eye(n, torch::kBool);
  r.uniformity = std::log(torch::exp(-2.0 * sq.masked_select(off)).mean().item<double>());
  return r;
}

}  // namespace corrtrack
