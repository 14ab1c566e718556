// Contrastive losses, queues, EMA and the evaluation measures of the image methods.
#include "corrtrack/contrastive.h"
#include "corrtrack/core.h"

#include <cmath>

namespace F = torch::nn::functional;

namespace corrtrack {

torch::Tensor info_nce_loss(const torch::Tensor& logits, const torch::Tensor& targets) {
  if (logits.dim() != 2 || targets.dim() != 1 || targets.size(0) != logits.size(0)) {
    throw Error("info_nce_loss: need logits [N, K] and targets [N]");
  }
  return F::cross_entropy(logits, targets);
}

RandomWalkLoss random_walk_loss(const std::vector<torch::Tensor>& nodes, double tau, double edge_dropout,
                                torch::Generator* gen) {
  if (nodes.size() < 2) throw Error("random_walk_loss: need the nodes of at least two frames");
  for (const auto& x : nodes) {
    if (x.dim() != 3 || x.sizes() != nodes[0].sizes()) throw Error("random_walk_loss: every frame needs nodes [B, N, C] of one size");
  }
  if (edge_dropout > 0.0 && gen == nullptr) throw Error("random_walk_loss: edge dropout needs a generator");
  const int64_t b = nodes[0].size(0), n = nodes[0].size(1);
  auto transition = [&](const torch::Tensor& from, const torch::Tensor& to) {
    auto logits = torch::bmm(from, to.transpose(1, 2)) / tau;
    if (edge_dropout > 0.0) {
      auto drop = at::rand(logits.sizes(), *gen, torch::TensorOptions().dtype(torch::kFloat)) < edge_dropout;
      logits = logits.masked_fill(drop.to(logits.device()), -1e20);
    }
    return torch::softmax(logits, -1);
  };
  const auto targets = torch::arange(n, torch::TensorOptions().dtype(torch::kLong).device(nodes[0].device())).repeat({b});
  RandomWalkLoss out;
  torch::Tensor forward, backward, total;
  for (size_t k = 1; k < nodes.size(); ++k) {
    auto a = transition(nodes[k - 1], nodes[k]);   // A_{k-1}: frame k-1 -> k
    auto back = transition(nodes[k], nodes[k - 1]);  // B_{k-1}: frame k -> k-1
    forward = k == 1 ? a : torch::bmm(forward, a);
    backward = k == 1 ? back : torch::bmm(back, backward);
    auto walk = torch::bmm(forward, backward);  // [B, N, N], rows sum to 1
    auto loss = info_nce_loss(torch::log(walk + 1e-20).reshape({b * n, n}), targets);
    out.per_length.push_back(loss.item<double>());
    out.accuracy.push_back(walk.argmax(-1).reshape({-1}).eq(targets).to(torch::kFloat).mean().item<double>());
    total = k == 1 ? loss : total + loss;
  }
  out.loss = total / double(nodes.size() - 1);
  return out;
}

torch::Tensor nt_xent_loss(const torch::Tensor& z1, const torch::Tensor& z2, double tau, Distributed* group) {
  if (z1.sizes() != z2.sizes() || z1.dim() != 2) throw Error("nt_xent_loss: need two views [N, D] of equal size");
  if (!(tau > 0)) throw Error("nt_xent_loss: temperature must be > 0");
  const int64_t n = z1.size(0);
  auto z = F::normalize(torch::cat({z1, z2}, 0), F::NormalizeFuncOptions().dim(1));   // this rank's rows [2N, D]
  const bool sharded = group && group->world_size() > 1;
  const int64_t w = sharded ? group->world_size() : 1, first = sharded ? group->rank() * n : 0;
  // Candidates: every rank's first views, then every rank's second views ([2wN, D]).
  auto candidates = sharded ? torch::cat({all_gather_grad(*group, z.narrow(0, 0, n)), all_gather_grad(*group, z.narrow(0, n, n))}, 0) : z;
  auto sim = torch::mm(z, candidates.t()) / tau;   // [2N, 2wN]
  auto row = torch::arange(2 * n, torch::dtype(torch::kLong).device(z.device()));
  auto local = torch::where(row < n, row, row - n);   // index within the rank's views
  auto self = torch::where(row < n, first + local, w * n + first + local);
  auto positives = torch::where(row < n, w * n + first + local, first + local);
  auto is_self = torch::zeros_like(sim, torch::dtype(torch::kBool)).index_put_({row, self}, torch::ones({2 * n}, torch::dtype(torch::kBool).device(z.device())));
  sim = sim.masked_fill(is_self, -std::numeric_limits<float>::infinity());
  return F::cross_entropy(sim, positives);
}

torch::Tensor nce_loss(const torch::Tensor& positive, const torch::Tensor& noise, double noise_prob) {
  if (positive.dim() != 1 || noise.dim() != 2 || noise.size(0) != positive.size(0)) {
    throw Error("nce_loss: need positive scores [N] and noise scores [N, k]");
  }
  if (!(noise_prob > 0)) throw Error("nce_loss: noise probability must be > 0");
  const double kPn = static_cast<double>(noise.size(1)) * noise_prob;
  // log h = log s − log(s + k·Pn); log(1 − h) = log(k·Pn) − log(s + k·Pn).
  auto log_h_pos = torch::log(positive) - torch::log(positive + kPn);
  auto log_1mh_noise = std::log(kPn) - torch::log(noise + kPn);
  return -(log_h_pos + log_1mh_noise.sum(1)).mean();
}

torch::Tensor supcon_loss(const torch::Tensor& z, const torch::Tensor& labels, double tau) {
  if (z.dim() != 2 || labels.dim() != 1 || labels.size(0) != z.size(0)) throw Error("supcon_loss: need z [N, D] and labels [N]");
  if (!(tau > 0)) throw Error("supcon_loss: temperature must be > 0");
  const int64_t n = z.size(0);
  auto zn = F::normalize(z, F::NormalizeFuncOptions().dim(1));
  auto self = torch::eye(n, torch::dtype(torch::kBool).device(z.device()));
  auto logits = (torch::mm(zn, zn.t()) / tau).masked_fill(self, -std::numeric_limits<double>::infinity());
  auto log_prob = torch::log_softmax(logits, 1).masked_fill(self, 0.0);
  auto positives = (labels.unsqueeze(0) == labels.unsqueeze(1)).logical_and(self.logical_not()).to(z.scalar_type());
  auto counts = positives.sum(1);
  auto has = counts > 0;
  if (!has.any().item<bool>()) throw Error("supcon_loss: no anchor has a positive (every label is unique)");
  auto per_anchor = -(positives * log_prob).sum(1) / counts.clamp_min(1);
  return per_anchor.masked_select(has).mean();
}

torch::Tensor npair_loss(const torch::Tensor& anchors, const torch::Tensor& positives) {
  if (anchors.sizes() != positives.sizes() || anchors.dim() != 2) throw Error("npair_loss: need anchors and positives [N, D]");
  auto logits = torch::mm(anchors, positives.t());
  auto targets = torch::arange(anchors.size(0), torch::dtype(torch::kLong).device(anchors.device()));
  // log(1 + Σ_{j≠i} exp(l_ij − l_ii)) is the cross-entropy of row i with target i.
  return F::cross_entropy(logits, targets);
}

torch::Tensor sinkhorn_knopp(const torch::Tensor& scores, double eps, int iterations, Distributed* group) {
  torch::NoGradGuard ng;
  if (scores.dim() != 2) throw Error("sinkhorn_knopp: need scores [B, K]");
  const bool sharded = group && group->world_size() > 1;
  const double B = static_cast<double>(scores.size(0)) * (sharded ? group->world_size() : 1),
               K = static_cast<double>(scores.size(1));
  // log Σ over the samples of every rank: the ranks' log-sums gathered, then combined.
  auto cluster_lse = [&](const torch::Tensor& logQ) {
    auto lse = logQ.logsumexp(1, true);   // [K, 1]
    if (!sharded) return lse;
    return group->all_gather(lse.t().contiguous()).logsumexp(0, true).t();
  };
  // In the log domain: with a small eps over a whole data set, exp(score / eps) of a sample far
  // below the best one underflows to 0, and a zero column turns the scaling into 0/0 (SeLa's
  // pseudo-labels then all became cluster 0).
  auto logQ = (scores.to(torch::kDouble) / eps).t();  // [K, B]
  for (int it = 0; it < iterations; ++it) {
    logQ = logQ - cluster_lse(logQ) - std::log(K);        // each cluster: 1/K
    logQ = logQ - logQ.logsumexp(0, true) - std::log(B);  // each sample: 1/B
  }
  return (logQ.exp() * B).t().to(scores.dtype()).contiguous();
}

torch::Tensor iic_loss(const torch::Tensor& p1, const torch::Tensor& p2, Distributed* group) {
  if (p1.sizes() != p2.sizes() || p1.dim() != 2) throw Error("iic_loss: need two assignment batches [B, C] of equal size");
  const bool sharded = group && group->world_size() > 1;
  auto P = torch::mm(p1.t(), p2) / double(p1.size(0) * (sharded ? group->world_size() : 1));
  if (sharded) P = all_reduce_sum_grad(*group, P);
  P = ((P + P.t()) / 2).clamp_min(1e-12);
  P = P / P.sum();
  auto Pi = P.sum(1, true), Pj = P.sum(0, true);
  return -(P * (torch::log(P) - torch::log(Pi) - torch::log(Pj))).sum();
}

KeyQueue::KeyQueue(int64_t size, int64_t dim, uint64_t seed) {
  if (size < 1 || dim < 1) throw Error("KeyQueue: size and dim must be positive");
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  m_keys = F::normalize(at::normal(0.0, 1.0, {size, dim}, gen, torch::TensorOptions().dtype(torch::kFloat)),
                        F::NormalizeFuncOptions().dim(1));
}

void KeyQueue::set_pointer(int64_t p) {
  if (p < 0 || p >= m_keys.size(0)) throw Error("KeyQueue: pointer " + std::to_string(p) + " outside the queue");
  m_ptr = p;
}

void KeyQueue::enqueue(const torch::Tensor& keys) {
  torch::NoGradGuard ng;
  const int64_t n = keys.size(0), size = m_keys.size(0);
  if (keys.dim() != 2 || keys.size(1) != m_keys.size(1) || n > size) throw Error("KeyQueue: keys must be [n <= size, dim]");
  auto k = keys.detach().to(m_keys.device(), m_keys.scalar_type());
  const int64_t first = std::min(n, size - m_ptr);
  m_keys.narrow(0, m_ptr, first).copy_(k.narrow(0, 0, first));
  if (first < n) m_keys.narrow(0, 0, n - first).copy_(k.narrow(0, first, n - first));
  m_ptr = (m_ptr + n) % size;
}

void ema_update(torch::nn::Module& target, const torch::nn::Module& online, double momentum) {
  torch::NoGradGuard ng;
  auto tp = target.parameters(), op = online.parameters();
  auto tb = target.buffers(), ob = online.buffers();
  if (tp.size() != op.size() || tb.size() != ob.size()) throw Error("ema_update: target and online networks differ");
  for (size_t i = 0; i < tp.size(); ++i) tp[i].mul_(momentum).add_(op[i].detach(), 1.0 - momentum);
  // Buffers (BatchNorm statistics, counters) follow the online network directly.
  for (size_t i = 0; i < tb.size(); ++i) tb[i].copy_(ob[i]);
}

double byol_momentum(int64_t step, int64_t total, double base) {
  if (total <= 0) return base;
  const double pi = std::acos(-1.0);
  return 1.0 - (1.0 - base) * (std::cos(pi * static_cast<double>(step) / static_cast<double>(total)) + 1.0) / 2.0;
}

double normalised_mutual_info(const torch::Tensor& a, const torch::Tensor& b) {
  if (a.dim() != 1 || a.sizes() != b.sizes() || a.size(0) == 0) throw Error("normalised_mutual_info: need two labelings [N]");
  auto ai = std::get<1>(at::_unique(a.to(torch::kLong), true, true));
  auto bi = std::get<1>(at::_unique(b.to(torch::kLong), true, true));
  const int64_t na = ai.max().item<int64_t>() + 1, nb = bi.max().item<int64_t>() + 1;
  auto joint = torch::zeros({na * nb}, torch::kDouble);
  joint.index_add_(0, ai * nb + bi, torch::ones({a.size(0)}, torch::kDouble));
  joint = (joint / a.size(0)).view({na, nb});
  auto pa = joint.sum(1), pb = joint.sum(0);
  auto entropy = [](const torch::Tensor& p) {
    auto q = p.masked_select(p > 0);
    return -(q * q.log()).sum().item<double>();
  };
  const double ha = entropy(pa), hb = entropy(pb);
  auto nz = joint > 0;
  const double mi = (joint.masked_select(nz) *
                     (joint.masked_select(nz).log() - torch::outer(pa, pb).masked_select(nz).log())).sum().item<double>();
  if (ha <= 0 && hb <= 0) return 1.0;
  if (ha <= 0 || hb <= 0) return 0.0;
  return mi / std::sqrt(ha * hb);
}

std::pair<torch::Tensor, torch::Tensor> knn_neighbours(const torch::Tensor& train_features, const torch::Tensor& test_features, int k) {
  torch::NoGradGuard ng;
  auto tr = F::normalize(train_features.to(torch::kFloat), F::NormalizeFuncOptions().dim(1));
  auto te = F::normalize(test_features.to(torch::kFloat), F::NormalizeFuncOptions().dim(1));
  const int kk = static_cast<int>(std::min<int64_t>(k, tr.size(0)));
  std::vector<torch::Tensor> sims, idx;
  const int64_t chunk = 1024;   // bounds the [chunk, N_train] similarity block
  for (int64_t s = 0; s < te.size(0); s += chunk) {
    auto top = torch::mm(te.narrow(0, s, std::min(chunk, te.size(0) - s)), tr.t()).topk(kk, 1);
    sims.push_back(std::get<0>(top));
    idx.push_back(std::get<1>(top));
  }
  if (sims.empty()) return {torch::zeros({0, kk}), torch::zeros({0, kk}, torch::kLong)};
  return {torch::cat(sims), torch::cat(idx)};
}

double knn_top1(const torch::Tensor& train_features, const torch::Tensor& train_labels,
                const torch::Tensor& test_features, const torch::Tensor& test_labels, int k, double tau,
                int64_t num_classes) {
  torch::NoGradGuard ng;
  const int64_t n = test_features.size(0);
  if (n == 0) return 0.0;
  const auto [sims, idx] = knn_neighbours(train_features, test_features, k);
  auto weights = torch::exp(sims / tau);
  auto labels = train_labels.to(torch::kLong).index_select(0, idx.reshape({-1})).view({n, idx.size(1)});
  auto votes = torch::zeros({n, num_classes}).scatter_add_(1, labels, weights);
  const int64_t correct = (votes.argmax(1) == test_labels.to(torch::kLong)).sum().item<int64_t>();
  return static_cast<double>(correct) / n;
}

torch::Tensor byol_loss(const torch::Tensor& p, const torch::Tensor& z) {
  return (2.0 - 2.0 * F::cosine_similarity(p, z, F::CosineSimilarityFuncOptions().dim(1))).mean();
}

torch::Tensor swapped_prediction_loss(const torch::Tensor& scores, const torch::Tensor& codes, double tau) {
  return -(codes * torch::log_softmax(scores / tau, 1)).sum(1).mean();
}

torch::Tensor proto_nce_loss(const torch::Tensor& q, const torch::Tensor& prototypes, const torch::Tensor& phi,
                             const torch::Tensor& assign) {
  return info_nce_loss(torch::mm(q, prototypes.t()) / phi.unsqueeze(0), assign);
}

void memory_bank_update(torch::Tensor& bank, const torch::Tensor& idx, const torch::Tensor& v, double momentum) {
  torch::NoGradGuard ng;
  auto mixed = momentum * bank.index_select(0, idx) + (1.0 - momentum) * v;
  bank.index_copy_(0, idx, F::normalize(mixed, F::NormalizeFuncOptions().dim(1)));
}

}  // namespace corrtrack
