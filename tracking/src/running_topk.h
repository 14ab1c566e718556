// Exact top-k per query over score blocks that arrive one reference frame at a time.
//
// Each query keeps its k best (value, code) pairs sorted largest first; code = reference *
// keys_per_reference + key, so the labels of every candidate are one index_select away. A block
// is scanned once: a score enters only when it beats the query's current k-th value, so after the
// first few keys nearly every score costs one comparison. This replaces a torch::topk per
// reference (a copy and partial sort of every row) followed by a concatenate-and-topk merge.
// Ties keep the candidate seen first; a score of -inf never enters, so slots that no finite score
// reached stay -inf with code 0 (weight 0 after a softmax).
//
// CUDA (and any non-CPU) tensors take the generic path instead: torch::topk of each block, then a
// concatenate-and-topk merge with the running candidates. Both paths give the same candidates up
// to the order of tied scores; `generic` forces the second on the CPU (tests compare the two).
#pragma once

#include "corrtrack/core.h"

namespace corrtrack::detail {

class RunningTopK {
 public:
  RunningTopK(int64_t queries, int k, int64_t keys_per_reference, torch::Device device = torch::kCPU,
              bool generic = false);

  // scores [rows, keys_per_reference] of queries q0 .. q0 + rows - 1 against every key of
  // `reference`; each score counts `copies` times (identical references scored once).
  void add_dense(const torch::Tensor& scores, int64_t q0, int64_t reference, int copies = 1);

  // scores [tiles, T*T, W*W] of tiles t0 .. t0 + tiles - 1 against their key windows;
  // key_index [all tiles, W*W] (-1 outside the frame), query_index [all tiles, T*T] (-1 = padding).
  void add_windowed(const torch::Tensor& scores, int64_t t0, const torch::Tensor& key_index,
                    const torch::Tensor& query_index, int64_t reference, int copies = 1);

  // scores [rows, n] of the queries ids [rows] (int64, distinct) against the keys keys [rows, n]
  // (int64 key indices; a key with score -inf is never taken, whatever its index).
  void add_indexed(const torch::Tensor& scores, const torch::Tensor& keys, const torch::Tensor& ids, int64_t reference);

  const torch::Tensor& values() const { return m_values; }  // [Q, k] float, largest first
  const torch::Tensor& codes() const { return m_codes; }    // [Q, k] int64

 private:
  // Offers n scores to query q; the code of score j is base + key[j] (base + j without a key map).
  void scan(int64_t q, const float* s, int64_t n, const int64_t* key, int64_t base, int copies);
  // Generic path: merges candidates v, c [rows, kk] of the queries `rows` (int64 ids).
  void merge(const torch::Tensor& rows, torch::Tensor v, torch::Tensor c, int copies);
  int m_k;
  int64_t m_keys;
  bool m_generic;
  torch::Tensor m_values, m_codes;
};

}  // namespace corrtrack::detail
