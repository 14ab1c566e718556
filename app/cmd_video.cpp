// corrtrack inspect video / bench decode.
#include <torch/torch.h>

#include "cli_common.h"
#include "corrtrack/checkpoint_info.h"
#include "corrtrack/click_segment.h"
#include "corrtrack/core.h"
#include "corrtrack/video.h"
#include "corrtrack/video_bench.h"

#include <cstdio>
#include <sstream>
#include <iostream>
#include <filesystem>
#include <memory>
#include <tuple>

namespace corrtrack::cli {

namespace {

nlohmann::json info_json(const VideoInfo& vi) {
  return {{"path", vi.path}, {"container", vi.container}, {"codec", vi.codec}, {"pixel_format", vi.pixel_format},
          {"width", vi.width}, {"height", vi.height}, {"fps", vi.fps}, {"frame_count", vi.frame_count},
          {"duration_s", vi.duration_s}, {"rotation", vi.rotation}};
}

}  // namespace

// "x,y x,y ..." -> points; throws Error naming the option on bad syntax.
std::vector<std::pair<double, double>> parse_points(const std::string& text, const std::string& option) {
  std::vector<std::pair<double, double>> pts;
  std::stringstream ss(text);
  std::string item;
  while (ss >> item) {
    double x = 0, y = 0;
    char comma = 0;
    std::stringstream is(item);
    if (!(is >> x >> comma >> y) || comma != ',') throw Error(option + ": expected points as 'x,y x,y ...', got '" + item + "'");
    pts.emplace_back(x, y);
  }
  return pts;
}

std::pair<int, int> parse_size(const std::string& text, const std::string& option) {
  int w = 0, h = 0, used = 0;
  if (std::sscanf(text.c_str(), "%dx%d%n", &w, &h, &used) != 2 || used != int(text.size()) || w <= 0 || h <= 0 ||
      w > 16384 || h > 16384) {
    throw Error(option + " must look like 854x480, got '" + text + "'");
  }
  return {w, h};
}

void register_video_commands(CLI::App& app) {
  auto* inspect = app.get_subcommand("inspect");
  {
    auto* video = inspect->add_subcommand("video", "Container, codec, size, fps, frame count, duration");
    auto path = std::make_shared<std::string>();
    auto json = std::make_shared<bool>(false);
    video->add_option("path", *path, "Video file or frame folder")->required();
    video->add_flag("--json", *json, "Print JSON");
    video->callback([path, json] {
      auto src = frame_source_open(*path);
      const VideoInfo vi = src->info();
      if (*json) {
        json_emit(info_json(vi));
      } else {
        std::printf("path:         %s\ncontainer:    %s\ncodec:        %s\npixel format: %s\nsize:         %dx%d\n"
                    "fps:          %.3f\nframes:       %lld\nduration:     %.3f s\nrotation:     %d\n",
                    vi.path.c_str(), vi.container.c_str(), vi.codec.c_str(), vi.pixel_format.c_str(), vi.width,
                    vi.height, vi.fps, static_cast<long long>(vi.frame_count), vi.duration_s, vi.rotation);
      }
    });
  }

  {
    auto* ckpt = inspect->add_subcommand("checkpoint", "Metadata of a CorrTrack checkpoint (JSON)");
    auto path = std::make_shared<std::string>();
    ckpt->add_option("path", *path, "Checkpoint file")->required();
    ckpt->callback([path] { json_emit(nlohmann::json::parse(checkpoint_info_to_json(checkpoint_info_read(*path)))); });
  }
  {
    auto* mask = app.add_subcommand("mask", "Make annotation masks without the Studio");
    mask->require_subcommand(1);
    auto* poly = mask->add_subcommand("polygon", "Rasterise polygons into a DAVIS palette PNG");
    auto like = std::make_shared<std::string>(), out = std::make_shared<std::string>();
    auto objects = std::make_shared<std::vector<std::string>>();
    auto frame = std::make_shared<int64_t>(0);
    poly->add_option("--like", *like, "Video, frame folder or image giving the mask size")->required();
    poly->add_option("--frame", *frame, "Frame of --like to size the mask on")->capture_default_str();
    poly->add_option("--object", *objects, "ID:'x,y x,y ...' polygon of object ID (repeatable; later ones paint over)")->required();
    poly->add_option("--out", *out, "Output palette PNG")->required();
    poly->callback([like, out, objects, frame] {
      std::unique_ptr<FrameSource> src;
      Image ref;
      std::error_code ec;
      if (std::filesystem::is_regular_file(*like, ec) &&
          (like->size() > 4 && (like->substr(like->size() - 4) == ".png" || like->substr(like->size() - 4) == ".jpg"))) {
        ref = image_read(*like);
      } else {
        src = frame_source_open(*like);
        ref = src->frame(*frame);
      }
      Image m(ref.width, ref.height, 1, 0);
      for (const auto& spec : *objects) {
        const auto colon = spec.find(':');
        int id = 0;
        try { id = std::stoi(spec.substr(0, colon)); } catch (const std::exception&) { id = 0; }
        if (colon == std::string::npos || id < 1 || id > 254) throw Error("--object must be ID:'x,y x,y ...' with ID 1..254, got '" + spec + "'");
        mask_fill_polygon(m, parse_points(spec.substr(colon + 1), "--object " + std::to_string(id)), static_cast<uint8_t>(id));
      }
      mask_write(*out, m);
      log_get("app")->info("wrote {} ({}x{}, {} objects)", *out, m.width, m.height, mask_num_objects(m));
    });
  }

  auto* bench = app.get_subcommand("bench");
  {
    auto* decode = bench->add_subcommand("decode", "Sequential decode speed to RGB, peak RSS");
    auto path = std::make_shared<std::string>();
    auto compare = std::make_shared<bool>(false);
    auto out = std::make_shared<std::string>();
    decode->add_option("path", *path, "Video file or frame folder")->required();
    decode->add_flag("--compare-ffmpeg", *compare, "Also time the ffmpeg command decoding to rgb24");
    decode->add_option("--json", *out, "Write the JSON here instead of stdout");
    decode->callback([path, compare, out] { json_emit(bench_decode(*path, *compare), *out); });
  }
  {
    auto* clicks = bench->add_subcommand("clicks", "Click to segment (the Studio's click tool) on DAVIS first frames: IoU per click (JSON)");
    auto root = std::make_shared<std::string>();
    auto max_clicks = std::make_shared<int>(5);
    auto target = std::make_shared<double>(0.8);
    auto params = std::make_shared<ClickSegmentParams>();
    auto out = std::make_shared<std::string>();
    clicks->add_option("--davis", *root, "DAVIS root (JPEGImages/, Annotations/)")->required();
    clicks->add_option("--max-clicks", *max_clicks, "Clicks per sequence")->capture_default_str();
    clicks->add_option("--target", *target, "IoU whose click count is reported (noc)")->capture_default_str();
    clicks->add_option("--work-side", params->work_side, "Long side GrabCut runs at")->capture_default_str()->check(CLI::Range(16, 8192));
    clicks->add_option("--iterations", params->iterations, "GrabCut rounds")->capture_default_str()->check(CLI::Range(1, 50));
    clicks->add_option("--prior-radius", params->prior_radius, "Probable-object disc around positive clicks, fraction of the diagonal")->capture_default_str()->check(CLI::Range(0.0, 1.0));
    clicks->add_option("--colour-weight", params->colour_weight, "Geodesic cost per unit of colour difference (negative clicks)")->capture_default_str()->check(CLI::Range(0.0, 100.0));
    clicks->add_option("--json", *out, "Write the JSON here instead of stdout");
    clicks->callback([=] { json_emit(bench_clicks(*root, *max_clicks, *target, *params), *out); });
  }
  {
    auto* synth = bench->add_subcommand("synth-video", "Write a synthetic video (checkered discs moving over a smooth background) and one frame's mask, for long-video benchmarks");
    auto spec = std::make_shared<SynthVideoSpec>();
    auto out = std::make_shared<std::string>(), mask = std::make_shared<std::string>(), size = std::make_shared<std::string>("1920x1080");
    auto mask_frame = std::make_shared<int64_t>(0);
    synth->add_option("--out", *out, "Video file (.mp4, .mkv or .avi)")->required();
    synth->add_option("--size", *size, "WxH")->capture_default_str();
    synth->add_option("--fps", spec->fps, "Frames per second")->capture_default_str();
    synth->add_option("--seconds", spec->seconds, "Length in seconds")->capture_default_str();
    synth->add_option("--objects", spec->objects, "Moving discs (1..20)")->capture_default_str();
    synth->add_option("--mask", *mask, "Also write the mask of --mask-frame here (palette PNG)");
    synth->add_option("--mask-frame", *mask_frame, "The frame whose mask --mask writes")->capture_default_str();
    synth->callback([=] {
      std::tie(spec->width, spec->height) = parse_size(*size, "--size");
      json_emit(synth_video_write(*out, *spec, *mask, *mask_frame));
    });
  }
}

}  // namespace corrtrack::cli
