// The eleven image self-supervised methods on the contrastive core, as TrainableMethods.
#include "corrtrack/image_methods.h"

#include "corrtrack/cluster_head.h"
#include "corrtrack/contrastive.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <functional>

namespace F = torch::nn::functional;
namespace nn = torch::nn;
using nlohmann::json;

namespace corrtrack {

std::vector<std::string> image_method_names() {
  return {"simclr", "moco", "byol", "swav", "npid", "sela", "deepcluster", "iic", "pcl", "supcon", "cpc"};
}

double image_method_default_temperature(const std::string& m) {
  if (m == "simclr") return 0.5;
  if (m == "moco" || m == "pcl") return 0.2;
  if (m == "npid") return 0.07;
  if (m == "swav" || m == "supcon") return 0.1;
  return 0.0;
}

namespace {

class MlpHeadImpl : public nn::Module {
 public:
  MlpHeadImpl(int in, int hidden, int out)
      : fc1(register_module("fc1", nn::Linear(in, hidden))), bn(register_module("bn", SyncBatchNorm1d(hidden))),
        fc2(register_module("fc2", nn::Linear(hidden, out))) {}
  torch::Tensor forward(torch::Tensor x) { return fc2(torch::relu(bn(fc1(x)))); }
  nn::Linear fc1;
  SyncBatchNorm1d bn;
  nn::Linear fc2;
};
TORCH_MODULE(MlpHead);


}  // namespace

namespace {

// Holds every saved part: "encoder" and the method's heads / targets / buffers.
class ImageModelImpl : public nn::Module {
 public:
  explicit ImageModelImpl(const ImageEncoderConfig& cfg) : encoder(register_module("encoder", ImageEncoder(cfg))) {}
  ImageEncoder encoder;
};
TORCH_MODULE(ImageModel);

int default_clusters(const std::string& m) { return m == "iic" ? 10 : 30; }

// The encoder's configuration, after seeding the global generator with the run's seed: the
// encoder's and the heads' default initialisation draw from it, and LibTorch seeds it
// nondeterministically, so without this two runs with one seed started from different weights.
const ImageEncoderConfig& seeded_encoder(const ImageMethodConfig& cfg) {
  torch::manual_seed(cfg.seed);
  return cfg.encoder;
}

class ImageMethod : public TrainableMethod {
 public:
  ImageMethod(const ImageMethodConfig& cfg, torch::Tensor images, torch::Tensor labels)
      : m_cfg(cfg), m_images(std::move(images)), m_labels(std::move(labels)), m_model(seeded_encoder(cfg)) {
    if (m_images.dim() != 4 || m_images.scalar_type() != torch::kUInt8) throw Error("image methods need uint8 images [N, C, H, W]");
    if (m_images.size(1) != cfg.encoder.in_channels) {
      throw Error("the images have " + std::to_string(m_images.size(1)) + " channels, the encoder expects " +
                  std::to_string(cfg.encoder.in_channels));
    }
    if (cfg.batch < 2 || cfg.batch > m_images.size(0)) throw SettingError("batch", "must be in [2, number of images]");
    m_tau = cfg.temperature > 0 ? cfg.temperature : image_method_default_temperature(cfg.method);
    m_k = cfg.clusters > 0 ? cfg.clusters : default_clusters(cfg.method);
    image_channel_stats(m_images, m_mean, m_std);
  }
  std::string name() const override { return m_cfg.method; }
  torch::nn::Module& module() override { return *m_model; }
  CheckpointInfo checkpoint_info() const override {
    CheckpointInfo info;
    info.method = m_cfg.method;
    info.image_method = true;
    info.image_encoder_json = image_encoder_config_to_json(m_cfg.encoder);
    info.encoder_module = "encoder";
    info.input = InputConvention{"", m_mean, m_std, m_cfg.augment.size};
    info.record["train"] = {{"batch", m_cfg.batch}, {"temperature", m_tau}, {"clusters", m_k}, {"proj_dim", m_cfg.proj_dim}};
    if (m_head_name.size()) info.cluster_head = ClusterHead{m_head_name, m_k};
    return info;
  }

 protected:
  // This rank's images of the step: its slice of one permutation drawn alike on every rank
  // (`gen` is the step's generator), so the ranks' batches never overlap and together are the
  // batch one process would draw with the global batch size.
  torch::Tensor batch_indices(torch::Generator& gen) const {
    const int64_t first = int64_t(m_dist->rank()) * m_cfg.batch;
    if (first + m_cfg.batch > m_images.size(0)) {
      throw SettingError("batch", "of " + std::to_string(m_cfg.batch * m_dist->world_size()) + " images over all ranks exceeds the " +
                                      std::to_string(m_images.size(0)) + " training images");
    }
    return at::randperm(m_images.size(0), gen, torch::TensorOptions().dtype(torch::kLong)).slice(0, first, first + m_cfg.batch);
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
  // Steps per pass over the training images with the global batch (every rank's share).
  int64_t steps_per_epoch() const { return std::max<int64_t>(1, m_images.size(0) / (int64_t(m_cfg.batch) * m_dist->world_size())); }
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
  std::string m_head_name;
};

// SimCLR (NT-Xent over two views) and SupCon (same pipeline, labels define positives).
class SimClr : public ImageMethod {
 public:
  SimClr(const ImageMethodConfig& c, torch::Tensor i, torch::Tensor l) : ImageMethod(c, i, l) {
    m_proj = add("projector", MlpHead(m_model->encoder->dim(), 512, c.proj_dim));
  }
  StepOutput step(int64_t, torch::Generator& gen) override {
    auto idx = batch_indices(gen);
    auto g = m_dist->rank_generator(gen);
    auto z1 = m_proj(m_model->encoder(view(idx, g))), z2 = m_proj(m_model->encoder(view(idx, g)));
    if (m_cfg.method == "supcon") {   // positives and negatives within the rank's share
      auto y = m_labels.index_select(0, idx).to(m_device);
      return {supcon_loss(l2_normalise(torch::cat({z1, z2}), 1), torch::cat({y, y}), m_tau), {}, m_cfg.batch};
    }
    return {nt_xent_loss(z1, z2, m_tau, m_dist.get()), {}, m_cfg.batch};
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
    // The queue and its pointer are part of the checkpoint, so a resumed run has the same keys
    // (the buffer shares the queue's tensor, which follows the module to its device).
    m_model->register_buffer("queue", m_queue.keys());
    m_queue_ptr = m_model->register_buffer("queue_pointer", torch::zeros({}, torch::kLong));
  }
  std::vector<torch::Tensor> trainable_parameters() override { return params_of({m_model->encoder.get(), m_proj.get()}); }
  StepOutput step(int64_t step, torch::Generator& gen) override {
    if (m_cfg.method == "pcl" && step % steps_per_epoch() == 0) recluster(gen);
    m_queue.set_pointer(m_queue_ptr.item<int64_t>());
    auto idx = batch_indices(gen);
    auto g = m_dist->rank_generator(gen);
    auto q = l2_normalise(m_proj(m_model->encoder(view(idx, g))), 1);
    const torch::Tensor k = keys(view(idx, g), g);
    auto logits = torch::cat({(q * k).sum(1, true), torch::mm(q, m_queue.keys().t())}, 1) / m_tau;
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
      m_queue.enqueue(m_dist->all_gather(m_last_keys.contiguous()));   // every rank's keys, rank 0's first
      m_queue_ptr.fill_(m_queue.pointer());
    }
  }
 private:
  // The key encoder and projector's normalised output for x [B, C, H, W] -> [B, proj_dim].
  torch::Tensor key_projection(const torch::Tensor& x) { return l2_normalise(m_key_proj(m_key_enc(x)), 1); }
  // key_projection of x encoded in key_bn_groups shuffled groups (see the config), in x's order.
  torch::Tensor keys(const torch::Tensor& x, torch::Generator& gen) {
    torch::NoGradGuard ng;
    return apply_in_shuffled_groups(x, m_cfg.key_bn_groups, gen, [&](const torch::Tensor& v) { return key_projection(v); });
  }
  void recluster(torch::Generator& gen) {
    auto feats = embed_all(*m_model, [&](const torch::Tensor& x) { return key_projection(x); }).to(torch::kCPU);
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
    m_protos = l2_normalise(centres, 1).to(m_device);
    m_phi = phi.to(m_device);
    m_assign = assign.to(m_device);
  }
  MlpHead m_proj{nullptr}, m_key_proj{nullptr};
  ImageEncoder m_key_enc{nullptr};
  KeyQueue m_queue;
  torch::Tensor m_queue_ptr, m_last_keys, m_protos, m_phi, m_assign;
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
    auto g = m_dist->rank_generator(gen);
    auto v1 = view(idx, g), v2 = view(idx, g);
    auto p1 = l2_normalise(m_pred(m_proj(m_model->encoder(v1))), 1), p2 = l2_normalise(m_pred(m_proj(m_model->encoder(v2))), 1);
    torch::Tensor t1, t2;
    {
      torch::NoGradGuard ng;
      t1 = l2_normalise(m_t_proj(m_t_enc(v1)), 1);
      t2 = l2_normalise(m_t_proj(m_t_enc(v2)), 1);
    }
    auto loss = byol_loss(p1, t2) + byol_loss(p2, t1);
    return {loss, {}, m_cfg.batch};
  }
  void after_step(int64_t step, int64_t total) override {
    const double m = byol_momentum(step, total, m_cfg.momentum);
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
      m_protos->weight.copy_(l2_normalise(m_protos->weight, 1));
    }
    m_protos->weight.set_requires_grad(step >= steps_per_epoch());
    auto idx = batch_indices(gen);
    auto g = m_dist->rank_generator(gen);
    const int small = std::max(8, m_cfg.augment.size * 4 / 7);
    std::vector<torch::Tensor> scores;
    for (int v = 0; v < 4; ++v) scores.push_back(m_protos(l2_normalise(m_proj(m_model->encoder(view(idx, g, v < 2 ? 0 : small))), 1)));
    torch::Tensor loss = torch::zeros({}, scores[0].options());
    int terms = 0;
    for (int gv = 0; gv < 2; ++gv) {
      auto q = sinkhorn_knopp(scores[size_t(gv)].detach(), 0.05, 3, m_dist.get());
      for (int v = 0; v < 4; ++v) {
        if (v == gv) continue;
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
    m_bank = m_model->register_buffer("memory_bank", l2_normalise(at::normal(0.0, 1.0, {m_images.size(0), c.proj_dim}, gen), 1));
  }
  StepOutput step(int64_t, torch::Generator& gen) override {
    auto idx = batch_indices(gen);
    auto g = m_dist->rank_generator(gen);
    auto v = l2_normalise(m_proj(m_model->encoder(view(idx, g))), 1);
    auto noise_idx = at::randint(m_images.size(0), {m_cfg.queue}, g, torch::TensorOptions().dtype(torch::kLong));
    auto pos = m_bank.index_select(0, idx.to(m_device));
    auto neg = m_bank.index_select(0, noise_idx.to(m_device));
    auto logits = torch::cat({(v * pos).sum(1, true), torch::mm(v, neg.t())}, 1) / m_tau;
    auto zeros = torch::zeros({v.size(0)}, torch::TensorOptions().dtype(torch::kLong).device(m_device));
    m_last = {idx.to(m_device), v.detach()};
    return {info_nce_loss(logits, zeros), {}, m_cfg.batch};
  }
  void after_step(int64_t, int64_t) override {
    // Every rank writes every rank's entries, so the banks stay identical.
    memory_bank_update(m_bank, m_dist->all_gather(m_last.first), m_dist->all_gather(m_last.second.contiguous()), 0.5);
  }
 private:
  nn::Linear m_proj{nullptr};
  torch::Tensor m_bank;
  std::pair<torch::Tensor, torch::Tensor> m_last;
};

// IIC's heads (Ji et al. 2019): kIicSubHeads heads of k clusters (the first is the model's
// cluster head) and as many overclustering heads of kIicOvercluster x k, every one trained on the
// mutual information of the two views' assignments; the loss is the mean over the main heads plus
// the mean over the overclustering heads (the paper alternates the two by epoch). The
// overclustering heads ask the features for finer distinctions than k classes.
constexpr int kIicSubHeads = 5;
constexpr int kIicOvercluster = 5;

// Mean IIC loss over the `heads` heads of k clusters whose logits are side by side in [B, heads*k].
torch::Tensor iic_heads_loss(const torch::Tensor& logits1, const torch::Tensor& logits2, int64_t heads, Distributed* group) {
  auto p1 = torch::softmax(logits1.view({logits1.size(0), heads, -1}), 2);
  auto p2 = torch::softmax(logits2.view({logits2.size(0), heads, -1}), 2);
  torch::Tensor loss = torch::zeros({}, logits1.options());
  for (int64_t h = 0; h < heads; ++h) loss = loss + iic_loss(p1.select(1, h), p2.select(1, h), group);
  return loss / double(heads);
}

// DeepCluster's preprocessing before k-means: features x [N, D] centred and rotated onto their
// principal axes, each axis scaled to unit variance: (x - mean) V / sqrt(lambda + 1e-5), with
// V, lambda the eigenvectors and eigenvalues of the covariance. Without it, k-means follows the few
// directions of largest variance (on Fashion-MNIST: kNN 69.3 % after the 300-step test's run
// against 70.5 % with it).
torch::Tensor pca_whiten(const torch::Tensor& x) {
  auto xc = (x - x.mean(0, true)).to(torch::kDouble);
  auto [values, vectors] = torch::linalg::eigh(torch::mm(xc.t(), xc) / double(xc.size(0)), "L");
  return (torch::mm(xc, vectors) / (values.clamp_min(0.0) + 1e-5).sqrt().unsqueeze(0)).to(x.dtype());
}

// Clustering methods with a classification head (ClusterClassifier: MLP neck, then a linear layer)
// on pseudo-labels recomputed every epoch: SeLa (labels from Sinkhorn equipartition of the head's
// outputs over the whole set) and DeepCluster (k-means of the neck's features, PCA-whitened and
// L2-normalised as the paper does, empty clusters re-seeded, the last layer reset, batches sampled
// uniformly over clusters). IIC (mutual information of paired assignments) shares the head and
// puts its sub-heads and overclustering heads on the same neck.
class Clustering : public ImageMethod {
 public:
  Clustering(const ImageMethodConfig& c, torch::Tensor i, torch::Tensor l) : ImageMethod(c, i, l) {
    m_head = add("cluster_head", ClusterClassifier(m_model->encoder->dim(), m_k));
    m_head_name = "cluster_head";
    if (c.method == "iic") {
      const int d = ClusterClassifierImpl::kOut;
      m_sub_heads = add("cluster_sub_heads", nn::Linear(d, (kIicSubHeads - 1) * m_k));
      m_over_heads = add("overcluster_heads", nn::Linear(d, kIicSubHeads * kIicOvercluster * m_k));
    }
  }
  StepOutput step(int64_t step, torch::Generator& gen) override {
    if (m_cfg.method == "iic") {
      auto idx = batch_indices(gen);
      auto g = m_dist->rank_generator(gen);
      auto n1 = m_head->neck(m_model->encoder(view(idx, g))), n2 = m_head->neck(m_model->encoder(view(idx, g)));
      auto main = iic_heads_loss(torch::cat({m_head->fc(n1), m_sub_heads(n1)}, 1), torch::cat({m_head->fc(n2), m_sub_heads(n2)}, 1),
                                 kIicSubHeads, m_dist.get());
      auto over = iic_heads_loss(m_over_heads(n1), m_over_heads(n2), kIicSubHeads, m_dist.get());
      return {main + over, {{"main_loss", main.item<double>()}, {"overcluster_loss", over.item<double>()}}, m_cfg.batch};
    }
    if (step % steps_per_epoch() == 0 || !m_pseudo.defined()) relabel(gen);   // alike on every rank
    torch::Tensor idx;
    torch::Generator g;
    if (m_cfg.method == "deepcluster") {
      // Uniform over clusters: a cluster, then one of its members (each rank its own draws).
      g = m_dist->rank_generator(gen);
      auto cl = at::randint(int64_t(m_members.size()), {m_cfg.batch}, g, torch::TensorOptions().dtype(torch::kLong));
      std::vector<int64_t> picks;
      for (int64_t i = 0; i < m_cfg.batch; ++i) {
        const auto& mem = m_members[size_t(cl[i].item<int64_t>())];
        picks.push_back(mem[size_t(random_int(g, int64_t(mem.size())))]);
      }
      idx = torch::tensor(picks, torch::kLong);
    } else {
      idx = batch_indices(gen);
      g = m_dist->rank_generator(gen);
    }
    auto logits = m_head(m_model->encoder(view(idx, g)));
    return {F::cross_entropy(logits, m_pseudo.index_select(0, idx).to(m_device)), {}, m_cfg.batch};
  }
 private:
  void relabel(torch::Generator& gen) {
    if (m_cfg.method == "sela") {
      auto logits = embed_all(*m_model, [&](const torch::Tensor& x) { return m_head(m_model->encoder(x)); }).to(torch::kCPU);
      m_pseudo = sinkhorn_knopp(logits, 1.0 / 25.0, 10).argmax(1);  // SeLa's lambda = 25
      return;
    }
    auto feats = embed_all(*m_model, [&](const torch::Tensor& x) { return m_head->neck(m_model->encoder(x)); }).to(torch::kCPU);
    feats = l2_normalise(pca_whiten(feats), 1);
    auto centres = kmeans(feats, m_k, 20, gen);
    m_pseudo = kmeans_assign(feats, centres);
    m_members.assign(size_t(m_k), {});
    auto acc = m_pseudo.accessor<int64_t, 1>();
    for (int64_t i = 0; i < acc.size(0); ++i) m_members[size_t(acc[i])].push_back(i);
    m_members.erase(std::remove_if(m_members.begin(), m_members.end(), [](const auto& v) { return v.empty(); }), m_members.end());
    // DeepCluster resets the classifier (the last layer) after each clustering.
    torch::NoGradGuard ng;
    m_head->fc->reset_parameters();
  }
  ClusterClassifier m_head{nullptr};
  nn::Linear m_sub_heads{nullptr}, m_over_heads{nullptr};
  torch::Tensor m_pseudo;
  std::vector<std::vector<int64_t>> m_members;
};

// CPC on images: the encoder embeds 8x8 patches on a stride-4 grid (its config says so, so that
// evaluations describe an image by the mean of its patches, CPC's representation); a context per
// column is the mean of the patch embeddings of rows <= r; row r + k (k = 1, 2) is scored against
// it with a log-bilinear z.W_k.c, the other patches of the batch at that offset serving as
// negatives (InfoNCE).
class Cpc : public ImageMethod {
 public:
  Cpc(const ImageMethodConfig& c, torch::Tensor i, torch::Tensor l) : ImageMethod(c, i, l) {
    const int d = m_model->encoder->dim();
    for (int k = 1; k <= 2; ++k) m_w.push_back(add("predictor" + std::to_string(k), nn::Linear(nn::LinearOptions(d, d).bias(false))));
  }
  StepOutput step(int64_t, torch::Generator& gen) override {
    auto idx = batch_indices(gen);
    auto rg = m_dist->rank_generator(gen);
    auto x = view(idx, rg);   // [B, C, S, S]; negatives are the rank's own patches
    auto z = m_model->encoder->patch_features(x);                                 // [B, row, col, D]
    const int64_t g = z.size(1);
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

torch::Tensor apply_in_shuffled_groups(const torch::Tensor& x, int64_t groups, torch::Generator& gen,
                                       const std::function<torch::Tensor(const torch::Tensor&)>& f) {
  groups = std::min<int64_t>(groups, x.size(0) / 2);
  if (groups <= 1) return f(x);
  auto perm = at::randperm(x.size(0), gen, torch::TensorOptions().dtype(torch::kLong)).to(x.device());
  std::vector<torch::Tensor> parts;
  for (const auto& chunk : x.index_select(0, perm).tensor_split(groups, 0)) parts.push_back(f(chunk));
  auto shuffled = torch::cat(parts);
  return torch::empty_like(shuffled).index_copy_(0, perm, shuffled);
}

std::unique_ptr<TrainableMethod> image_method_create(const ImageMethodConfig& cfg, torch::Tensor images, torch::Tensor labels) {
  const auto& m = cfg.method;
  if (m == "simclr" || m == "supcon") return std::make_unique<SimClr>(cfg, images, labels);
  if (m == "moco" || m == "pcl") return std::make_unique<MoCo>(cfg, images, labels);
  if (m == "byol") return std::make_unique<Byol>(cfg, images, labels);
  if (m == "swav") return std::make_unique<Swav>(cfg, images, labels);
  if (m == "npid") return std::make_unique<Npid>(cfg, images, labels);
  if (m == "sela" || m == "deepcluster" || m == "iic") return std::make_unique<Clustering>(cfg, images, labels);
  if (m == "cpc") {
    ImageMethodConfig c = cfg;
    c.encoder.patch = 8;
    c.encoder.patch_stride = 4;
    return std::make_unique<Cpc>(c, images, labels);
  }
  throw Error("unknown image method '" + m + "'");
}

}  // namespace corrtrack
