// Video-file frame source on FFmpeg: sequential decoding, honest frame counts from a decode
// index, and frame-accurate random access (seek to a keyframe, verify by timestamp).
#include "corrtrack/core.h"
#include "corrtrack/video.h"
#include "video_internal.h"

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/display.h>
#include <libavutil/imgutils.h>
#include <libavutil/pixdesc.h>
#include <libswscale/swscale.h>
}

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>

namespace corrtrack {

std::string av_error_string(int err) {
  char buf[AV_ERROR_MAX_STRING_SIZE] = {0};
  av_strerror(err, buf, sizeof(buf));
  return buf;
}

void ffmpeg_log_init() {
  av_log_set_level(log_verbosity() >= 2 ? AV_LOG_WARNING : AV_LOG_QUIET);
}

namespace {

bool frame_is_key(const AVFrame* f) {
#if LIBAVUTIL_VERSION_INT >= AV_VERSION_INT(58, 7, 100)
  return (f->flags & AV_FRAME_FLAG_KEY) != 0;
#else
  return f->key_frame != 0;
#endif
}

// Rotates a packed RGB image clockwise by 90, 180 or 270 degrees.
Image rotate_rgb(const Image& in, int degrees) {
  if (degrees == 0) return in;
  const bool swap = degrees == 90 || degrees == 270;
  Image out(swap ? in.height : in.width, swap ? in.width : in.height, in.channels);
  for (int y = 0; y < in.height; ++y) {
    for (int x = 0; x < in.width; ++x) {
      int ox = x, oy = y;
      if (degrees == 90) { ox = in.height - 1 - y; oy = x; }
      else if (degrees == 180) { ox = in.width - 1 - x; oy = in.height - 1 - y; }
      else if (degrees == 270) { ox = y; oy = in.width - 1 - x; }
      std::memcpy(out.px(ox, oy), in.px(x, y), in.channels);
    }
  }
  return out;
}

class VideoFileSource : public FrameSource {
 public:
  VideoFileSource(const std::string& path, const FrameSourceOptions& opts) : m_path(path), m_opts(opts) {
    try {
      open_decoder();
      read_metadata();
      if (opts.pts && !opts.pts->empty()) index_adopt(*opts.pts);
    } catch (...) {
      close_decoder();
      throw;
    }
  }
  ~VideoFileSource() override { close_decoder(); }

  int64_t size() override {
    build_index();
    return static_cast<int64_t>(m_pts.size());
  }

  Image frame(int64_t k) override {
    if (k < 0) throw Error("frame index " + std::to_string(k) + " is negative in '" + m_path + "'");
    if (k < m_next || k - m_next > kMaxForwardSkip) position_before(k);
    while (true) {
      if (!next_frame()) throw out_of_range(k);
      if (m_current == k) return convert_frame(m_frame);
    }
  }

  bool next(Image& out) override {
    if (!next_frame()) return false;
    out = convert_frame(m_frame);
    return true;
  }

  std::vector<double> timestamps() override {
    build_index();
    std::vector<double> out;
    out.reserve(m_pts.size());
    const double tb = av_q2d(m_stream->time_base);
    const double step = m_info.fps > 0 ? 1.0 / m_info.fps : 0.04;
    // Frames without a usable timestamp (some AVI/MPEG-PS streams) get the previous one plus a
    // nominal frame duration.
    int64_t t0 = AV_NOPTS_VALUE;
    for (int64_t p : m_pts) if (p != AV_NOPTS_VALUE) { t0 = p; break; }
    for (size_t i = 0; i < m_pts.size(); ++i) {
      const int64_t p = m_pts[i];
      double t = (p == AV_NOPTS_VALUE || t0 == AV_NOPTS_VALUE) ? -1.0 : static_cast<double>(p - t0) * tb;
      if (i > 0 && !(t > out.back())) t = out.back() + step;
      if (i == 0 && t < 0) t = 0.0;
      out.push_back(t);
    }
    return out;
  }

  std::string frame_name(int64_t k) override {
    char buf[32];
    std::snprintf(buf, sizeof(buf), "%05lld", static_cast<long long>(k));
    return buf;
  }

  VideoInfo info() override {
    VideoInfo vi = m_info;
    vi.frame_count = size();
    const auto ts = timestamps();
    vi.duration_s = ts.empty() ? 0.0 : ts.back() + (vi.fps > 0 ? 1.0 / vi.fps : 0.0);
    return vi;
  }

  const std::string& path() const override { return m_path; }

  // The decode index (building it if needed) and which of its frames are keyframes.
  const std::vector<int64_t>& pts_index() {
    build_index();
    return m_pts;
  }
  const std::vector<int64_t>& keyframes() {
    build_index();
    return m_keyframes;
  }

 private:
  // Past this many frames ahead it is cheaper to seek than to decode forward.
  static constexpr int64_t kMaxForwardSkip = 48;
  static constexpr int kMaxSeekTries = 6;
  // Give up on a file after this many undecodable packets or frames.
  static constexpr int kMaxDecodeErrors = 1000;

  Error out_of_range(int64_t k) {
    return Error("frame " + std::to_string(k) + " is past the end of '" + m_path + "' (" +
                 std::to_string(size()) + " frames)");
  }

  void open_decoder() {
    ffmpeg_log_init();
    int err = avformat_open_input(&m_fmt, m_path.c_str(), nullptr, nullptr);
    if (err < 0) throw Error("cannot open video '" + m_path + "': " + av_error_string(err));
    err = avformat_find_stream_info(m_fmt, nullptr);
    if (err < 0) throw Error("cannot read streams of '" + m_path + "': " + av_error_string(err));
    const AVCodec* codec = nullptr;
    m_stream_index = av_find_best_stream(m_fmt, AVMEDIA_TYPE_VIDEO, -1, -1, &codec, 0);
    if (m_stream_index < 0 || !codec) throw Error("'" + m_path + "' has no decodable video stream");
    m_stream = m_fmt->streams[m_stream_index];
    // Only our stream is demuxed; audio packets are discarded by the demuxer.
    for (unsigned i = 0; i < m_fmt->nb_streams; ++i) {
      if (static_cast<int>(i) != m_stream_index) m_fmt->streams[i]->discard = AVDISCARD_ALL;
    }
    m_dec = avcodec_alloc_context3(codec);
    if (!m_dec) throw Error("out of memory opening '" + m_path + "'");
    avcodec_parameters_to_context(m_dec, m_stream->codecpar);
    m_dec->thread_count = m_opts.threads;
    m_dec->thread_type = FF_THREAD_FRAME | FF_THREAD_SLICE;
    err = avcodec_open2(m_dec, codec, nullptr);
    if (err < 0) throw Error("cannot open the " + std::string(codec->name) + " decoder for '" + m_path + "': " + av_error_string(err));
    if (m_dec->width <= 0 || m_dec->height <= 0) throw Error("'" + m_path + "' has a video stream without a frame size");
    m_pkt = av_packet_alloc();
    m_frame = av_frame_alloc();
    m_next = 0;
    m_held = false;
    m_flushing = false;
  }

  void close_decoder() {
    av_frame_free(&m_frame);
    av_packet_free(&m_pkt);
    avcodec_free_context(&m_dec);
    avformat_close_input(&m_fmt);
    sws_freeContext(m_sws);
    m_sws = nullptr;
    m_stream = nullptr;
  }

  void reopen() {
    close_decoder();
    try {
      open_decoder();
    } catch (...) {
      close_decoder();
      throw;
    }
  }

  void read_metadata() {
    m_info.path = m_path;
    m_info.container = m_fmt->iformat->name;
    m_info.codec = avcodec_get_name(m_stream->codecpar->codec_id);
    const char* pf = av_get_pix_fmt_name(static_cast<AVPixelFormat>(m_stream->codecpar->format));
    m_info.pixel_format = pf ? pf : "unknown";
    AVRational r = m_stream->avg_frame_rate;
    if (r.num <= 0 || r.den <= 0) r = m_stream->r_frame_rate;
    m_info.fps = (r.num > 0 && r.den > 0) ? av_q2d(r) : 0.0;
    const uint8_t* matrix = av_stream_get_side_data(m_stream, AV_PKT_DATA_DISPLAYMATRIX, nullptr);
    if (matrix) {
      // av_display_rotation_get is counter-clockwise; we store the clockwise turn to apply.
      const double ccw = av_display_rotation_get(reinterpret_cast<const int32_t*>(matrix));
      if (!std::isnan(ccw)) {
        int cw = static_cast<int>(std::lround(-ccw)) % 360;
        if (cw < 0) cw += 360;
        m_rotation = (cw + 45) / 90 * 90 % 360;
      }
    }
    m_info.rotation = m_rotation;
    int w = m_dec->width, h = m_dec->height;
    if (m_rotation == 90 || m_rotation == 270) std::swap(w, h);
    output_size(w, h, m_opts, m_out_w, m_out_h);
    m_info.width = m_out_w;
    m_info.height = m_out_h;
  }

  // The next frame in output order into m_frame, its index in m_current; false at the end.
  bool next_frame() {
    if (m_held) {
      m_held = false;
    } else if (!decode_raw()) {
      return false;
    }
    m_current = m_next++;
    return true;
  }

  // Decodes one frame into m_frame; false at the end of the stream. Corrupt packets are
  // skipped; a read error (truncated file) ends the stream.
  bool decode_raw() {
    while (true) {
      int err = avcodec_receive_frame(m_dec, m_frame);
      if (err == 0) return true;
      if (err == AVERROR_EOF) return false;
      if (err != AVERROR(EAGAIN)) {
        if (++m_decode_errors > kMaxDecodeErrors) throw Error("'" + m_path + "' is too corrupt to decode");
        continue;
      }
      if (m_flushing) return false;
      err = av_read_frame(m_fmt, m_pkt);
      if (err < 0) {
        m_flushing = true;
        avcodec_send_packet(m_dec, nullptr);
        continue;
      }
      if (m_pkt->stream_index == m_stream_index) {
        err = avcodec_send_packet(m_dec, m_pkt);
        if (err < 0 && err != AVERROR(EAGAIN) && ++m_decode_errors > kMaxDecodeErrors) {
          av_packet_unref(m_pkt);
          throw Error("'" + m_path + "' is too corrupt to decode");
        }
      }
      av_packet_unref(m_pkt);
    }
  }

  // Decodes every frame once (no colour conversion) to learn the true count and timestamps.
  void build_index() {
    if (m_indexed) return;
    // Indexing decodes the whole stream; afterwards the reader resumes where it was.
    const int64_t resume = m_next;
    reopen();
    std::vector<int64_t> pts;
    m_keyframes.clear();
    while (decode_raw()) {
      if (frame_is_key(m_frame)) m_keyframes.push_back(int64_t(pts.size()));
      pts.push_back(m_frame->best_effort_timestamp);
    }
    if (pts.empty()) throw Error("'" + m_path + "' contains no decodable video frames");
    index_adopt(pts);
    log_get("video")->debug("indexed '{}': {} frames, seekable={}", m_path, m_pts.size(), m_seekable);
    reopen();
    if (resume > 0 && resume < static_cast<int64_t>(m_pts.size())) {
      position_before(resume);
      while (m_next < resume && next_frame()) {}
    }
  }

  void index_adopt(const std::vector<int64_t>& pts) {
    m_pts = pts;
    m_indexed = true;
    m_seekable = true;
    for (size_t i = 0; i < m_pts.size(); ++i) {
      if (m_pts[i] == AV_NOPTS_VALUE || (i > 0 && m_pts[i] <= m_pts[i - 1])) { m_seekable = false; break; }
    }
  }

  // Positions the decoder so that the next frame out has an index <= k and m_next is exact.
  void position_before(int64_t k) {
    build_index();
    if (k >= static_cast<int64_t>(m_pts.size())) throw out_of_range(k);
    if (m_seekable) {
      int64_t back = 0;
      for (int attempt = 0; attempt < kMaxSeekTries; ++attempt) {
        const int64_t target = std::max<int64_t>(0, k - back);
        if (seek_to_keyframe_before(m_pts[target], k)) return;
        if (target == 0) break;
        back = back == 0 ? 8 : back * 4;
      }
      log_get("video")->debug("seek in '{}' did not land before frame {}; decoding from the start", m_path, k);
    }
    reopen();
  }

  // Seeks to the keyframe at or before `ts` and decodes up to the first keyframe in output
  // order (earlier outputs may reference pictures before the seek point). Succeeds when that
  // keyframe's index is <= k; the keyframe is held as the next frame to deliver.
  bool seek_to_keyframe_before(int64_t ts, int64_t k) {
    if (av_seek_frame(m_fmt, m_stream_index, ts, AVSEEK_FLAG_BACKWARD) < 0) return false;
    avcodec_flush_buffers(m_dec);
    m_flushing = false;
    m_held = false;
    m_next = 0;
    while (decode_raw()) {
      if (!frame_is_key(m_frame)) continue;
      auto it = std::lower_bound(m_pts.begin(), m_pts.end(), m_frame->best_effort_timestamp);
      if (it == m_pts.end() || *it != m_frame->best_effort_timestamp) return false;
      const int64_t idx = it - m_pts.begin();
      if (idx > k) return false;
      m_next = idx;
      m_held = true;
      return true;
    }
    return false;
  }

  Image convert_frame(AVFrame* f) {
    const bool swap = m_rotation == 90 || m_rotation == 270;
    const int sw = swap ? m_out_h : m_out_w;  // size before rotation
    const int sh = swap ? m_out_w : m_out_h;
    // Bicubic is the ffmpeg command's default: frames match `ffmpeg -pix_fmt rgb24` bit for bit
    // (8-bit 4:2:0 at native size takes swscale's unscaled path either way). Use the stream's YUV
    // matrix and range (BT.709 for HD video), as the ffmpeg command does.
    const int matrix = (f->colorspace == AVCOL_SPC_UNSPECIFIED || f->colorspace == AVCOL_SPC_RGB) ? SWS_CS_DEFAULT : f->colorspace;
    const int full_range = f->color_range == AVCOL_RANGE_JPEG ? 1 : 0;
    // The context is made here, not by sws_getCachedContext: that one replaces a context whose
    // colour details were changed, and a replacement at the same address went untuned (BT.601 on
    // some frames of a BT.709 video, at random between two passes).
    const std::array<int, 7> key{f->width, f->height, f->format, sw, sh, matrix, full_range};
    if (!m_sws || key != m_sws_key) {
      sws_freeContext(m_sws);
      m_sws = sws_getContext(f->width, f->height, static_cast<AVPixelFormat>(f->format), sw, sh, AV_PIX_FMT_RGB24, SWS_BICUBIC,
                             nullptr, nullptr, nullptr);
      if (!m_sws) throw Error("cannot convert the pixel format of '" + m_path + "' to RGB");
      m_sws_key = key;
      int* inv = nullptr;
      int* table = nullptr;
      int src_range = 0, dst_range = 0, brightness = 0, contrast = 0, saturation = 0;
      // Formats without a YUV matrix (RGB, gray) report -1 here and keep swscale's defaults.
      if (sws_getColorspaceDetails(m_sws, &inv, &src_range, &table, &dst_range, &brightness, &contrast, &saturation) >= 0) {
        sws_setColorspaceDetails(m_sws, sws_getCoefficients(matrix), full_range || src_range, table, dst_range, brightness,
                                 contrast, saturation);
      }
    }
    Image img(sw, sh, 3);
    uint8_t* dst[4] = {img.data.data(), nullptr, nullptr, nullptr};
    int stride[4] = {sw * 3, 0, 0, 0};
    sws_scale(m_sws, f->data, f->linesize, 0, f->height, dst, stride);
    return rotate_rgb(img, m_rotation);
  }

 private:
  std::string m_path;
  FrameSourceOptions m_opts;
  VideoInfo m_info;
  AVFormatContext* m_fmt = nullptr;
  AVCodecContext* m_dec = nullptr;
  AVStream* m_stream = nullptr;
  AVPacket* m_pkt = nullptr;
  AVFrame* m_frame = nullptr;
  SwsContext* m_sws = nullptr;
  std::array<int, 7> m_sws_key{};    // what m_sws converts: source size and format, output size, matrix, range
  int m_stream_index = -1;
  int m_rotation = 0;
  int m_out_w = 0, m_out_h = 0;
  int64_t m_next = 0;
  int64_t m_current = -1;
  bool m_held = false;
  bool m_flushing = false;
  int m_decode_errors = 0;
  bool m_indexed = false;
  bool m_seekable = false;
  std::vector<int64_t> m_keyframes;   // indices of keyframes (when this object built the index)
  std::vector<int64_t> m_pts;
};

}  // namespace

bool video_support_available() { return true; }

std::unique_ptr<FrameSource> video_file_source_open(const std::string& path, const FrameSourceOptions& opts) {
  return std::make_unique<VideoFileSource>(path, opts);
}

FrameSourceOptions frame_source_reopen_options(FrameSource& source, FrameSourceOptions base) {
  if (auto* video = dynamic_cast<VideoFileSource*>(&source)) base.pts = std::make_shared<const std::vector<int64_t>>(video->pts_index());
  return base;
}

VideoDecodeIndex video_file_decode_index(const std::string& path, int threads) {
  FrameSourceOptions o;
  o.threads = threads;
  VideoFileSource src(path, o);
  VideoDecodeIndex out;
  out.pts = src.pts_index();
  out.keyframes = src.keyframes();
  out.info = src.info();
  return out;
}

}  // namespace corrtrack
