// Evaluation of an image encoder: weighted kNN, linear probe, NMI of k-means and of a cluster
// head, alignment and uniformity.
#include "corrtrack/image_eval.h"

#include "corrtrack/cluster_head.h"
#include "corrtrack/contrastive.h"
#include "corrtrack/ops.h"

#include <algorithm>
#include <cmath>

namespace F = torch::nn::functional;
namespace nn = torch::nn;

namespace corrtrack {

namespace {

// The encoder under evaluation (none: raw pixels), its cluster head if any, and its input statistics.
struct EvalModel {
  ImageEncoder encoder{nullptr};
  std::function<torch::Tensor(const torch::Tensor&)> head;   // features -> cluster logits
  std::vector<double> mean, stdv;

  torch::Tensor features(const torch::Tensor& x) { return encoder ? encoder->embed(x) : x.flatten(1); }
};

EvalModel eval_model_load(const std::string& checkpoint, const std::string& features, const ImageEncoderConfig& random_encoder,
                          const torch::Tensor& train_images, torch::Device device) {
  EvalModel m;
  // Statistics of the training images (the same normalisation training used).
  image_channel_stats(train_images, m.mean, m.stdv);
  if (!checkpoint.empty()) {
    const CheckpointInfo info = checkpoint_info_read(checkpoint);
    const auto cfg = image_checkpoint_encoder(info, checkpoint);
    if (cfg.in_channels != train_images.size(1)) {
      throw Error("checkpoint '" + checkpoint + "' expects " + std::to_string(cfg.in_channels) + "-channel images, the data has " +
                  std::to_string(train_images.size(1)));
    }
    m.encoder = ImageEncoder(cfg);
    checkpoint_load(checkpoint, *m.encoder, info.encoder_module);
    if (info.input) {
      m.mean = info.input->mean;
      m.stdv = info.input->std;
    }
    if (info.cluster_head) {
      m.head = cluster_head_load(checkpoint, info.cluster_head->module, m.encoder->dim(), info.cluster_head->classes, device);
    }
  } else if (features == "random") {
    m.encoder = ImageEncoder(random_encoder);
  } else if (features != "pixels") {
    throw Error("unknown features '" + features + "': use pixels, random, or a checkpoint");
  }
  return m;
}

// The model loaded, on the evaluation device, in eval mode.
EvalModel eval_model_ready(const std::string& checkpoint, const std::string& features, const ImageEncoderConfig& random_encoder,
                           const torch::Tensor& train_images, const ImageEvalOptions& o) {
  EvalModel m = eval_model_load(checkpoint, features, random_encoder, train_images, o.device);
  if (m.encoder) {
    m.encoder->to(o.device);
    m.encoder->eval();
  }
  return m;
}

// Features [N, D] of every image (standardised, in batches) and, with a cluster head, its assignments.
torch::Tensor embed(EvalModel& m, const torch::Tensor& images, const ImageEvalOptions& o, torch::Tensor* head_out) {
  std::vector<torch::Tensor> out, heads;
  for (int64_t i = 0; i < images.size(0); i += o.batch) {
    auto x = normalise_images(images.slice(0, i, std::min(images.size(0), i + o.batch)).to(o.device), m.mean, m.stdv);
    auto f = m.features(x);
    if (head_out && m.head) heads.push_back(m.head(f).argmax(1).to(torch::kCPU));
    out.push_back(f.to(torch::kCPU));
  }
  if (head_out && m.head) *head_out = torch::cat(heads);
  return torch::cat(out);
}

// Linear probe on standardised frozen features: Adam, cross-entropy, o.linear_epochs epochs. The layer
// starts at zero (the problem is convex, so nothing is lost) and the batch order comes from g, so the
// result depends on --seed alone, not on the process's global generator.
double linear_probe(const torch::Tensor& ftr, const torch::Tensor& train_labels, const torch::Tensor& fte,
                    const torch::Tensor& test_labels, int64_t num_classes, int epochs, torch::Generator& g) {
  torch::AutoGradMode grad(true);
  auto mu = ftr.mean({0}, true), sd = ftr.std({0}, true, true).clamp_min(1e-6);
  auto xtr = (ftr - mu) / sd, xte = (fte - mu) / sd;
  nn::Linear lin(ftr.size(1), num_classes);
  {
    torch::NoGradGuard zero;
    lin->weight.zero_();
    lin->bias.zero_();
  }
  torch::optim::Adam opt(lin->parameters(), torch::optim::AdamOptions(1e-3).weight_decay(1e-5));
  for (int e = 0; e < epochs; ++e) {
    auto perm = at::randperm(xtr.size(0), g, torch::TensorOptions().dtype(torch::kLong));
    for (int64_t i = 0; i < xtr.size(0); i += 256) {
      auto bi = perm.slice(0, i, std::min(xtr.size(0), i + 256));
      opt.zero_grad();
      F::cross_entropy(lin(xtr.index_select(0, bi)), train_labels.index_select(0, bi)).backward();
      opt.step();
    }
  }
  torch::NoGradGuard ng;
  return lin(xte).argmax(1).eq(test_labels).to(torch::kFloat).mean().item<double>();
}

// Alignment and uniformity of the normalised features (Wang & Isola 2020), on up to 2048 test images.
void alignment_uniformity(EvalModel& m, const torch::Tensor& test_images, const ImageEvalOptions& o, torch::Generator& g,
                          ImageEvalResult& r) {
  const int64_t n = std::min<int64_t>(2048, test_images.size(0));
  AugmentConfig aug;
  aug.size = int(test_images.size(2));
  auto a1 = augment_batch(test_images.slice(0, 0, n).to(o.device), aug, m.mean, m.stdv, g);
  auto a2 = augment_batch(test_images.slice(0, 0, n).to(o.device), aug, m.mean, m.stdv, g);
  auto f1 = l2_normalise(m.features(a1), 1).to(torch::kCPU), f2 = l2_normalise(m.features(a2), 1).to(torch::kCPU);
  r.alignment = (f1 - f2).pow(2).sum(1).mean().item<double>();
  auto sq = torch::cdist(f1, f1).pow(2);
  auto off = ~torch::eye(n, torch::kBool);
  r.uniformity = std::log(torch::exp(-2.0 * sq.masked_select(off)).mean().item<double>());
}

}  // namespace

ImageEvalResult image_evaluate(const std::string& checkpoint, const std::string& features,
                               const ImageEncoderConfig& random_encoder, const torch::Tensor& train_images,
                               const torch::Tensor& train_labels, const torch::Tensor& test_images,
                               const torch::Tensor& test_labels, int64_t num_classes, const ImageEvalOptions& o) {
  torch::NoGradGuard ng;
  ImageEvalResult r;
  r.train_images = train_images.size(0);
  r.test_images = test_images.size(0);
  EvalModel m = eval_model_ready(checkpoint, features, random_encoder, train_images, o);
  torch::Tensor head_assign;
  auto ftr = embed(m, train_images, o, nullptr), fte = embed(m, test_images, o, &head_assign);
  auto ntr = l2_normalise(ftr, 1), nte = l2_normalise(fte, 1);
  r.knn_top1_k20 = knn_top1(ntr, train_labels, nte, test_labels, 20, 0.07, num_classes);
  r.knn_top1_k200 = knn_top1(ntr, train_labels, nte, test_labels, 200, 0.07, num_classes);
  torch::Generator g(at::make_generator<at::CPUGeneratorImpl>(o.seed));
  r.nmi_kmeans = normalised_mutual_info(kmeans_assign(nte, kmeans(nte, int(num_classes), 30, g)), test_labels);
  if (head_assign.defined()) r.nmi_head = normalised_mutual_info(head_assign, test_labels);
  r.linear_top1 = linear_probe(ftr, train_labels, fte, test_labels, num_classes, o.linear_epochs, g);
  alignment_uniformity(m, test_images, o, g, r);
  return r;
}

std::pair<torch::Tensor, torch::Tensor> image_embed(const std::string& checkpoint, const std::string& features,
                                                    const ImageEncoderConfig& random_encoder, const torch::Tensor& train_images,
                                                    const torch::Tensor& test_images, const ImageEvalOptions& o) {
  torch::NoGradGuard ng;
  EvalModel m = eval_model_ready(checkpoint, features, random_encoder, train_images, o);
  return {embed(m, train_images, o, nullptr), embed(m, test_images, o, nullptr)};
}

}  // namespace corrtrack
