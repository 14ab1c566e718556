// The running softmax's block statistics and merge (online log-sum-exp rescaling).
#include "running_softmax.h"

#include <limits>

namespace corrtrack::detail {

namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// exp(x - m) with m = -inf (nothing seen) treated as 0, so that exp(-inf - 0) = 0, never NaN.
torch::Tensor finite_or_zero(const torch::Tensor& m) { return torch::where(m == kNegInf, torch::zeros_like(m), m); }

}  // namespace

RunningSoftmax::RunningSoftmax(int64_t queries, int64_t labels, torch::Device device)
    : m_max(torch::full({queries}, kNegInf, torch::TensorOptions(device))),
      m_sum(torch::zeros({queries}, torch::TensorOptions(device))),
      m_num(torch::zeros({queries, labels}, torch::TensorOptions(device))) {}

void RunningSoftmax::merge(const torch::Tensor& rows, const torch::Tensor& m, const torch::Tensor& z,
                           const torch::Tensor& n) {
  auto old = m_max.index_select(0, rows);
  auto top = torch::maximum(old, m);
  auto shift = finite_or_zero(top);
  auto a = torch::exp(old - shift), b = torch::exp(m - shift);
  m_max.index_copy_(0, rows, top);
  m_sum.index_copy_(0, rows, m_sum.index_select(0, rows) * a + z * b);
  m_num.index_copy_(0, rows, m_num.index_select(0, rows) * a.unsqueeze(1) + n * b.unsqueeze(1));
}

void RunningSoftmax::add_blocks(const torch::Tensor& scores, const torch::Tensor& labels, const torch::Tensor& ids) {
  auto m = std::get<0>(scores.max(-1));                                 // [B, R]
  auto e = torch::exp(scores - finite_or_zero(m).unsqueeze(-1));
  auto n = torch::bmm(e, labels);                                       // [B, R, L]
  auto inside = (ids >= 0).nonzero().squeeze(1);
  merge(ids.index_select(0, inside), m.reshape({-1}).index_select(0, inside),
        e.sum(-1).reshape({-1}).index_select(0, inside), n.reshape({-1, labels.size(2)}).index_select(0, inside));
}

void RunningSoftmax::add_windowed(const torch::Tensor& scores, const torch::Tensor& labels, int64_t t0,
                                  const torch::Tensor& query_index) {
  TORCH_CHECK(scores.dim() == 3 && labels.dim() == 3 && labels.size(0) == scores.size(0) &&
                  labels.size(1) == scores.size(2) && labels.size(2) == m_num.size(1) &&
                  query_index.size(1) == scores.size(1),
              "RunningSoftmax::add_windowed: scores [tiles, T*T, W*W] and labels [tiles, W*W, L] must match");
  add_blocks(scores, labels, query_index.narrow(0, t0, scores.size(0)).reshape({-1}));
}

void RunningSoftmax::add_rows(const torch::Tensor& scores, const torch::Tensor& labels, const torch::Tensor& ids) {
  TORCH_CHECK(scores.dim() == 2 && labels.dim() == 3 && labels.size(0) == scores.size(0) &&
                  labels.size(1) == scores.size(1) && labels.size(2) == m_num.size(1) && ids.dim() == 1 &&
                  ids.size(0) == scores.size(0),
              "RunningSoftmax::add_rows: scores [rows, n], labels [rows, n, L] and ids [rows] must match");
  add_blocks(scores.unsqueeze(1), labels, ids);
}

torch::Tensor RunningSoftmax::result() const {
  return m_num / m_sum.clamp_min(std::numeric_limits<float>::min()).unsqueeze(1);
}

}  // namespace corrtrack::detail
