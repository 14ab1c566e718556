// bench decode: our sequential decoder against the ffmpeg command.
#include "corrtrack/video_bench.h"

#include "corrtrack/video.h"

#include <cstdlib>

namespace corrtrack {

namespace {

// Time of `ffmpeg -i FILE -pix_fmt rgb24 -f null -`, the reference decoder speed; < 0 if it failed.
double time_ffmpeg_cli(const std::string& path) {
  std::string quoted = "'";
  for (char c : path) quoted += (c == '\'') ? std::string("'\\''") : std::string(1, c);
  quoted += "'";
  const std::string cmd = "ffmpeg -nostdin -v error -i " + quoted + " -map 0:v:0 -pix_fmt rgb24 -f null - >/dev/null 2>&1";
  const double t0 = time_now_s();
  const int rc = std::system(cmd.c_str());
  return rc == 0 ? time_now_s() - t0 : -1.0;
}

}  // namespace

nlohmann::json bench_decode(const std::string& path, bool compare_ffmpeg) {
  const double t0 = time_now_s();
  auto src = frame_source_open(path);
  int64_t frames = 0;
  Image img;
  while (src->next(img)) ++frames;
  if (frames == 0) throw Error("'" + path + "' contains no decodable video frames");
  const double secs = time_now_s() - t0;
  nlohmann::json j = {{"benchmark", "decode"}, {"path", path}, {"frames", frames}, {"seconds", secs},
                      {"fps", frames / secs}, {"peak_rss_mb", peak_rss_bytes() / 1048576.0}};
  if (!compare_ffmpeg) return j;
  const double ff = time_ffmpeg_cli(path);
  if (ff > 0) {
    j["ffmpeg_cli_seconds"] = ff;
    j["ffmpeg_cli_fps"] = frames / ff;
    j["ratio_vs_ffmpeg_cli"] = (frames / secs) / (frames / ff);
  } else {
    j["ffmpeg_cli_error"] = "ffmpeg command failed or is not installed";
  }
  return j;
}

}  // namespace corrtrack
