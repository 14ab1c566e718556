// Benchmark of the video module (what `corrtrack bench decode` prints).
#pragma once

#include <nlohmann/json.hpp>

#include <string>

namespace corrtrack {

// Sequential decoding of a video or frame folder to RGB: frames, seconds, fps, peak RSS; with
// `compare_ffmpeg`, the same for the ffmpeg command decoding to rgb24 (its process start included).
nlohmann::json bench_decode(const std::string& path, bool compare_ffmpeg);

// Click to segment on the first frame of every sequence of a DAVIS root (JPEGImages/<seq>/ and
// Annotations/<seq>/, all objects of the first mask as one): clicks placed by click_next, up to
// `max_clicks`; per sequence the IoU after each click, the clicks' signs, the clicks needed to
// reach IoU `target` ("noc", max_clicks + 1 when never) and ms per click; the means over the
// sequences. Throws Error naming the root when it holds no sequence.
struct ClickSegmentParams;
nlohmann::json bench_clicks(const std::string& davis_root, int max_clicks, double target, const ClickSegmentParams& params);

}  // namespace corrtrack
