// The running top-k's scan: one comparison per score against the query's k-th value, an insertion
// into the sorted slots for the few that beat it. Queries are independent, so blocks are split
// over threads by query (dense) or by tile (windowed).
#include "running_topk.h"

#include <ATen/Parallel.h>

#include <limits>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace corrtrack::detail {

namespace {

// Inserts (v, code) into slots sorted largest first, dropping the last; v beats vals[k-1].
inline void insert_sorted(float* vals, int64_t* codes, int k, float v, int64_t code) {
  int j = k - 1;
  while (j > 0 && vals[j - 1] < v) {
    vals[j] = vals[j - 1];
    codes[j] = codes[j - 1];
    --j;
  }
  vals[j] = v;
  codes[j] = code;
}

// True when one of s[0..15] is greater than t (NaN never is, as in the scalar comparison).
inline bool any_above16(const float* s, float t) {
#if defined(__SSE2__)
  const __m128 tv = _mm_set1_ps(t);
  const __m128 a = _mm_or_ps(_mm_cmpgt_ps(_mm_loadu_ps(s), tv), _mm_cmpgt_ps(_mm_loadu_ps(s + 4), tv));
  const __m128 b = _mm_or_ps(_mm_cmpgt_ps(_mm_loadu_ps(s + 8), tv), _mm_cmpgt_ps(_mm_loadu_ps(s + 12), tv));
  return _mm_movemask_ps(_mm_or_ps(a, b)) != 0;
#else
  bool any = false;
  for (int i = 0; i < 16; ++i) any |= s[i] > t;
  return any;
#endif
}

}  // namespace

RunningTopK::RunningTopK(int64_t queries, int k, int64_t keys_per_reference, torch::Device device, bool generic)
    : m_k(k), m_keys(keys_per_reference), m_generic(generic || !device.is_cpu()),
      m_values(torch::full({queries, k}, -std::numeric_limits<float>::infinity(), torch::TensorOptions(device))),
      m_codes(torch::zeros({queries, k}, torch::TensorOptions(device).dtype(torch::kLong))) {
  TORCH_CHECK(k >= 1, "RunningTopK: k must be at least 1");
}

void RunningTopK::merge(const torch::Tensor& rows, torch::Tensor v, torch::Tensor c, int copies) {
  if (copies > 1) {
    v = v.repeat({1, copies});
    c = c.repeat({1, copies});
  }
  auto all_v = torch::cat({m_values.index_select(0, rows), v}, 1);
  auto all_c = torch::cat({m_codes.index_select(0, rows), c}, 1);
  auto top = all_v.topk(m_k, 1);
  m_values.index_copy_(0, rows, std::get<0>(top));
  m_codes.index_copy_(0, rows, all_c.gather(1, std::get<1>(top)));
}

void RunningTopK::scan(int64_t q, const float* s, int64_t n, const int64_t* key, int64_t base, int copies) {
  float* vals = m_values.data_ptr<float>() + q * m_k;
  int64_t* codes = m_codes.data_ptr<int64_t>() + q * m_k;
  float kth = vals[m_k - 1];
  auto offer = [&](int64_t j) {
    const float v = s[j];
    if (!(v > kth)) return;
    const int64_t code = base + (key ? key[j] : j);
    for (int c = 0; c < copies && v > vals[m_k - 1]; ++c) insert_sorted(vals, codes, m_k, v, code);
    kth = vals[m_k - 1];
  };
  // Blocks of 16 with nothing above the k-th value (nearly all, once the slots are full) cost
  // four vector comparisons; the others are offered one by one, in order.
  int64_t j = 0;
  for (; j + 16 <= n; j += 16) {
    if (!any_above16(s + j, kth)) continue;
    for (int64_t i = j; i < j + 16; ++i) offer(i);
  }
  for (; j < n; ++j) offer(j);
}

void RunningTopK::add_dense(const torch::Tensor& scores, int64_t q0, int64_t reference, int copies) {
  TORCH_CHECK(scores.dim() == 2 && scores.size(1) == m_keys && scores.scalar_type() == torch::kFloat,
              "RunningTopK::add_dense: scores must be float [rows, keys]");
  const int64_t rows = scores.size(0), base = reference * m_keys;
  if (m_generic) {
    auto top = scores.topk(std::min<int64_t>(m_k, m_keys), 1);
    auto ids = torch::arange(q0, q0 + rows, torch::TensorOptions(scores.device()).dtype(torch::kLong));
    merge(ids, std::get<0>(top), std::get<1>(top) + base, copies);
    return;
  }
  auto s = scores.contiguous();
  const float* p = s.data_ptr<float>();
  at::parallel_for(0, rows, 16, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) scan(q0 + r, p + r * m_keys, m_keys, nullptr, base, copies);
  });
}

void RunningTopK::add_indexed(const torch::Tensor& scores, const torch::Tensor& keys, const torch::Tensor& ids,
                              int64_t reference) {
  TORCH_CHECK(scores.dim() == 2 && scores.scalar_type() == torch::kFloat && keys.sizes() == scores.sizes() &&
                  keys.scalar_type() == torch::kLong && ids.dim() == 1 && ids.size(0) == scores.size(0) &&
                  ids.scalar_type() == torch::kLong,
              "RunningTopK::add_indexed: scores (float) and keys (int64) must be [rows, n], ids (int64) [rows]");
  const int64_t rows = scores.size(0), n = scores.size(1), base = reference * m_keys;
  if (m_generic) {
    auto top = scores.topk(std::min<int64_t>(m_k, n), 1);
    merge(ids, std::get<0>(top), keys.gather(1, std::get<1>(top)) + base, 1);
    return;
  }
  auto s = scores.contiguous();
  auto k = keys.contiguous();
  auto q = ids.contiguous();
  const float* p = s.data_ptr<float>();
  const int64_t* kp = k.data_ptr<int64_t>();
  const int64_t* qp = q.data_ptr<int64_t>();
  at::parallel_for(0, rows, 16, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) scan(qp[r], p + r * n, n, kp + r * n, base, 1);
  });
}

void RunningTopK::add_windowed(const torch::Tensor& scores, int64_t t0, const torch::Tensor& key_index,
                               const torch::Tensor& query_index, int64_t reference, int copies) {
  TORCH_CHECK(scores.dim() == 3 && scores.scalar_type() == torch::kFloat && key_index.size(1) == scores.size(2) &&
                  query_index.size(1) == scores.size(1),
              "RunningTopK::add_windowed: scores [tiles, T*T, W*W] must match the key and query maps");
  const int64_t nc = scores.size(0), T2 = scores.size(1), W2 = scores.size(2), base = reference * m_keys;
  if (m_generic) {
    auto top = scores.topk(std::min<int64_t>(m_k, W2), -1);
    auto keys = key_index.narrow(0, t0, nc).unsqueeze(1).expand({nc, T2, W2}).gather(-1, std::get<1>(top));
    auto ids = query_index.narrow(0, t0, nc).reshape({-1});
    auto inside = (ids >= 0).nonzero().squeeze(1);
    const int64_t kk = std::get<0>(top).size(-1);
    merge(ids.index_select(0, inside), std::get<0>(top).reshape({-1, kk}).index_select(0, inside),
          keys.clamp_min(0).reshape({-1, kk}).index_select(0, inside) + base, copies);
    return;
  }
  auto s = scores.contiguous();
  const float* p = s.data_ptr<float>();
  const int64_t* keys = key_index.data_ptr<int64_t>();
  const int64_t* queries = query_index.data_ptr<int64_t>();
  at::parallel_for(0, s.size(0), 1, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t tile = t0 + b;
      for (int64_t i = 0; i < T2; ++i) {
        const int64_t q = queries[tile * T2 + i];
        if (q >= 0) scan(q, p + (b * T2 + i) * W2, W2, keys + tile * W2, base, copies);
      }
    }
  });
}

}  // namespace corrtrack::detail
