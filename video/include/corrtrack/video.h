// CorrTrack video: frame sources (video files, image folders), DAVIS palette masks, colour
// conversion, overlays and writers. Types and colour code build everywhere; decoding and file
// formats need CORRTRACK_WITH_VIDEO (FFmpeg, OpenCV, libpng).
#pragma once

#include "corrtrack/core.h"
#include "corrtrack/ops.h"

#include <torch/torch.h>

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace corrtrack {

// ---------------------------------------------------------------------------------------------
// Images
// ---------------------------------------------------------------------------------------------

// 8-bit image, rows top to bottom, channels interleaved (RGB for frames, 1 channel for masks).
struct Image {
  int width = 0;
  int height = 0;
  int channels = 0;
  std::vector<uint8_t> data;

  Image() = default;
  Image(int w, int h, int c, uint8_t fill = 0) : width(w), height(h), channels(c), data(size_t(w) * h * c, fill) {}
  bool empty() const { return data.empty(); }
  uint8_t* px(int x, int y) { return data.data() + (size_t(y) * width + x) * channels; }
  const uint8_t* px(int x, int y) const { return data.data() + (size_t(y) * width + x) * channels; }
  bool operator==(const Image& o) const {
    return width == o.width && height == o.height && channels == o.channels && data == o.data;
  }
};

// True if video files (FFmpeg), overlays and click segmentation (OpenCV) were compiled in
// (CORRTRACK_WITH_VIDEO). Frame folders and PNG masks may be there without them
// (CORRTRACK_WITH_IMAGE_IO): frame_source_open on a folder then works, on a file it throws.
bool video_support_available();

// ---------------------------------------------------------------------------------------------
// Frame sources
// ---------------------------------------------------------------------------------------------

struct VideoInfo {
  std::string path;
  std::string container;     // "mov,mp4,m4a,3gp,3g2,mj2", "avi", "image folder", ...
  std::string codec;         // "h264", "msmpeg4v3", "jpeg", ...
  std::string pixel_format;  // decoder's native format, e.g. "yuv420p10le"
  int width = 0;             // after rotation and resize, as frames are delivered
  int height = 0;
  double fps = 0.0;          // average frame rate (nominal for image folders: 25)
  int64_t frame_count = 0;   // counted by decoding, not taken from the header
  double duration_s = 0.0;   // last timestamp + one frame duration
  int rotation = 0;          // degrees clockwise applied to the decoded frames (0/90/180/270)
};

struct FrameSourceOptions {
  int width = 0;    // resize on decode; 0 keeps native (a single 0 keeps the aspect ratio)
  int height = 0;
  int threads = 0;  // decoder threads, 0 = automatic
  // Video files: the decode index of an earlier pass (video_file_index in clip_stream.h), used
  // instead of decoding the whole file again on the first random access. Trusted as given.
  std::shared_ptr<const std::vector<int64_t>> pts;
};

// A sequence of RGB frames from a video file or an image folder, with random access.
class FrameSource {
 public:
  virtual ~FrameSource() = default;
  // Number of frames; for videos this is counted by decoding once (honest for VFR and bad headers).
  virtual int64_t size() = 0;
  // The k-th frame (0-based), bit-identical to the k-th frame of a sequential pass.
  virtual Image frame(int64_t k) = 0;
  // The frame after the last one delivered (frame 0 at first) into `out`; false at the end.
  // Sequential reading at full decoder speed: never seeks, never builds the index.
  virtual bool next(Image& out) = 0;
  // Presentation time of every frame in seconds.
  virtual std::vector<double> timestamps() = 0;
  // Name stem for outputs derived from frame k ("00000" for videos, the file stem for folders).
  virtual std::string frame_name(int64_t k) = 0;
  virtual VideoInfo info() = 0;
  virtual const std::string& path() const = 0;
};

// Opens a video file or a folder of *.jpg/*.jpeg/*.png frames. Throws Error naming the path.
std::unique_ptr<FrameSource> frame_source_open(const std::string& path, const FrameSourceOptions& opts = {});
// Options that open `source`'s path again without a second counting pass: `base` plus, for a
// video file opened by frame_source_open, its decode index (built now if it was not yet). For a
// long video this is the difference between minutes and milliseconds: the Studio's worker and the
// adaptation reopen the video the window already indexed. Other sources: `base` unchanged.
FrameSourceOptions frame_source_reopen_options(FrameSource& source, FrameSourceOptions base = {});

// Frames first, first +- 1, ..., last of `inner` (backward when last < first) as frames 0..n-1:
// a prefix for benchmarks (0..N-1), a propagation range for the Studio. frame_name, timestamps
// and info (frame_count = n) follow; `global(k)` maps back to the inner index.
class FrameRangeSource : public FrameSource {
 public:
  FrameRangeSource(std::unique_ptr<FrameSource> inner, int64_t first, int64_t last);
  int64_t size() override { return m_n; }
  Image frame(int64_t k) override;
  bool next(Image& out) override;
  std::vector<double> timestamps() override;
  std::string frame_name(int64_t k) override { return m_inner->frame_name(global(k)); }
  VideoInfo info() override;
  const std::string& path() const override { return m_inner->path(); }
  int64_t global(int64_t k) const { return m_first + m_dir * k; }

 private:
  std::unique_ptr<FrameSource> m_inner;
  int64_t m_first, m_dir, m_n, m_pos = 0;
};

// ---------------------------------------------------------------------------------------------
// Masks (DAVIS palette PNGs: 0 background, 1..N objects, 255 void)
// ---------------------------------------------------------------------------------------------

// The standard DAVIS palette (256 RGB triplets, the PASCAL VOC bit-interleaved colour map).
const std::array<uint8_t, 768>& davis_palette();

// Reads a mask as a 1-channel index image. Palette PNGs give their indices unchanged;
// grayscale 0/255 masks give object 1 where the value is non-zero; RGB masks are mapped back
// through the DAVIS palette (a colour outside it is an error).
Image mask_read(const std::string& path);
// Writes a 1-channel index image as a palette PNG with the DAVIS palette, atomically.
void mask_write(const std::string& path, const Image& mask);
// Largest object index in a mask, ignoring 255 (void).
int mask_num_objects(const Image& mask);
// A 1-channel mask resized to width x height by nearest neighbour (indices stay indices): output
// pixel (x, y) takes the input pixel under its centre, floor((x + 0.5) * in_w / out_w).
Image mask_resize_nearest(const Image& mask, int width, int height);

// Fills a polygon (even-odd rule, pixel centres) with object index `id` in a 1-channel mask.
void mask_fill_polygon(Image& mask, const std::vector<std::pair<double, double>>& points, uint8_t id);

// Reads a colour image (JPEG/PNG) as RGB.
Image image_read(const std::string& path);
// Writes an RGB or gray image as PNG, atomically.
void image_write_png(const std::string& path, const Image& img);
// The same PNG file's bytes, in memory (to be written later, e.g. by file_write_atomic).
std::string image_encode_png(const Image& img);

// ---------------------------------------------------------------------------------------------
// Colour and tensors
// ---------------------------------------------------------------------------------------------

// uint8 HWC -> float [C, H, W] in [0, 1].
torch::Tensor image_to_tensor(const Image& img);
// float [C, H, W] in [0, 1] -> uint8 HWC (clamped, rounded).
Image tensor_to_image(const torch::Tensor& chw);
// sRGB in [0,1] -> CIE Lab (D65): L in [0,100], a/b roughly [-128,127]. Shape [..., 3, H, W].
torch::Tensor rgb_to_lab(const torch::Tensor& rgb);
// CIE Lab -> sRGB in [0,1] (clamped). Shape [..., 3, H, W].
torch::Tensor lab_to_rgb(const torch::Tensor& lab);
// Bilinear resize of an RGB image (used for internal resolution and previews).
Image image_resize(const Image& img, int width, int height);

// ---------------------------------------------------------------------------------------------
// Overlays and writers
// ---------------------------------------------------------------------------------------------

enum class OverlayMode { Blend, Contour, FadeBackground, MaskOnly };

// Draws a mask over a frame: DAVIS colours blended with `alpha`, contours, faded background
// or the coloured mask alone. Frame and mask must have the same size.
Image overlay_render(const Image& frame, const Image& mask, OverlayMode mode = OverlayMode::Blend, float alpha = 0.5f);

// Encodes RGB frames to a video file (H.264 when the encoder exists, else MPEG-4 part 2), written
// to a temporary name and renamed by close(); destroyed without close() it leaves nothing behind.
// 4:2:0 needs even sizes: an odd width or height is scaled up by one pixel when encoding.
class VideoWriter {
 public:
  VideoWriter(const std::string& path, int width, int height, double fps);
  ~VideoWriter();
  void write(const Image& frame);
  void close();
  const std::string& codec_name() const;
 private:
  struct Impl;
  std::unique_ptr<Impl> m_impl;
};

// Clip caches and streamed training videos: clip_cache.h, clip_stream.h.

// ---------------------------------------------------------------------------------------------
// Labelled image sets (image methods)
// ---------------------------------------------------------------------------------------------

struct ImageDataset {
  std::string name;
  torch::Tensor images;              // uint8 [N, C, H, W]
  torch::Tensor labels;              // int64 [N]
  std::vector<std::string> classes;
};
// "fashion-mnist" (Debian's dataset-fashion-mnist, or CORRTRACK_FASHION_MNIST=DIR): 60k train /
// 10k test, 1x28x28. Otherwise an ImageFolder root (<root>/<class>/<image>, optional train/ and
// test/ splits), images resized to size x size RGB. Throws Error naming what is missing.
ImageDataset image_dataset_load(const std::string& spec, bool train, int size = 32);

}  // namespace corrtrack
