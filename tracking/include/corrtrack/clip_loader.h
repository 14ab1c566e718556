// Training clips from any ClipStore (raw or JPEG cache, or streamed videos): the sampler draws a
// clip (video, first frame, frame offsets, crop box, flip), reads its crops, and renders them
// (resize to the crop size, flip, colour jitter) on the training device; the loader prepares the
// clips of the next steps on worker threads while the current step trains.
//
// Usage:
//   ClipSampler sampler(store, ClipSamplerConfig{});
//   ClipLoader loader(sampler, /*seed=*/0, ClipLoaderConfig{/*workers=*/2});
//   auto clips = loader.batch(step, rank, 12, ClipOffsets::fixed({0, 4, 8}), device);   // [12, 3, 3, 256, 256]
//
// Determinism: clip j of step s on rank r is drawn from its own generator seeded by
// (seed, s, r, j), so a batch is the same whatever the number of workers (0 included), a resumed
// run reads the clips it would have read, and ranks read different clips of the same store.
#pragma once

#include "corrtrack/augment.h"
#include "corrtrack/clip_cache.h"
#include "corrtrack/core.h"

#include <memory>
#include <vector>

namespace corrtrack {

struct ClipSamplerConfig {
  int crop = 256;            // output side (square crops)
  double min_scale = 0.4;    // random resized crop: area fraction in [min_scale, 1]
  bool flip = true;          // horizontal flip, the same for every frame of a clip
  double jitter = 0.1;       // brightness/contrast/saturation jitter strength, per clip
};

// Which frames a clip holds: one of `choices` (offsets from the clip's first frame, ascending,
// starting at 0, all of one length), drawn with probabilities `weights` (empty: the first).
struct ClipOffsets {
  std::vector<std::vector<int>> choices;
  std::vector<double> weights;
  static ClipOffsets fixed(std::vector<int> offsets) { return {{std::move(offsets)}, {}}; }
  bool operator==(const ClipOffsets& o) const { return choices == o.choices && weights == o.weights; }
};

// One drawn clip.
struct ClipDraw {
  size_t video = 0;
  int64_t start = 0;
  std::vector<int> offsets;
  CropBox box;               // in the stored frame's pixels
  bool flip = false;
  uint64_t jitter_seed = 0;  // the colour jitter's own generator
};

class ClipSampler {
 public:
  // Throws SettingError for a crop, scale or jitter out of range.
  ClipSampler(std::shared_ptr<const ClipStore> store, ClipSamplerConfig cfg);
  // A video (weighted by how many clips it holds), a first frame, the offsets, the crop box and
  // flip. Throws Error when no video is long enough for the longest choice.
  ClipDraw draw(const ClipOffsets& offsets, torch::Generator& gen) const;
  // The draw's crops, uint8 RGB (thread-safe). Throws Error when the video cannot be read.
  std::vector<Image> read(const ClipDraw& d) const;
  // [T, 3, crop, crop] float RGB in [0, 1] on `device`: resized, flipped, jittered.
  torch::Tensor render(const std::vector<Image>& crops, const ClipDraw& d, torch::Device device) const;
  // Draws until a clip can be read (at most 50 draws), counting unreadable draws in *failed.
  std::vector<Image> draw_and_read(const ClipOffsets& offsets, torch::Generator& gen, ClipDraw* d, int64_t* failed = nullptr) const;
  // draw_and_read + render, with `gen`.
  torch::Tensor sample(const std::vector<int>& offsets, torch::Generator& gen, torch::Device device = torch::kCPU) const;
  const ClipStore& store() const { return *m_store; }
  const ClipSamplerConfig& config() const { return m_cfg; }

 private:
  std::shared_ptr<const ClipStore> m_store;
  ClipSamplerConfig m_cfg;
};

struct ClipLoaderConfig {
  int workers = 0;           // threads reading clips ahead of the step; 0 reads in the step
  int prefetch = 2;          // steps prepared ahead (with workers)
};

struct ClipLoaderStats {
  int64_t clips = 0;         // delivered
  int64_t failed_reads = 0;  // draws whose video could not be read (redrawn)
  double wait_ms = 0.0;      // time batch() spent waiting for reads (with workers: for the workers)
};

class ClipLoader {
 public:
  ClipLoader(ClipSampler sampler, uint64_t seed, ClipLoaderConfig cfg);
  ~ClipLoader();
  ClipLoader(const ClipLoader&) = delete;
  ClipLoader& operator=(const ClipLoader&) = delete;
  // The clips of `step` on `rank`: [n, T, 3, crop, crop] on `device`. The workers then prepare the
  // next steps with the same n and offsets (another step, n or offsets restarts them).
  torch::Tensor batch(int64_t step, int rank, int n, const ClipOffsets& offsets, torch::Device device);
  const ClipSampler& sampler() const { return m_sampler; }
  ClipLoaderStats stats() const;
  int workers() const { return m_cfg.workers; }

 private:
  struct Pool;
  ClipSampler m_sampler;
  uint64_t m_seed;
  ClipLoaderConfig m_cfg;
  std::unique_ptr<Pool> m_pool;
  ClipLoaderStats m_stats;
};

// The seed of clip j of step s on rank r (splitmix64 over the four numbers).
uint64_t clip_seed(uint64_t seed, int64_t step, int rank, int j);

}  // namespace corrtrack
