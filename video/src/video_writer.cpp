// Overlay video export through FFmpeg: H.264 (libx264) when present, else MPEG-4 part 2.
#include "corrtrack/core.h"
#include "corrtrack/video.h"
#include "video_internal.h"

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/opt.h>
#include <libswscale/swscale.h>
}

#include <cstdio>

namespace corrtrack {

struct VideoWriter::Impl {
  std::string path, tmp, codec;
  int width = 0, height = 0;      // input RGB size
  int enc_w = 0, enc_h = 0;       // encoded size (even, for yuv420p)
  AVFormatContext* fmt = nullptr;
  AVCodecContext* enc = nullptr;
  AVStream* stream = nullptr;
  AVFrame* frame = nullptr;
  AVPacket* pkt = nullptr;
  SwsContext* sws = nullptr;
  int64_t next_pts = 0;
  bool header_written = false;
  bool closed = false;

  void fail(const std::string& what, int err) {
    throw Error("cannot write video '" + path + "': " + what + (err < 0 ? ": " + av_error_string(err) : ""));
  }

  void release() {
    sws_freeContext(sws);
    sws = nullptr;
    av_frame_free(&frame);
    av_packet_free(&pkt);
    avcodec_free_context(&enc);
    if (fmt) {
      if (fmt->pb) avio_closep(&fmt->pb);
      avformat_free_context(fmt);
      fmt = nullptr;
    }
  }

  // Sends a frame (or nullptr to flush) and writes every packet the encoder returns.
  void encode(AVFrame* f) {
    int err = avcodec_send_frame(enc, f);
    if (err < 0) fail("encoding failed", err);
    while (true) {
      err = avcodec_receive_packet(enc, pkt);
      if (err == AVERROR(EAGAIN) || err == AVERROR_EOF) return;
      if (err < 0) fail("encoding failed", err);
      // Every packet lasts one frame; without a duration the MP4 edit list ends one frame early.
      if (pkt->duration <= 0) pkt->duration = 1;
      av_packet_rescale_ts(pkt, enc->time_base, stream->time_base);
      pkt->stream_index = stream->index;
      err = av_interleaved_write_frame(fmt, pkt);
      if (err < 0) fail("writing a packet failed", err);
    }
  }
};

VideoWriter::VideoWriter(const std::string& path, int width, int height, double fps) : m_impl(new Impl) {
  Impl& d = *m_impl;
  d.path = path;
  d.tmp = file_temp_sibling(path);
  d.width = width;
  d.height = height;
  if (width <= 0 || height <= 0) d.fail("invalid frame size", 0);
  if (!(fps > 0)) fps = 25.0;
  ffmpeg_log_init();
  try {
    // The container is chosen from the real name; the bytes go to the temporary name.
    int err = avformat_alloc_output_context2(&d.fmt, nullptr, nullptr, path.c_str());
    if (err < 0 || !d.fmt) d.fail("unknown container for this file extension (use .mp4, .mkv or .avi)", err);
    const AVCodec* codec = avcodec_find_encoder_by_name("libx264");
    if (!codec) codec = avcodec_find_encoder(AV_CODEC_ID_MPEG4);
    if (!codec) d.fail("no H.264 or MPEG-4 encoder in this FFmpeg", 0);
    d.codec = codec->name;
    d.stream = avformat_new_stream(d.fmt, nullptr);
    d.enc = avcodec_alloc_context3(codec);
    if (!d.stream || !d.enc) d.fail("out of memory", 0);
    d.enc_w = width + (width & 1);
    d.enc_h = height + (height & 1);
    d.enc->width = d.enc_w;
    d.enc->height = d.enc_h;
    d.enc->pix_fmt = AV_PIX_FMT_YUV420P;
    const AVRational rate = av_d2q(fps, 100000);
    d.enc->time_base = av_inv_q(rate);
    d.enc->framerate = rate;
    d.enc->gop_size = 12;
    // No B-frames: AVI cannot carry their timestamps, and MP4 edit lists for the reorder delay
    // make some readers drop a frame.
    d.enc->max_b_frames = 0;
    if (d.codec == "libx264") {
      av_opt_set(d.enc->priv_data, "preset", "veryfast", 0);
      av_opt_set(d.enc->priv_data, "crf", "20", 0);
    } else {
      d.enc->bit_rate = static_cast<int64_t>(d.enc_w) * d.enc_h * 4;
    }
    if (d.fmt->oformat->flags & AVFMT_GLOBALHEADER) d.enc->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
    err = avcodec_open2(d.enc, codec, nullptr);
    if (err < 0) d.fail("cannot open the " + d.codec + " encoder", err);
    avcodec_parameters_from_context(d.stream->codecpar, d.enc);
    d.stream->time_base = d.enc->time_base;
    err = avio_open(&d.fmt->pb, d.tmp.c_str(), AVIO_FLAG_WRITE);
    if (err < 0) d.fail("cannot create the file", err);
    err = avformat_write_header(d.fmt, nullptr);
    if (err < 0) d.fail("cannot write the container header", err);
    d.header_written = true;
    d.frame = av_frame_alloc();
    d.pkt = av_packet_alloc();
    d.frame->format = AV_PIX_FMT_YUV420P;
    d.frame->width = d.enc_w;
    d.frame->height = d.enc_h;
    err = av_frame_get_buffer(d.frame, 0);
    if (err < 0) d.fail("out of memory", err);
    d.sws = sws_getContext(width, height, AV_PIX_FMT_RGB24, d.enc_w, d.enc_h, AV_PIX_FMT_YUV420P, SWS_BILINEAR, nullptr,
                           nullptr, nullptr);
    if (!d.sws) d.fail("cannot set up colour conversion", 0);
  } catch (...) {
    d.release();
    std::remove(d.tmp.c_str());
    throw;
  }
}

VideoWriter::~VideoWriter() {
  if (!m_impl) return;
  if (!m_impl->closed) {
    // Abandoned (error or cancel): leave no half-written file behind.
    m_impl->release();
    std::remove(m_impl->tmp.c_str());
  }
}

void VideoWriter::write(const Image& img) {
  Impl& d = *m_impl;
  if (d.closed) d.fail("write after close", 0);
  if (img.width != d.width || img.height != d.height || img.channels != 3) {
    d.fail("frame is " + std::to_string(img.width) + "x" + std::to_string(img.height) + " but the video is " +
               std::to_string(d.width) + "x" + std::to_string(d.height), 0);
  }
  int err = av_frame_make_writable(d.frame);
  if (err < 0) d.fail("out of memory", err);
  const uint8_t* src[4] = {img.data.data(), nullptr, nullptr, nullptr};
  const int stride[4] = {img.width * 3, 0, 0, 0};
  sws_scale(d.sws, src, stride, 0, img.height, d.frame->data, d.frame->linesize);
  d.frame->pts = d.next_pts++;
  d.encode(d.frame);
}

void VideoWriter::close() {
  Impl& d = *m_impl;
  if (d.closed) return;
  d.encode(nullptr);
  int err = av_write_trailer(d.fmt);
  if (err < 0) d.fail("cannot finish the file", err);
  d.release();
  d.closed = true;
  file_commit(d.tmp, d.path);
}

const std::string& VideoWriter::codec_name() const { return m_impl->codec; }

}  // namespace corrtrack
