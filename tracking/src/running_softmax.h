// A softmax-weighted average of labels per query over score blocks that arrive one reference
// frame at a time (MAST's joint softmax over every reference's window, without materialising it).
//
// Each query keeps m (the largest score seen), z = sum_j exp(s_j - m) and n = sum_j exp(s_j - m)
// * label_j [L]; a block with its own maximum m' merges by rescaling both sides to max(m, m'),
// so the result n / z is the softmax over all blocks together, whatever their order. Scores of
// -inf are excluded keys (weight 0). Generic torch operations: the same code runs on CUDA.
#pragma once

#include "corrtrack/core.h"

namespace corrtrack::detail {

class RunningSoftmax {
 public:
  RunningSoftmax(int64_t queries, int64_t labels, torch::Device device = torch::kCPU);

  // scores [tiles, T*T, W*W] of tiles t0 .. t0 + tiles - 1 against their key windows, labels
  // [tiles, W*W, L] of those keys; query_index [all tiles, T*T] (-1 = padding past the frame).
  void add_windowed(const torch::Tensor& scores, const torch::Tensor& labels, int64_t t0,
                    const torch::Tensor& query_index);
  // scores [rows, n] of the queries ids [rows] (int64, distinct), labels [rows, n, L] of their keys.
  void add_rows(const torch::Tensor& scores, const torch::Tensor& labels, const torch::Tensor& ids);

  // [Q, L]: sum_j softmax(s)_j label_j over every key offered; 0 for a query offered none.
  torch::Tensor result() const;

 private:
  // scores [B, R, n], labels [B, n, L]; row r of block b belongs to query ids[b * R + r] (-1: none).
  void add_blocks(const torch::Tensor& scores, const torch::Tensor& labels, const torch::Tensor& ids);
  // Folds block statistics (max m [R], z [R], n [R, L], relative to m) into the queries `rows`.
  void merge(const torch::Tensor& rows, const torch::Tensor& m, const torch::Tensor& z, const torch::Tensor& n);
  torch::Tensor m_max, m_sum, m_num;   // [Q], [Q], [Q, L]
};

}  // namespace corrtrack::detail
