// Benchmark of the video module (what `corrtrack bench decode` prints).
#pragma once

#include <nlohmann/json.hpp>

#include <string>

namespace corrtrack {

// Sequential decoding of a video or frame folder to RGB: frames, seconds, fps, peak RSS; with
// `compare_ffmpeg`, the same for the ffmpeg command decoding to rgb24 (its process start included).
nlohmann::json bench_decode(const std::string& path, bool compare_ffmpeg);

}  // namespace corrtrack
