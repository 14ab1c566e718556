// Finding training videos in the inputs, and building a clip cache from them: decoded (and
// encoded) by parallel workers into per-video part files, resumable, assembled at the end.
#include "corrtrack/clip_cache.h"

#include "corrtrack/core.h"
#include "jpeg_io.h"
#include "video_internal.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>

#include <unistd.h>

namespace fs = std::filesystem;
using nlohmann::json;

namespace corrtrack {

// ---------------------------------------------------------------------------------------------
// Inputs
// ---------------------------------------------------------------------------------------------

namespace {

bool has_ext(const fs::path& p, std::initializer_list<const char*> exts) {
  std::string e = p.extension().string();
  std::transform(e.begin(), e.end(), e.begin(), [](unsigned char c) { return std::tolower(c); });
  for (const char* x : exts) if (e == x) return true;
  return false;
}
bool is_image(const fs::path& p) { return has_ext(p, {".jpg", ".jpeg", ".png"}); }
bool is_video(const fs::path& p) {
  return has_ext(p, {".mp4", ".avi", ".mkv", ".mov", ".webm", ".mpg", ".mpeg", ".m4v", ".ts", ".flv", ".wmv"});
}

std::vector<fs::path> sorted_entries(const fs::path& dir) {
  std::vector<fs::path> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) out.push_back(e.path());
  if (ec) throw Error("cannot list '" + dir.string() + "': " + ec.message());
  std::sort(out.begin(), out.end());
  return out;
}

bool holds_images(const fs::path& dir) {
  for (const auto& e : sorted_entries(dir)) if (fs::is_regular_file(e) && is_image(e)) return true;
  return false;
}

void expand_one(const std::string& in, std::vector<std::string>& out, bool from_list);

// A text list: one path per line, relative to the list's folder.
void expand_list(const fs::path& list, std::vector<std::string>& out) {
  std::ifstream f(list);
  if (!f) throw Error("cannot read list '" + list.string() + "': " + std::strerror(errno));
  std::string line;
  int n = 0;
  while (std::getline(f, line)) {
    ++n;
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t')) line.pop_back();
    const size_t start = line.find_first_not_of(" \t");
    if (start == std::string::npos || line[start] == '#') continue;
    fs::path p(line.substr(start));
    if (p.is_relative()) p = list.parent_path() / p;
    std::error_code ec;
    if (!fs::exists(p, ec)) throw Error("list '" + list.string() + "' line " + std::to_string(n) + ": '" + p.string() + "' does not exist");
    expand_one(p.string(), out, true);
  }
}

void expand_one(const std::string& in, std::vector<std::string>& out, bool from_list) {
  const fs::path p(in);
  std::error_code ec;
  if (!fs::exists(p, ec)) throw Error("input '" + in + "' does not exist");
  if (fs::is_regular_file(p)) {
    if (clip_input_is_list(in) && !from_list) expand_list(p, out);
    else out.push_back(in);
    return;
  }
  if (fs::is_directory(p / "JPEGImages")) {  // DAVIS layout: every sequence folder
    const fs::path jp = fs::is_directory(p / "JPEGImages" / "480p") ? p / "JPEGImages" / "480p" : p / "JPEGImages";
    for (const auto& e : sorted_entries(jp)) if (fs::is_directory(e) && holds_images(e)) out.push_back(e.string());
    return;
  }
  if (holds_images(p)) {
    out.push_back(in);
    return;
  }
  for (const auto& e : sorted_entries(p)) {
    if (fs::is_regular_file(e) && is_video(e)) out.push_back(e.string());
    else if (fs::is_directory(e) && holds_images(e)) out.push_back(e.string());
  }
}

}  // namespace

bool clip_input_is_list(const std::string& path) {
  std::error_code ec;
  return has_ext(fs::path(path), {".txt"}) && fs::is_regular_file(path, ec);
}

std::vector<std::string> clip_cache_expand_inputs(const std::vector<std::string>& inputs) {
  std::vector<std::string> out;
  for (const auto& in : inputs) expand_one(in, out, false);
  if (out.empty()) {
    std::string list;
    for (const auto& in : inputs) list += (list.empty() ? "'" : ", '") + in + "'";
    throw Error("no videos or frame folders found in " + list);
  }
  return out;
}

void clip_frame_size(int width, int height, int short_side, int* out_w, int* out_h) {
  *out_w = width;
  *out_h = height;
  const int s = std::min(width, height);
  if (short_side <= 0 || s <= short_side) return;
  // FrameSourceOptions with one side given: the other follows the aspect ratio (as decoding does).
  FrameSourceOptions o;
  if (width <= height) o.width = short_side;
  else o.height = short_side;
  output_size(width, height, o, *out_w, *out_h);
}

std::string clip_video_name(const std::string& path) {
  std::string name = fs::path(path).filename().string();
  if (name.empty()) name = fs::path(path).parent_path().filename().string();
  return name;
}

// ---------------------------------------------------------------------------------------------
// Build: parts, then assembly
// ---------------------------------------------------------------------------------------------

namespace {

// OUT.parts/: build.json (what is being built), NNNNNN.bin (a video's frames in the cache's codec)
// and NNNNNN.json (its name, size and frame sizes), written once the .bin is complete. Videos that
// failed are tried again by the next run.
struct PartsFolder {
  fs::path dir;
  fs::path bin(size_t i) const { return dir / (number(i) + ".bin"); }
  fs::path meta(size_t i) const { return dir / (number(i) + ".json"); }
  static std::string number(size_t i) {
    char buf[32];
    std::snprintf(buf, sizeof(buf), "%06zu", i);
    return buf;
  }
};

json build_description(const std::vector<std::string>& sources, const ClipCacheBuildOptions& o) {
  return {{"inputs", sources}, {"short_side", o.short_side}, {"codec", clip_codec_name(o.codec)},
          {"quality", o.codec == ClipCodec::Jpeg ? o.quality : 0}};
}

// Opens the parts folder of an earlier build of the same thing, or starts one; a folder left by a
// build of other inputs or settings is emptied first.
void parts_prepare(const PartsFolder& parts, const json& description) {
  std::error_code ec;
  const fs::path desc = parts.dir / "build.json";
  if (fs::exists(desc, ec)) {
    std::ifstream f(desc);
    json old;
    try {
      f >> old;
    } catch (const json::exception&) {
    }
    if (old == description) {
      // Temporaries of a killed build (".NNNNNN.bin.tmp-PID") are never completed parts.
      for (const auto& e : fs::directory_iterator(parts.dir, ec)) {
        if (e.path().filename().string().rfind('.', 0) == 0) fs::remove(e.path(), ec);
      }
      return;
    }
    log_get("video")->info("'{}' holds parts of a cache built from other inputs or settings; starting over", parts.dir.string());
    fs::remove_all(parts.dir, ec);
  }
  dir_ensure_writable(parts.dir.string());
  file_write_atomic(desc.string(), description.dump(1));
}

// Decodes source `i` into its part (raw frames or JPEG files one after another).
void part_write(const PartsFolder& parts, size_t i, const std::string& source, const ClipCacheBuildOptions& o, int decoder_threads) {
  auto probe = frame_source_open(source);
  const auto native = probe->info();
  FrameSourceOptions fo;
  fo.threads = decoder_threads;
  int w = 0, h = 0;
  clip_frame_size(native.width, native.height, o.short_side, &w, &h);
  std::unique_ptr<FrameSource> src;
  if (w != native.width || h != native.height) {
    fo.width = w;
    fo.height = h;
    src = frame_source_open(source, fo);
  } else {
    src = std::move(probe);
  }
  const std::string tmp = file_temp_sibling(parts.bin(i).string());
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) throw Error("cannot create '" + tmp + "': " + std::strerror(errno));
  json sizes = json::array();
  int64_t frames = 0;
  try {
    // A one-video cache writer would do the same encoding; here the bytes go straight to the part.
    Image frame;
    while (src->next(frame)) {
      if (frame.width != w || frame.height != h) throw Error("frame " + std::to_string(frames) + " of '" + source + "' changed size");
      std::vector<uint8_t> jpeg;
      const uint8_t* data = frame.data.data();
      size_t size = frame.data.size();
      if (o.codec == ClipCodec::Jpeg) {
        jpeg = detail::jpeg_encode(frame, o.quality);
        data = jpeg.data();
        size = jpeg.size();
        sizes.push_back(size);
      }
      if (std::fwrite(data, 1, size, f) != size) throw Error("cannot write '" + tmp + "' (disk full?)");
      ++frames;
    }
    if (frames == 0) throw Error("'" + source + "' contains no decodable frames");
    if (std::fflush(f) != 0 || ::fsync(::fileno(f)) != 0) throw Error("cannot write '" + tmp + "' (disk full?)");
  } catch (...) {
    std::fclose(f);
    std::remove(tmp.c_str());
    throw;
  }
  if (std::fclose(f) != 0) {
    std::remove(tmp.c_str());
    throw Error("cannot write '" + tmp + "' (disk full?)");
  }
  file_commit(tmp, parts.bin(i).string());
  file_write_atomic(parts.meta(i).string(),
                    json{{"name", clip_video_name(source)}, {"width", w}, {"height", h}, {"frames", frames}, {"sizes", sizes}}.dump());
}

// Appends part `i` to the cache being written.
void part_append(const PartsFolder& parts, size_t i, ClipCodec codec, ClipCacheWriter& writer) {
  std::ifstream mf(parts.meta(i));
  json meta;
  try {
    mf >> meta;
  } catch (const json::exception& e) {
    throw Error("cannot read '" + parts.meta(i).string() + "': " + e.what());
  }
  const int w = meta.at("width").get<int>(), h = meta.at("height").get<int>();
  const int64_t frames = meta.at("frames").get<int64_t>();
  std::ifstream bin(parts.bin(i), std::ios::binary);
  if (!bin) throw Error("cannot read '" + parts.bin(i).string() + "'");
  writer.begin_video(meta.at("name").get<std::string>(), w, h);
  std::vector<uint8_t> buf;
  for (int64_t k = 0; k < frames; ++k) {
    const size_t size = codec == ClipCodec::Jpeg ? meta.at("sizes").at(size_t(k)).get<size_t>() : size_t(w) * size_t(h) * 3u;
    buf.resize(size);
    if (!bin.read(reinterpret_cast<char*>(buf.data()), std::streamsize(size))) throw Error("part '" + parts.bin(i).string() + "' is truncated");
    writer.add_encoded_frame(buf.data(), size);
  }
  writer.end_video();
}

}  // namespace

ClipCacheBuildReport clip_cache_build(const std::vector<std::string>& inputs, const std::string& out_path,
                                      const ClipCacheBuildOptions& o) {
  const double t0 = time_now_s();
  if (o.workers < 1 || o.workers > 256) throw SettingError("workers", "must be in [1, 256]");
  if (o.quality < 1 || o.quality > 100) throw SettingError("quality", "must be in [1, 100]");
  if (o.short_side < 0) throw SettingError("size", "must be 0 (keep) or positive");
  const auto sources = clip_cache_expand_inputs(inputs);
  file_replace_target(out_path);   // refuse a device or folder before any work
  const PartsFolder parts{fs::path(out_path + ".parts")};
  parts_prepare(parts, build_description(sources, o));

  ClipCacheBuildReport report;
  ProgressMeter meter(int64_t(sources.size()), "videos", o.progress);
  std::mutex mu;
  std::atomic<size_t> next{0};
  std::atomic<bool> stop{false};
  std::exception_ptr failure;
  std::vector<std::string> failed(sources.size());
  const int decoder_threads = o.workers > 1 ? 1 : 0;
  auto work = [&] {
    while (!stop) {
      const size_t i = next++;
      if (i >= sources.size()) return;
      std::error_code ec;
      const bool resumed = fs::exists(parts.meta(i), ec);
      std::string why;
      if (!resumed) {
        try {
          part_write(parts, i, sources[i], o, decoder_threads);
        } catch (const Error& e) {
          why = e.what();
        } catch (...) {
          std::lock_guard<std::mutex> lock(mu);
          if (!failure) failure = std::current_exception();
          stop = true;
          return;
        }
      }
      std::lock_guard<std::mutex> lock(mu);
      if (!why.empty()) log_get("video")->warn("skipping '{}': {}", sources[i], why);
      failed[i] = why;
      report.resumed += resumed ? 1 : 0;
      try {
        meter.step();
      } catch (...) {
        if (!failure) failure = std::current_exception();
        stop = true;
        return;
      }
    }
  };
  std::vector<std::thread> pool;
  for (int k = 1; k < std::min<int>(o.workers, int(sources.size())); ++k) pool.emplace_back(work);
  work();
  for (auto& t : pool) t.join();
  if (failure) std::rethrow_exception(failure);   // the finished parts stay for the next run

  ClipCacheWriter writer(out_path, o.codec, o.quality);
  std::string first_failure;
  for (size_t i = 0; i < sources.size(); ++i) {
    if (!failed[i].empty()) {
      ++report.skipped;
      if (first_failure.empty()) first_failure = failed[i];
      continue;
    }
    part_append(parts, i, o.codec, writer);
    ++report.videos;
  }
  if (report.videos == 0) throw Error("none of the " + std::to_string(sources.size()) + " inputs could be decoded (" + first_failure + ")");
  report.frames = writer.frames();
  writer.close();
  std::error_code ec;
  fs::remove_all(parts.dir, ec);
  report.bytes = fs::file_size(out_path, ec);
  report.seconds = time_now_s() - t0;
  return report;
}

}  // namespace corrtrack
