// Streaming training clips from video files and frame folders: the collection's index (one
// decoding pass per video, parallel, stored beside the data) and the ClipStore that decodes clips
// on demand, keeping a few decoders open between reads.
#include "corrtrack/clip_stream.h"

#include "corrtrack/core.h"
#include "clip_rect.h"
#include "video_internal.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <list>
#include <map>
#include <mutex>
#include <thread>

#include <sys/stat.h>
#include <unistd.h>

namespace fs = std::filesystem;
using nlohmann::json;

namespace corrtrack {

namespace {

constexpr int kIndexFormat = 2;
constexpr int64_t kForwardFrames = 48;   // what FrameSource decodes forward before it seeks

// Size and modification time of a file or folder (what says an index entry is still current).
bool file_stamp(const std::string& path, uint64_t* bytes, int64_t* mtime_ns, bool* folder) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return false;
  *folder = S_ISDIR(st.st_mode);
  *bytes = *folder ? 0 : uint64_t(st.st_size);
  *mtime_ns = int64_t(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
  return true;
}

json entry_to_json(const VideoIndexEntry& e) {
  json j = {{"path", e.path}, {"folder", e.folder}, {"bytes", e.bytes}, {"mtime_ns", e.mtime_ns}, {"frames", e.frames},
            {"fps", e.fps}, {"width", e.width}, {"height", e.height}, {"keyframes", e.keyframes}, {"pts", e.pts}};
  if (!e.error.empty()) j["error"] = e.error;
  return j;
}

VideoIndexEntry entry_from_json(const json& j) {
  VideoIndexEntry e;
  e.path = j.at("path").get<std::string>();
  e.folder = j.at("folder").get<bool>();
  e.bytes = j.at("bytes").get<uint64_t>();
  e.mtime_ns = j.at("mtime_ns").get<int64_t>();
  e.frames = j.at("frames").get<int64_t>();
  e.fps = j.at("fps").get<double>();
  e.width = j.at("width").get<int>();
  e.height = j.at("height").get<int>();
  e.keyframes = j.at("keyframes").get<std::vector<int64_t>>();
  e.pts = j.at("pts").get<std::vector<int64_t>>();
  e.error = j.value("error", std::string());
  if (e.error.empty() && (e.frames <= 0 || e.width <= 0 || e.height <= 0 || (!e.folder && int64_t(e.pts.size()) != e.frames))) {
    throw Error("inconsistent entry");
  }
  return e;
}

// The stored index as a map from path to entry; empty when missing or unreadable (rebuilt).
std::map<std::string, VideoIndexEntry> index_read(const std::string& path) {
  std::map<std::string, VideoIndexEntry> out;
  std::error_code ec;
  if (path.empty() || !fs::is_regular_file(path, ec)) return out;
  try {
    std::ifstream f(path);
    json j;
    f >> j;
    if (j.at("format").get<int>() != kIndexFormat) return out;
    for (const auto& e : j.at("videos")) {
      auto entry = entry_from_json(e);
      out[entry.path] = std::move(entry);
    }
  } catch (const std::exception& e) {
    log_get("video")->warn("video index '{}' is unreadable ({}); indexing again", path, e.what());
    out.clear();
  }
  return out;
}

// One decoding pass over a video (or a listing of a frame folder).
VideoIndexEntry entry_index(const std::string& path, uint64_t bytes, int64_t mtime_ns, bool folder, int threads) {
  VideoIndexEntry e;
  e.path = path;
  e.folder = folder;
  e.bytes = bytes;
  e.mtime_ns = mtime_ns;
  try {
    if (folder) {
      auto src = frame_source_open(path);
      const auto info = src->info();
      e.frames = info.frame_count;
      e.fps = info.fps;
      e.width = info.width;
      e.height = info.height;
    } else {
      auto idx = video_file_decode_index(path, threads);
      e.frames = int64_t(idx.pts.size());
      e.fps = idx.info.fps;
      e.width = idx.info.width;
      e.height = idx.info.height;
      e.keyframes = idx.keyframes;
      e.pts = std::move(idx.pts);
    }
  } catch (const std::exception& err) {   // on a worker thread: nothing may escape
    e.error = error_message(err);
  }
  return e;
}

// ---------------------------------------------------------------------------------------------
// The store
// ---------------------------------------------------------------------------------------------

class StreamStore : public ClipStore {
 public:
  StreamStore(std::vector<VideoIndexEntry> entries, const ClipStreamOptions& o, std::string path)
      : m_path(std::move(path)), m_open_limit(std::max(1, o.open_decoders)) {
    for (auto& e : entries) {
      int w = 0, h = 0;
      clip_frame_size(e.width, e.height, o.short_side, &w, &h);
      m_videos.push_back({clip_video_name(e.path), e.frames, w, h});
      m_pts.push_back(std::make_shared<const std::vector<int64_t>>(std::move(e.pts)));
      m_keys.push_back(e.folder ? std::vector<int64_t>() : std::move(e.keyframes));
      m_folder.push_back(e.folder);
      m_sources.push_back(e.path);
    }
    m_bad.assign(m_videos.size(), 0);
  }

  const std::vector<ClipVideo>& videos() const override { return m_videos; }
  const std::string& path() const override { return m_path; }
  std::string kind() const override { return "stream"; }

  void read(size_t video, const std::vector<int64_t>& frames, const PixelRect& rect, std::vector<Image>& out) const override {
    if (video >= m_videos.size()) throw Error("stream '" + m_path + "': no video " + std::to_string(video));
    const auto& v = m_videos[video];
    detail::clip_rect_check(v, rect, "'" + m_sources[video] + "'");
    if (frames.empty()) return out.clear();
    Decoder dec = take(video, frames.front());
    try {
      out.resize(frames.size());
      for (size_t i = 0; i < frames.size(); ++i) {
        const Image f = frame_at(video, dec, frames[i]);
        if (f.width != v.width || f.height != v.height) throw Error("frame " + std::to_string(frames[i]) + " of '" + m_sources[video] + "' changed size");
        out[i] = detail::clip_rect_copy(f.data.data(), v.width, rect);
      }
    } catch (const Error& e) {
      std::lock_guard<std::mutex> lock(m_mu);
      if (!m_bad[video]) log_get("video")->warn("skipping '{}' from now on: {}", m_sources[video], e.what());
      m_bad[video] = 1;
      throw;
    }
    give_back(std::move(dec));
  }

 private:
  // An open decoder and the frame its next() delivers.
  struct Decoder {
    size_t video = 0;
    int64_t next = 0;
    std::unique_ptr<FrameSource> src;
  };

  // Whether decoding forward from frame `from` to `to` needs no keyframe on the way (so that
  // it is cheaper than seeking, which would land at or before `from`).
  bool forward_is_cheaper(size_t video, int64_t from, int64_t to) const {
    if (m_folder[video] || to < from) return false;
    const auto& keys = m_keys[video];
    const auto it = std::upper_bound(keys.begin(), keys.end(), from);
    return it == keys.end() || *it > to;
  }

  // Frame k through `dec`: decoded forward when no keyframe lies between, else by random access.
  Image frame_at(size_t video, Decoder& dec, int64_t k) const {
    Image f;
    if (forward_is_cheaper(video, dec.next, k)) {
      for (; dec.next <= k; ++dec.next) {
        if (!dec.src->next(f)) throw Error("'" + m_sources[video] + "' ended before frame " + std::to_string(k));
      }
      return f;
    }
    f = dec.src->frame(k);
    dec.next = k + 1;
    return f;
  }

  // The open decoder of `video` best placed for frame `first` (one before it with no keyframe
  // between, else the most recently used), or a new one.
  Decoder take(size_t video, int64_t first) const {
    {
      std::lock_guard<std::mutex> lock(m_mu);
      if (m_bad[video]) throw Error("'" + m_sources[video] + "' could not be read before");
      auto best = m_idle.end();
      for (auto it = m_idle.begin(); it != m_idle.end(); ++it) {
        if (it->video != video) continue;
        if (best == m_idle.end()) best = it;
        if (forward_is_cheaper(video, it->next, first) && (!forward_is_cheaper(video, best->next, first) || it->next > best->next)) best = it;
      }
      if (best != m_idle.end()) {
        Decoder d = std::move(*best);
        m_idle.erase(best);
        return d;
      }
    }
    FrameSourceOptions fo;
    fo.width = m_videos[video].width;
    fo.height = m_videos[video].height;
    fo.threads = 1;   // the loader's workers read in parallel; one decoder thread each
    fo.pts = m_pts[video];
    return Decoder{video, 0, frame_source_open(m_sources[video], fo)};
  }

  void give_back(Decoder dec) const {
    std::lock_guard<std::mutex> lock(m_mu);
    m_idle.push_front(std::move(dec));
    while (int(m_idle.size()) > m_open_limit) m_idle.pop_back();
  }

  std::string m_path;
  int m_open_limit;
  std::vector<ClipVideo> m_videos;
  std::vector<std::shared_ptr<const std::vector<int64_t>>> m_pts;
  std::vector<std::vector<int64_t>> m_keys;
  std::vector<bool> m_folder;
  std::vector<std::string> m_sources;
  mutable std::mutex m_mu;
  mutable std::vector<char> m_bad;
  mutable std::list<Decoder> m_idle;   // most recently used first
};

}  // namespace

std::string video_index_location(const std::vector<std::string>& inputs, const std::string& fallback_dir) {
  std::error_code ec;
  if (inputs.size() == 1) {
    const fs::path p = fs::absolute(inputs[0], ec);
    if (fs::is_directory(p, ec)) return (p / ".corrtrack-index.json").string();
    if (clip_input_is_list(p.string())) return p.string() + ".corrtrack-index.json";
  }
  return fallback_dir.empty() ? std::string() : (fs::path(fallback_dir) / "videos-index.json").string();
}

std::vector<VideoIndexEntry> video_index_update(const std::vector<std::string>& sources, const std::string& index_path,
                                                int workers, ClipStreamReport* report) {
  if (workers < 1 || workers > 256) throw SettingError("workers", "must be in [1, 256]");
  const double t0 = time_now_s();
  const auto stored = index_read(index_path);
  std::vector<VideoIndexEntry> entries(sources.size());
  std::vector<size_t> todo;
  ClipStreamReport r;
  for (size_t i = 0; i < sources.size(); ++i) {
    std::error_code ec;
    const std::string abs = fs::absolute(sources[i], ec).lexically_normal().string();
    VideoIndexEntry& e = entries[i];
    e.path = abs;
    if (!file_stamp(abs, &e.bytes, &e.mtime_ns, &e.folder)) {
      e.error = "cannot be read";
      continue;
    }
    const auto it = stored.find(abs);
    if (it != stored.end() && it->second.bytes == e.bytes && it->second.mtime_ns == e.mtime_ns && it->second.folder == e.folder) {
      e = it->second;
      ++r.reused;
    } else {
      todo.push_back(i);
    }
  }
  if (!todo.empty()) {
    log_get("video")->info("indexing {} videos (frame counts and timestamps, once)", todo.size());
    ProgressMeter meter(int64_t(todo.size()), "videos");
    std::mutex mu;
    std::atomic<size_t> next{0};
    const int threads = workers > 1 ? 1 : 0;
    auto work = [&] {
      for (size_t k = next++; k < todo.size(); k = next++) {
        VideoIndexEntry& e = entries[todo[k]];
        e = entry_index(e.path, e.bytes, e.mtime_ns, e.folder, threads);
        std::lock_guard<std::mutex> lock(mu);
        meter.step();
      }
    };
    std::vector<std::thread> pool;
    for (int k = 1; k < std::min<int>(workers, int(todo.size())); ++k) pool.emplace_back(work);
    work();
    for (auto& t : pool) t.join();
    r.indexed = int64_t(todo.size());
  }
  for (const auto& e : entries) {
    if (e.error.empty()) ++r.videos;
    else {
      ++r.failed;
      log_get("video")->warn("skipping '{}': {}", e.path, e.error);
    }
  }
  if (!index_path.empty() && r.indexed > 0) {
    // Entries of videos no longer among the sources are kept (another run may use them).
    auto all = stored;
    for (const auto& e : entries) all[e.path] = e;
    json j = {{"format", kIndexFormat}, {"videos", json::array()}};
    for (const auto& [path, e] : all) j["videos"].push_back(entry_to_json(e));
    try {
      file_write_atomic(index_path, j.dump());
      r.index_path = index_path;
    } catch (const Error& e) {
      log_get("video")->warn("the video index could not be stored ({}); the next run indexes again", e.what());
    }
  } else if (!index_path.empty()) {
    r.index_path = index_path;
  }
  r.seconds = time_now_s() - t0;
  if (report) *report = r;
  return entries;
}

std::shared_ptr<const ClipStore> clip_stream_open(const std::vector<std::string>& inputs, const ClipStreamOptions& o,
                                                  ClipStreamReport* report) {
  if (o.short_side < 0) throw SettingError("size", "must be 0 (keep) or positive");
  const auto sources = clip_cache_expand_inputs(inputs);
  std::string where = o.index_path.empty() ? video_index_location(inputs, o.fallback_dir) : o.index_path;
  // An index beside the data only where the data's folder is writable; else the fallback.
  if (!where.empty() && o.index_path.empty() && ::access(fs::path(where).parent_path().c_str(), W_OK) != 0) {
    where = o.fallback_dir.empty() ? std::string() : (fs::path(o.fallback_dir) / "videos-index.json").string();
  }
  ClipStreamReport r;
  auto entries = video_index_update(sources, where, o.workers, &r);
  std::vector<VideoIndexEntry> readable;
  std::string first_error;
  for (auto& e : entries) {
    if (e.error.empty()) readable.push_back(std::move(e));
    else if (first_error.empty()) first_error = "'" + e.path + "': " + e.error;
  }
  if (readable.empty()) throw Error("none of the " + std::to_string(sources.size()) + " training videos could be read (" + first_error + ")");
  // A random clip in a video with keyframes n frames apart decodes about n / 2 frames first.
  int64_t sparse = 0;
  for (const auto& e : readable) {
    if (!e.folder && e.frames / int64_t(std::max<size_t>(1, e.keyframes.size())) > 2 * kForwardFrames) ++sparse;
  }
  if (sparse > 0) {
    log_get("video")->warn("{} of {} videos have a keyframe less often than every {} frames: each streamed clip decodes "
                           "many frames first; a cache (corrtrack cache build --codec jpeg) reads them much faster",
                           sparse, readable.size(), 2 * kForwardFrames);
  }
  if (report) *report = r;
  return std::make_shared<StreamStore>(std::move(readable), o, r.index_path.empty() ? sources.front() : r.index_path);
}

}  // namespace corrtrack
