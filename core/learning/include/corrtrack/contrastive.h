// CorrTrack contrastive core: losses and evaluation measures shared by the image methods and the
// video trackers. Each function documents its formula; inputs are batched tensors.
#pragma once

#include <torch/torch.h>

#include "corrtrack/distributed.h"

#include <cstdint>
#include <vector>

namespace corrtrack {

// InfoNCE / CPC: mean over rows of -log softmax(logits)[target]. logits [N, K] are scores already
// divided by the temperature (e.g. z·W·c for CPC's log-bilinear model); targets [N] (long).
torch::Tensor info_nce_loss(const torch::Tensor& logits, const torch::Tensor& targets);

// NT-Xent (SimCLR): z = normalise([z1; z2]) ([2N, D]), s_ij = z_i·z_j / tau with s_ii excluded,
// the positive of i is its other view (i ± N); mean cross-entropy over the 2N rows.
// With a group of several ranks, each rank's rows are scored against the views of every rank
// (gathered with gradient, as SimCLR's cross-replica negatives): the mean of the ranks' losses
// is the loss of the global batch.
torch::Tensor nt_xent_loss(const torch::Tensor& z1, const torch::Tensor& z2, double tau, Distributed* group = nullptr);

// NCE with noise ratio k (binary classification of data vs noise): h(s) = s / (s + k·Pn) with s the
// model's unnormalised probability; loss = mean_i [−log h(s_i⁺) − Σ_j log(1 − h(s_ij⁻))].
// positive [N], noise [N, k] (both > 0), noise_prob = Pn (e.g. 1/#instances for NPID).
torch::Tensor nce_loss(const torch::Tensor& positive, const torch::Tensor& noise, double noise_prob);

// Supervised contrastive loss (SupCon, "L_out"): for anchor i with positives P(i) (same label,
// not i), −1/|P(i)| Σ_p log(exp(z_i·z_p/τ) / Σ_{a≠i} exp(z_i·z_a/τ)), z L2-normalised, averaged
// over anchors that have a positive. z [N, D], labels [N].
torch::Tensor supcon_loss(const torch::Tensor& z, const torch::Tensor& labels, double tau);

// Multi-class N-pair loss: mean_i log(1 + Σ_{j≠i} exp(a_i·p_j − a_i·p_i)) for anchors and
// positives [N, D] (unnormalised dot products, as in Sohn 2016).
torch::Tensor npair_loss(const torch::Tensor& anchors, const torch::Tensor& positives);

// Sinkhorn-Knopp equipartition (SwAV/SeLa): Q ∝ exp(scores / eps), alternately rescaled so that
// every cluster (column) gets mass B/K and every sample (row) mass 1. scores [B, K] -> Q [B, K],
// rows summing to 1 exactly (last step), columns to B/K up to the iterations' convergence.
// With a group, B is the global batch and the cluster sums run over every rank's rows (as SwAV's
// distributed Sinkhorn); each rank gets its own rows of the global Q.
torch::Tensor sinkhorn_knopp(const torch::Tensor& scores, double eps, int iterations, Distributed* group = nullptr);

// IIC: -I(z; z') of the joint P = sym(mean_b p1_b p2_bᵀ) of paired cluster assignments
// p1, p2 [B, C] (rows are probabilities): I = Σ P_ij log(P_ij / (P_i P_j)).
// With a group, P is the joint of the global batch (summed over ranks with gradient).
torch::Tensor iic_loss(const torch::Tensor& p1, const torch::Tensor& p2, Distributed* group = nullptr);

// Contrastive random walk (CRW, Jabri et al. 2020). nodes[t] [B, N, C] are the L2-normalised node
// embeddings of frame t (t = 0..T-1). Forward transitions A_t = softmax_rows(x_t x_{t+1}ᵀ / τ),
// backward B_t = softmax_rows(x_{t+1} x_tᵀ / τ); with edge dropout each logit is dropped (set to
// −1e20 before the softmax) with probability `edge_dropout`. The palindrome walk of length k
// (k = 1..T-1) is P_k = A_0 ⋯ A_{k-1} B_{k-1} ⋯ B_0 and its loss is info_nce_loss(log(P_k + 1e-20),
// identity), i.e. −mean_i log P_k[i, i]; `loss` is the mean over k. Uniform transitions give log N,
// identity transitions 0. `gen` draws the dropout (required when edge_dropout > 0).
struct RandomWalkLoss {
  torch::Tensor loss;
  std::vector<double> per_length;  // loss of the walk of length k = 1..T-1
  std::vector<double> accuracy;    // fraction of nodes whose walk of length k returns to them (argmax)
};
RandomWalkLoss random_walk_loss(const std::vector<torch::Tensor>& nodes, double tau, double edge_dropout = 0.0,
                                torch::Generator* gen = nullptr);

// MoCo's dictionary: a FIFO of the last `size` keys [size, dim], stored without gradient.
class KeyQueue {
 public:
  KeyQueue(int64_t size, int64_t dim, uint64_t seed = 0);  // starts with random unit keys
  void enqueue(const torch::Tensor& keys);                  // keys [n, dim], n <= size
  const torch::Tensor& keys() const { return m_keys; }       // [size, dim], slot order
  int64_t pointer() const { return m_ptr; }                  // slot the next key goes to
  void set_pointer(int64_t p);                               // after a checkpoint restored the keys
 private:
  torch::Tensor m_keys;
  int64_t m_ptr = 0;
};

// Exponential moving average of parameters and buffers: target ← m·target + (1 − m)·online.
void ema_update(torch::nn::Module& target, const torch::nn::Module& online, double momentum);
// BYOL's momentum schedule: 1 − (1 − base)·(cos(π·step/total) + 1)/2, base at 0, 1 at the end.
double byol_momentum(int64_t step, int64_t total, double base);

// BYOL's regression loss: mean over rows of 2 − 2·cos(p_i, z_i) (0 when aligned, 2 orthogonal, 4 opposite).
torch::Tensor byol_loss(const torch::Tensor& p, const torch::Tensor& z);

// SwAV's swapped prediction: −mean_i Σ_k q_ik · log softmax(s_i / τ)_k, codes q [B, K] from another
// view (rows sum to 1), prototype scores s [B, K].
torch::Tensor swapped_prediction_loss(const torch::Tensor& scores, const torch::Tensor& codes, double tau);

// PCL's ProtoNCE term: InfoNCE of q against prototypes with per-prototype concentration φ:
// logits q·c_j / φ_j, target the prototype of each sample. q [B, D], prototypes [K, D], phi [K], assign [B].
torch::Tensor proto_nce_loss(const torch::Tensor& q, const torch::Tensor& prototypes, const torch::Tensor& phi,
                             const torch::Tensor& assign);

// NPID memory-bank update of rows idx: m_i ← normalise(momentum · m_i + (1 − momentum) · v_i).
void memory_bank_update(torch::Tensor& bank, const torch::Tensor& idx, const torch::Tensor& v, double momentum);

// Normalised mutual information I(a; b) / sqrt(H(a)·H(b)) of two labelings [N] (long);
// 1 when both have a single cluster.
double normalised_mutual_info(const torch::Tensor& a, const torch::Tensor& b);

// The k nearest training features (cosine) of each test feature, best first: similarities [N, k]
// and training indices [N, k] (k is capped at the training set's size). knn_top1 votes with these.
std::pair<torch::Tensor, torch::Tensor> knn_neighbours(const torch::Tensor& train_features, const torch::Tensor& test_features, int k);

// Weighted kNN top-1 accuracy: cosine similarity to the k nearest training features, class vote
// Σ exp(s / tau) over the neighbours of that class (the NPID/InstDisc protocol).
double knn_top1(const torch::Tensor& train_features, const torch::Tensor& train_labels,
                const torch::Tensor& test_features, const torch::Tensor& test_labels, int k, double tau,
                int64_t num_classes);

}  // namespace corrtrack
