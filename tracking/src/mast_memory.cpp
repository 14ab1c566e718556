// MAST's memory: long-term references {0, 5} of the segment (0 is the anchor) and short-term
// {p-1, p-3, p-5}; each contributes a (2r+1)^2 square window, references more than roi_gap
// frames away around a per-pixel ROI offset found by a dilated correlation; one joint softmax.
#include "propagation_memory.h"

#include "corrtrack/ops.h"

#include <algorithm>

namespace corrtrack::detail {

MastMemory::MastMemory(const PropagationConfig& config, StageTimer* stages) : m_config(config), m_stages(stages) {}

void MastMemory::reset(const torch::Tensor& features, const torch::Tensor& labels) {
  m_frames.clear();
  m_frames[0] = {features.unsqueeze(0), labels.unsqueeze(0)};
  m_pos = 0;
}

// Positions of the references of the next frame, p = m_pos + 1, in MAST's order.
std::vector<int64_t> MastMemory::references() const {
  const int64_t p = m_pos + 1;
  std::vector<int64_t> refs;
  for (int64_t r : {int64_t(0), int64_t(5), p - 1, p - 3, p - 5}) {
    if (r >= 0 && r < p && m_frames.count(r) && std::find(refs.begin(), refs.end(), r) == refs.end()) refs.push_back(r);
  }
  return refs;
}

std::pair<torch::Tensor, torch::Tensor> MastMemory::scores(const torch::Tensor& q, const Frame& ref, int64_t gap) const {
  if (gap > m_config.roi_gap) return roi_scores(q, ref, gap);
  return {local_window_scores(q, ref.feat, static_cast<int>(m_config.radius), 1.0 / m_config.temperature), torch::Tensor()};
}

// ROI: a dilated correlation over the same window, softmax, the expected offset (in cells) per
// query pixel; the window is then read bilinearly around that offset.
std::pair<torch::Tensor, torch::Tensor> MastMemory::roi_scores(const torch::Tensor& q, const Frame& ref, int64_t gap) const {
  const int R = static_cast<int>(m_config.radius);
  const double inv_t = 1.0 / m_config.temperature;
  const int64_t h = q.size(2), w = q.size(3);
  const int d = static_cast<int>(std::min<int64_t>(4, gap / m_config.roi_gap + 1));
  auto p = torch::softmax(local_window_scores(q, ref.feat, R, inv_t, d), 1);  // [1, K2, h, w]
  auto offs = torch::arange(-R, R + 1, q.options()) * double(d);
  const int64_t k = 2 * R + 1;
  auto oy = offs.view({k, 1}).expand({k, k}).reshape({1, k * k, 1, 1});
  auto ox = offs.view({1, k}).expand({k, k}).reshape({1, k * k, 1, 1});
  auto cy = (p * oy).sum(1).squeeze(0), cx = (p * ox).sum(1).squeeze(0);  // [h, w]
  auto ys = torch::arange(h, q.options()).view({h, 1}) + cy;
  auto xs = torch::arange(w, q.options()).view({1, w}) + cx;
  const auto opts = F::GridSampleFuncOptions().mode(torch::kBilinear).padding_mode(torch::kZeros).align_corners(true);
  std::vector<torch::Tensor> sc, lw;
  for (int dy = -R; dy <= R; ++dy) {
    for (int dx = -R; dx <= R; ++dx) {
      auto py = ys + dy, px = xs + dx;
      // grid_sample coordinates in [-1, 1] with align_corners=true: cell centres at the ends.
      auto grid = torch::stack({px * (2.0 / std::max<int64_t>(1, w - 1)) - 1.0,
                                py * (2.0 / std::max<int64_t>(1, h - 1)) - 1.0}, -1).unsqueeze(0);
      auto kf = F::grid_sample(ref.feat, grid, opts);
      auto inside = (py >= 0) & (py <= h - 1) & (px >= 0) & (px <= w - 1);
      sc.push_back(((q * kf).sum(1).squeeze(0) * inv_t).masked_fill(~inside, kNegInf));
      lw.push_back(F::grid_sample(ref.labels, grid, opts).squeeze(0));
    }
  }
  return {torch::stack(sc).unsqueeze(0), torch::stack(lw)};
}

torch::Tensor MastMemory::predict(const torch::Tensor& query) {
  StageScope s(m_stages, "affinity");
  const auto q = query.unsqueeze(0);
  const auto refs = references();
  std::vector<torch::Tensor> scores_of, windows;
  for (int64_t r : refs) {
    auto [sc, win] = scores(q, m_frames.at(r), m_pos + 1 - r);
    scores_of.push_back(sc);
    windows.push_back(win);
  }
  // One joint softmax over every reference's window.
  auto all = torch::softmax(torch::cat(scores_of, 1), 1);
  torch::Tensor labels;
  int64_t at = 0;
  for (size_t i = 0; i < refs.size(); ++i) {
    const int64_t kk = scores_of[i].size(1);
    auto w = all.narrow(1, at, kk);
    at += kk;
    auto part = windows[i].defined() ? (w.squeeze(0).unsqueeze(1) * windows[i]).sum(0).unsqueeze(0)
                                     : local_window_gather(w, m_frames.at(refs[i]).labels, static_cast<int>(m_config.radius));
    labels = labels.defined() ? labels + part : part;
  }
  return labels.squeeze(0);
}

void MastMemory::remember(const torch::Tensor& query, const torch::Tensor& labels) {
  m_frames[++m_pos] = {query.unsqueeze(0), labels.unsqueeze(0)};
  // Keep the long-term references and the last five frames only.
  for (auto it = m_frames.begin(); it != m_frames.end();) {
    const int64_t r = it->first;
    if (r == 0 || r == 5 || r > m_pos - 5) ++it;
    else it = m_frames.erase(it);
  }
}

}  // namespace corrtrack::detail
