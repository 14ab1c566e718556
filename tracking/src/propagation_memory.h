// The memory of a propagation mode: which reference frames serve the next frame of a segment and
// how their labels combine. The engine (propagation.cpp) walks segments and frames and calls
//   reset(anchor) once per segment, then for every frame predict(query) and remember(query, labels).
// Tensors: features [C, h, w] (L2-normalised), soft labels [L, h, w].
#pragma once

#include "corrtrack/propagation.h"

#include "windowed_affinity.h"

#include <algorithm>
#include <deque>
#include <map>
#include <memory>
#include <optional>

namespace corrtrack::detail {

// True when v holds x (the memory settings' small lists of frame positions and gaps).
inline bool contains(const std::vector<int>& v, int64_t x) { return std::find(v.begin(), v.end(), x) != v.end(); }

// The soft labels [Q, k, L] of a running top-k's candidates; its codes index the references'
// label tables [Q, L] concatenated in reference order.
inline torch::Tensor topk_labels(const RunningTopK& acc, const std::vector<torch::Tensor>& tables) {
  const auto& codes = acc.codes();
  return torch::cat(tables, 0).index_select(0, codes.reshape({-1})).view({codes.size(0), codes.size(1), -1});
}

class PropagationMemory {
 public:
  virtual ~PropagationMemory() = default;
  // Starts a segment from the anchor frame's features and soft labels.
  virtual void reset(const torch::Tensor& features, const torch::Tensor& labels) = 0;
  // Soft labels of the next frame of the segment, from its features.
  virtual torch::Tensor predict(const torch::Tensor& query) = 0;
  // Adds the frame just predicted (its features and the labels predict returned).
  virtual void remember(const torch::Tensor& query, const torch::Tensor& labels) = 0;
};

// The memory of config.mode; time spent is added to `stages` ("affinity", "labels"). Feature
// products run in `products` (float32, or bfloat16 with the encoder's --precision bf16); scores,
// softmax and labels are float32 either way.
std::unique_ptr<PropagationMemory> propagation_memory_create(const PropagationConfig& config, StageTimer* stages,
                                                             torch::ScalarType products = torch::kFloat);

// CRW's context: the anchor (all keys) and `context` recent frames (keys at distance < radius),
// padded at the start with copies of the anchor; top-k over all of them, softmax, label average.
class CrwContextMemory : public PropagationMemory {
 public:
  CrwContextMemory(const PropagationConfig& config, StageTimer* stages, torch::ScalarType products);
  void reset(const torch::Tensor& features, const torch::Tensor& labels) override;
  torch::Tensor predict(const torch::Tensor& query) override;
  void remember(const torch::Tensor& query, const torch::Tensor& labels) override;

 private:
  struct Reference {
    torch::Tensor features;    // [C, h, w] (the anchor, and recent frames without a window)
    torch::Tensor key_layout;  // the window's layout of the features (windowed affinity)
    torch::Tensor labels_t;    // [h*w, L]
  };
  // The context's top-k for every query: values [Q, k] and the soft labels of those keys [Q, k, L].
  struct Candidates {
    torch::Tensor values, labels;
  };
  Candidates candidates(const torch::Tensor& query) const;
  PropagationConfig m_config;
  StageTimer* m_stages;
  bool m_windowed;
  std::unique_ptr<WindowedAffinity> m_window;   // built per segment (feature size), when windowed
  torch::ScalarType m_dtype;                     // of the windowed products (and their stored layouts)
  torch::ScalarType m_dense = torch::kFloat;    // of the dense products (and the features they read)
  Reference m_anchor;
  std::deque<Reference> m_recent;               // oldest first, at most `context`
};

// MAST's memory: long-term references (segment positions, default {0, 5}) and short-term ones
// (frames back, default {p-1, p-3, p-5}); each offers the keys of a square window, far ones
// (gap > roi_gap) around a per-query ROI offset; one softmax over all keys, or over the top-k.
class MastMemory : public PropagationMemory {
 public:
  MastMemory(const PropagationConfig& config, StageTimer* stages, torch::ScalarType products);
  void reset(const torch::Tensor& features, const torch::Tensor& labels) override;
  torch::Tensor predict(const torch::Tensor& query) override;
  void remember(const torch::Tensor& query, const torch::Tensor& labels) override;

 private:
  struct Frame {
    torch::Tensor features;      // [C, h, w]
    torch::Tensor key_layout;    // the square window's layout of the features
    torch::Tensor labels_t;      // [h*w, L]
    torch::Tensor label_layout;  // the window's layout of the labels (full softmax only)
  };
  // Where a frame's keys go: the top-k, or the full softmax (topk 0).
  struct Accumulators {
    RunningTopK* topk = nullptr;
    RunningSoftmax* softmax = nullptr;
  };
  // The square-window geometry of an h x w grid (the frame's, or a dilated ROI search's subgrid).
  const WindowedAffinity& geometry(int64_t h, int64_t w) const;
  std::vector<int64_t> references() const;
  torch::Tensor roi_offsets(const torch::Tensor& qs, const Frame& ref, int64_t d) const;
  void offer_roi(const torch::Tensor& qs, const Frame& ref, int64_t gap, int64_t reference, Accumulators& acc) const;
  PropagationConfig m_config;
  StageTimer* m_stages;
  int64_t m_reach;                     // frames back the farthest short-term reference lies
  int64_t m_C = 0, m_h = 0, m_w = 0;
  torch::Device m_device = torch::kCPU;
  torch::ScalarType m_dtype;           // of the windowed products (the ROI boxes stay float32)
  std::map<int64_t, Frame> m_frames;   // by position in the segment (0 = anchor)
  int64_t m_pos = -1;                  // position of the last frame remembered
  mutable std::map<std::pair<int64_t, int64_t>, std::unique_ptr<WindowedAffinity>> m_geometries;
};

}  // namespace corrtrack::detail
