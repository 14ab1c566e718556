// Synthetic long videos for the Studio's long-video benchmark (video_bench.h).
#include "corrtrack/core.h"
#include "corrtrack/video.h"
#include "corrtrack/video_bench.h"

#include <chrono>
#include <cmath>
#include <filesystem>

namespace corrtrack {

namespace {

constexpr double kPi = 3.14159265358979323846;

void synth_check(const SynthVideoSpec& s) {
  if (s.width < 16 || s.height < 16 || s.width > 8192 || s.height > 8192) {
    throw Error("synthetic video size must be 16..8192 on each side, got " + std::to_string(s.width) + "x" + std::to_string(s.height));
  }
  if (!(s.fps > 0 && s.fps <= 240)) throw Error("synthetic video --fps must be in (0, 240], got " + std::to_string(s.fps));
  if (!(s.seconds > 0 && s.seconds <= 48 * 3600)) throw Error("synthetic video --seconds must be in (0, 172800], got " + std::to_string(s.seconds));
  if (s.objects < 1 || s.objects > 20) throw Error("synthetic video --objects must be 1..20, got " + std::to_string(s.objects));
}

// Smooth colour gradients: cheap to encode, yet every region has its own colour.
Image synth_background(int w, int h) {
  Image bg(w, h, 3);
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) {
      const double u = double(x) / w, v = double(y) / h;
      uint8_t* p = bg.px(x, y);
      p[0] = uint8_t(90 + 60 * std::sin(2 * kPi * u) * std::cos(kPi * v));
      p[1] = uint8_t(110 + 50 * std::cos(3 * kPi * v + u));
      p[2] = uint8_t(120 + 45 * std::sin(2 * kPi * (u + v)));
    }
  }
  return bg;
}

struct Disc {
  double cx, cy, r;
  uint8_t a[3], b[3];   // the two colours of its checker
};

// Disc i at frame k: Lissajous paths with periods of 11-29 seconds, different per disc.
Disc synth_disc(const SynthVideoSpec& s, int i, int64_t k) {
  const double t = double(k) / s.fps;
  const double px = 11.0 + 7.0 * i, py = 17.0 + 5.0 * ((i * 3) % 7);
  Disc d;
  d.r = s.height / 8.0;
  d.cx = s.width * (0.5 + 0.35 * std::sin(2 * kPi * t / px + 1.3 * i));
  d.cy = s.height * (0.5 + 0.3 * std::sin(2 * kPi * t / py + 0.7 * i));
  static const uint8_t palette[6][3] = {{230, 60, 40}, {40, 200, 90}, {250, 210, 30}, {60, 90, 230}, {220, 80, 220}, {30, 220, 230}};
  for (int c = 0; c < 3; ++c) {
    d.a[c] = palette[i % 6][c];
    d.b[c] = uint8_t(palette[i % 6][c] / 3);
  }
  return d;
}

}  // namespace

int64_t synth_video_frames(const SynthVideoSpec& spec) { return std::max<int64_t>(1, std::llround(spec.seconds * spec.fps)); }

std::pair<Image, Image> synth_video_frame(const SynthVideoSpec& spec, int64_t k) {
  synth_check(spec);
  static thread_local Image bg;   // the background of the last size asked for
  if (bg.width != spec.width || bg.height != spec.height) bg = synth_background(spec.width, spec.height);
  Image rgb = bg;
  Image mask(spec.width, spec.height, 1, 0);
  for (int i = 0; i < spec.objects; ++i) {
    const Disc d = synth_disc(spec, i, k);
    const double cell = std::max(2.0, d.r / 4);   // checker squares move with the disc
    const int x0 = std::max(0, int(d.cx - d.r)), x1 = std::min(spec.width - 1, int(d.cx + d.r) + 1);
    const int y0 = std::max(0, int(d.cy - d.r)), y1 = std::min(spec.height - 1, int(d.cy + d.r) + 1);
    for (int y = y0; y <= y1; ++y) {
      for (int x = x0; x <= x1; ++x) {
        const double dx = x + 0.5 - d.cx, dy = y + 0.5 - d.cy;
        if (dx * dx + dy * dy > d.r * d.r) continue;
        const bool odd = (int(std::floor(dx / cell)) + int(std::floor(dy / cell))) & 1;
        const uint8_t* c = odd ? d.a : d.b;
        uint8_t* p = rgb.px(x, y);
        p[0] = c[0];
        p[1] = c[1];
        p[2] = c[2];
        *mask.px(x, y) = uint8_t(i + 1);
      }
    }
  }
  return {std::move(rgb), std::move(mask)};
}

nlohmann::json synth_video_write(const std::string& path, const SynthVideoSpec& spec, const std::string& mask_path,
                                 int64_t mask_frame) {
  synth_check(spec);
  const int64_t n = synth_video_frames(spec);
  if (!mask_path.empty() && (mask_frame < 0 || mask_frame >= n)) {
    throw Error("--mask-frame " + std::to_string(mask_frame) + " is outside the video's " + std::to_string(n) + " frames");
  }
  const auto start = std::chrono::steady_clock::now();
  VideoWriter writer(path, spec.width, spec.height, spec.fps);
  auto log = log_get("video");
  for (int64_t k = 0; k < n; ++k) {
    auto [rgb, mask] = synth_video_frame(spec, k);
    writer.write(rgb);
    if (!mask_path.empty() && k == mask_frame) mask_write(mask_path, mask);
    if ((k + 1) % 1000 == 0) log->info("{}/{} frames written", k + 1, n);
  }
  writer.close();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return {{"path", path}, {"frames", n}, {"width", spec.width}, {"height", spec.height}, {"fps", spec.fps},
          {"objects", spec.objects}, {"codec", writer.codec_name()}, {"bytes", std::filesystem::file_size(path)},
          {"write_seconds", seconds}, {"write_fps", double(n) / seconds}, {"mask", mask_path}, {"mask_frame", mask_frame}};
}

}  // namespace corrtrack
