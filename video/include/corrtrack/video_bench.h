// Benchmark of the video module (what `corrtrack bench decode` prints).
#pragma once

#include "corrtrack/video.h"

#include <nlohmann/json.hpp>

#include <string>
#include <utility>

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

// A synthetic video for long-video benchmarks (`corrtrack bench synth-video`): a smooth static
// background and `objects` checkered discs (radius height/8) moving on Lissajous paths, each
// drawn over the ones before it. Frame k is a pure function of the spec and k.
struct SynthVideoSpec {
  int width = 1920, height = 1080;
  double fps = 25.0;
  double seconds = 3600.0;   // length; frames = round(seconds * fps)
  int objects = 2;           // 1..20
};
int64_t synth_video_frames(const SynthVideoSpec& spec);
// Frame k: RGB image and its index mask (object i + 1 where disc i is the topmost, else 0).
std::pair<Image, Image> synth_video_frame(const SynthVideoSpec& spec, int64_t k);
// Writes every frame to `path` with VideoWriter (atomically) and, when `mask_path` is given,
// frame `mask_frame`'s mask as a palette PNG. JSON: path, frames, size, codec, bytes, seconds, fps
// of writing. Throws Error naming the argument for a bad spec.
nlohmann::json synth_video_write(const std::string& path, const SynthVideoSpec& spec, const std::string& mask_path,
                                 int64_t mask_frame);

}  // namespace corrtrack
