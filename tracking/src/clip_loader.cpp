// The clip sampler (draw, read, render) and the loader whose workers read the next steps' clips
// while the current step trains.
#include "corrtrack/clip_loader.h"

#include <condition_variable>
#include <deque>
#include <exception>
#include <map>
#include <mutex>
#include <optional>
#include <thread>

namespace corrtrack {

namespace {
constexpr int kMaxDraws = 50;   // unreadable clips redrawn before the loader gives up

uint64_t splitmix(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

torch::Generator generator(uint64_t seed) { return torch::Generator(at::make_generator<at::CPUGeneratorImpl>(seed)); }
}  // namespace

uint64_t clip_seed(uint64_t seed, int64_t step, int rank, int j) {
  return splitmix(splitmix(splitmix(splitmix(seed) ^ uint64_t(step)) ^ uint64_t(rank)) ^ uint64_t(j));
}

// ---------------------------------------------------------------------------------------------
// Sampler
// ---------------------------------------------------------------------------------------------

ClipSampler::ClipSampler(std::shared_ptr<const ClipStore> store, ClipSamplerConfig cfg) : m_store(std::move(store)), m_cfg(cfg) {
  if (m_cfg.crop < 16 || m_cfg.crop > 4096) throw SettingError("crop", "must be in [16, 4096] pixels");
  if (!(m_cfg.min_scale > 0.0 && m_cfg.min_scale <= 1.0)) throw SettingError("min-scale", "must be in (0, 1]");
  if (!(m_cfg.jitter >= 0.0 && m_cfg.jitter <= 1.0)) throw SettingError("jitter", "must be in [0, 1]");
}

ClipDraw ClipSampler::draw(const ClipOffsets& offsets, torch::Generator& gen) const {
  ClipDraw d;
  size_t choice = 0;
  if (offsets.choices.empty()) throw Error("a clip needs at least one frame offset");
  if (!offsets.weights.empty()) {
    double u = random_uniform(gen);
    for (; choice + 1 < offsets.choices.size() && u >= offsets.weights[choice]; ++choice) u -= offsets.weights[choice];
  }
  d.offsets = offsets.choices[choice];
  // Every choice must fit, so that which videos can be drawn does not depend on the choice.
  int span = 0;
  for (const auto& c : offsets.choices) span = std::max(span, c.back() + 1);
  const auto& videos = m_store->videos();
  int64_t total = 0;
  for (const auto& v : videos) total += std::max<int64_t>(0, v.frames - span + 1);
  if (total == 0) {
    throw Error("every video in '" + m_store->path() + "' is shorter than the " + std::to_string(span) + " frames one training clip spans");
  }
  // A uniformly drawn valid start over all videos weights each video by its number of clips.
  int64_t r = random_int(gen, total);
  for (; d.video < videos.size(); ++d.video) {
    const int64_t n = std::max<int64_t>(0, videos[d.video].frames - span + 1);
    if (r < n) break;
    r -= n;
  }
  d.start = r;
  const auto& v = videos[d.video];
  d.box = crop_box_random(v.width, v.height, m_cfg.min_scale, 1.0, 3.0 / 4.0, 4.0 / 3.0, gen);
  d.flip = m_cfg.flip && random_uniform(gen) < 0.5;
  d.jitter_seed = uint64_t(random_int(gen, int64_t(1) << 62));
  return d;
}

std::vector<Image> ClipSampler::read(const ClipDraw& d) const {
  std::vector<int64_t> frames;
  for (int o : d.offsets) frames.push_back(d.start + o);
  std::vector<Image> crops;
  m_store->read(d.video, frames, {d.box.x, d.box.y, d.box.width, d.box.height}, crops);
  return crops;
}

torch::Tensor ClipSampler::render(const std::vector<Image>& crops, const ClipDraw& d, torch::Device device) const {
  std::vector<torch::Tensor> frames;
  for (const auto& c : crops) {
    frames.push_back(torch::from_blob(const_cast<uint8_t*>(c.data.data()), {c.height, c.width, 3}, torch::kUInt8).permute({2, 0, 1}));
  }
  auto clip = torch::stack(frames).to(device).to(torch::kFloat).div_(255.0);
  clip = crop_resize(clip, CropBox{0, 0, d.box.width, d.box.height}, m_cfg.crop, m_cfg.crop);
  if (d.flip) clip = clip.flip({-1});
  auto jitter_gen = generator(d.jitter_seed);
  return colour_jitter(clip, m_cfg.jitter, jitter_gen);
}

std::vector<Image> ClipSampler::draw_and_read(const ClipOffsets& offsets, torch::Generator& gen, ClipDraw* d, int64_t* failed) const {
  std::string last;
  for (int attempt = 0; attempt < kMaxDraws; ++attempt) {
    *d = draw(offsets, gen);
    try {
      return read(*d);
    } catch (const Error& e) {
      // The store has said which video failed (once); another clip is drawn instead.
      last = e.what();
      if (failed) ++*failed;
    }
  }
  throw Error("no readable training clip in " + std::to_string(kMaxDraws) + " draws from '" + m_store->path() + "' (last: " + last + ")");
}

torch::Tensor ClipSampler::sample(const std::vector<int>& offsets, torch::Generator& gen, torch::Device device) const {
  ClipDraw d;
  const auto crops = draw_and_read(ClipOffsets::fixed(offsets), gen, &d);
  return render(crops, d, device);
}

// ---------------------------------------------------------------------------------------------
// Loader
// ---------------------------------------------------------------------------------------------

namespace {
struct Loaded {
  ClipDraw draw;
  std::vector<Image> crops;
  int64_t failed = 0;
  std::exception_ptr error;
};

Loaded load_clip(const ClipSampler& s, uint64_t seed, int64_t step, int rank, int j, const ClipOffsets& offsets) {
  Loaded l;
  try {
    auto gen = generator(clip_seed(seed, step, rank, j));
    l.crops = s.draw_and_read(offsets, gen, &l.draw, &l.failed);
  } catch (...) {
    l.error = std::current_exception();
  }
  return l;
}
}  // namespace

struct ClipLoader::Pool {
  struct Task {
    uint64_t generation;
    int64_t step;
    int j;
  };
  std::mutex mu;
  std::condition_variable work_cv, done_cv;
  bool quit = false;
  uint64_t generation = 0;   // bumped when the plan changes; older tasks' results are dropped
  std::deque<Task> tasks;
  std::map<int64_t, std::vector<std::optional<Loaded>>> ready;
  std::map<int64_t, int> missing;
  // The plan: steps from `next_step` on are enqueued with these.
  int rank = -1, n = 0;
  std::shared_ptr<const ClipOffsets> offsets;
  int64_t next_step = 0;
  std::vector<std::thread> threads;

  void enqueue(int64_t step) {
    ready[step].assign(size_t(n), std::nullopt);
    missing[step] = n;
    for (int j = 0; j < n; ++j) tasks.push_back({generation, step, j});
    work_cv.notify_all();
  }
};

ClipLoader::ClipLoader(ClipSampler sampler, uint64_t seed, ClipLoaderConfig cfg)
    : m_sampler(std::move(sampler)), m_seed(seed), m_cfg(cfg) {
  if (m_cfg.workers < 0 || m_cfg.workers > 256) throw SettingError("workers", "must be in [0, 256]");
  if (m_cfg.prefetch < 1 || m_cfg.prefetch > 64) throw SettingError("prefetch", "must be in [1, 64]");
  if (m_cfg.workers == 0) return;
  m_pool = std::make_unique<Pool>();
  for (int w = 0; w < m_cfg.workers; ++w) {
    m_pool->threads.emplace_back([this] {
      Pool& p = *m_pool;
      std::unique_lock<std::mutex> lock(p.mu);
      while (true) {
        p.work_cv.wait(lock, [&] { return p.quit || !p.tasks.empty(); });
        if (p.quit) return;
        const Pool::Task t = p.tasks.front();
        p.tasks.pop_front();
        const auto offsets = p.offsets;
        const int rank = p.rank;
        lock.unlock();
        Loaded l = load_clip(m_sampler, m_seed, t.step, rank, t.j, *offsets);
        lock.lock();
        if (t.generation != p.generation) continue;
        p.ready[t.step][size_t(t.j)] = std::move(l);
        if (--p.missing[t.step] == 0) p.done_cv.notify_all();
      }
    });
  }
}

ClipLoader::~ClipLoader() {
  if (!m_pool) return;
  {
    std::lock_guard<std::mutex> lock(m_pool->mu);
    m_pool->quit = true;
  }
  m_pool->work_cv.notify_all();
  for (auto& t : m_pool->threads) t.join();
}

ClipLoaderStats ClipLoader::stats() const { return m_stats; }

torch::Tensor ClipLoader::batch(int64_t step, int rank, int n, const ClipOffsets& offsets, torch::Device device) {
  if (n < 1) throw SettingError("batch", "must be at least 1");
  std::vector<Loaded> clips;
  const double t0 = time_now_s();
  if (!m_pool) {
    for (int j = 0; j < n; ++j) clips.push_back(load_clip(m_sampler, m_seed, step, rank, j, offsets));
  } else {
    Pool& p = *m_pool;
    std::unique_lock<std::mutex> lock(p.mu);
    if (p.rank != rank || p.n != n || !p.offsets || !(*p.offsets == offsets) || !p.ready.count(step)) {
      ++p.generation;
      p.tasks.clear();
      p.ready.clear();
      p.missing.clear();
      p.rank = rank;
      p.n = n;
      p.offsets = std::make_shared<const ClipOffsets>(offsets);
      p.next_step = step;
    }
    while (p.next_step <= step + m_cfg.prefetch) p.enqueue(p.next_step++);
    p.done_cv.wait(lock, [&] { return p.missing[step] == 0; });
    for (auto& c : p.ready[step]) clips.push_back(std::move(*c));
    p.ready.erase(step);
    p.missing.erase(step);
  }
  m_stats.wait_ms += (time_now_s() - t0) * 1000.0;
  std::vector<torch::Tensor> out;
  for (auto& c : clips) {
    m_stats.failed_reads += c.failed;
    if (c.error) std::rethrow_exception(c.error);
    out.push_back(m_sampler.render(c.crops, c.draw, device));
  }
  m_stats.clips += n;
  return torch::stack(out);
}

}  // namespace corrtrack
