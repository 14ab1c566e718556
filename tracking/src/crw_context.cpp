// CRW's context memory: the anchor (every key) and the recent frames (keys inside a circular
// window), top-k affinities over all of them, softmax with temperature, soft labels averaged.
#include "propagation_memory.h"

namespace corrtrack::detail {

CrwContextMemory::CrwContextMemory(const PropagationConfig& config, StageTimer* stages, torch::ScalarType products)
    : m_config(config), m_stages(stages), m_windowed(config.local_window && config.radius > 0), m_dtype(products) {}

void CrwContextMemory::reset(const torch::Tensor& features, const torch::Tensor& labels) {
  const int64_t L = labels.size(0);
  m_dense = dense_dtype(features.size(0), m_dtype);
  m_anchor = Reference{features.to(m_dense), torch::Tensor(), labels.reshape({L, -1}).t().contiguous()};
  if (m_windowed) {
    m_window = std::make_unique<WindowedAffinity>(features.size(0), features.size(1), features.size(2), m_config.tile,
                                                  m_config.radius, features.device(), WindowShape::Circle, m_dtype);
    m_anchor.key_layout = m_window->key_layout(features);
  }
  // At the start the context is padded with copies of the anchor (as CRW pads).
  m_recent.assign(size_t(m_config.context), m_anchor);
}

// The running top-k over the anchor (reference 0) and every distinct recent frame (1, 2, ...).
CrwContextMemory::Candidates CrwContextMemory::candidates(const torch::Tensor& q) const {
  const int64_t Q = q.size(1) * q.size(2);
  RunningTopK acc(Q, m_config.topk, Q, q.device());
  const auto qd = q.to(m_dense);
  dense_accumulate(qd, m_anchor.features, 0.0, acc, 0);
  std::vector<torch::Tensor> labels{m_anchor.labels_t};
  const torch::Tensor q_tiles = m_windowed ? m_window->query_tiles(q) : torch::Tensor();
  // Identical references (the padding copies) are scored once and counted m times.
  for (size_t r = 0; r < m_recent.size();) {
    size_t m = 1;
    while (r + m < m_recent.size() && m_recent[r + m].labels_t.is_same(m_recent[r].labels_t)) ++m;
    const int copies = static_cast<int>(std::min<size_t>(m, size_t(m_config.topk)));
    const auto reference = static_cast<int64_t>(labels.size());
    if (m_windowed) m_window->accumulate(q_tiles, m_recent[r].key_layout, acc, reference, copies);
    else dense_accumulate(qd, m_recent[r].features, m_config.radius, acc, reference, copies);
    labels.push_back(m_recent[r].labels_t);
    r += m;
  }
  return {acc.values(), topk_labels(acc, labels)};
}

torch::Tensor CrwContextMemory::predict(const torch::Tensor& q) {
  Candidates cand;
  {
    StageScope s(m_stages, "affinity");
    cand = candidates(q);
  }
  StageScope s(m_stages, "labels");
  auto weights = torch::softmax(cand.values / m_config.temperature, 1);
  auto labels = (weights.unsqueeze(-1) * cand.labels).sum(1);   // [Q, L]
  return labels.t().reshape({labels.size(1), q.size(1), q.size(2)});
}

void CrwContextMemory::remember(const torch::Tensor& q, const torch::Tensor& labels) {
  if (m_config.context <= 0) return;
  Reference r;
  r.labels_t = labels.reshape({labels.size(0), -1}).t().contiguous();
  if (m_windowed) r.key_layout = m_window->key_layout(q);
  else r.features = q.to(m_dense);
  m_recent.push_back(std::move(r));
  if (static_cast<int>(m_recent.size()) > m_config.context) m_recent.pop_front();
}

}  // namespace corrtrack::detail
