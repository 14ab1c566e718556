// Image-folder frame source (DAVIS JPEGImages/<seq>) and the frame_source_open dispatcher.
#include "corrtrack/core.h"
#include "corrtrack/video.h"
#include "video_internal.h"

#include <algorithm>
#include <filesystem>

namespace fs = std::filesystem;

namespace corrtrack {

namespace {

bool is_frame_file(const fs::path& p) {
  std::string ext = p.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  return ext == ".jpg" || ext == ".jpeg" || ext == ".png";
}

class ImageFolderSource : public FrameSource {
 public:
  ImageFolderSource(const std::string& path, const FrameSourceOptions& opts) : m_path(path), m_opts(opts) {
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(path, ec)) {
      if (e.is_regular_file() && is_frame_file(e.path())) m_files.push_back(e.path().string());
    }
    if (ec) throw Error("cannot list frame folder '" + path + "': " + ec.message());
    if (m_files.empty()) throw Error("frame folder '" + path + "' contains no .jpg/.jpeg/.png images");
    std::sort(m_files.begin(), m_files.end());
    const Image first = image_read(m_files.front());
    m_native_w = first.width;
    m_native_h = first.height;
    output_size(m_native_w, m_native_h, m_opts, m_out_w, m_out_h);
  }

  int64_t size() override { return static_cast<int64_t>(m_files.size()); }

  Image frame(int64_t k) override {
    if (k < 0 || k >= size()) {
      throw Error("frame " + std::to_string(k) + " is out of range for '" + m_path + "' (" + std::to_string(size()) + " frames)");
    }
    Image img = image_read(m_files[size_t(k)]);
    m_cursor = k + 1;
    if (img.width != m_native_w || img.height != m_native_h) {
      throw Error("frame '" + m_files[size_t(k)] + "' is " + std::to_string(img.width) + "x" + std::to_string(img.height) +
                  " but the first frame of the folder is " + std::to_string(m_native_w) + "x" + std::to_string(m_native_h));
    }
    return image_resize(img, m_out_w, m_out_h);
  }

  bool next(Image& out) override {
    if (m_cursor >= size()) return false;
    out = frame(m_cursor);
    return true;
  }

  std::vector<double> timestamps() override {
    std::vector<double> t(m_files.size());
    for (size_t i = 0; i < t.size(); ++i) t[i] = static_cast<double>(i) / kNominalFps;
    return t;
  }

  std::string frame_name(int64_t k) override { return fs::path(m_files.at(size_t(k))).stem().string(); }

  VideoInfo info() override {
    VideoInfo vi;
    vi.path = m_path;
    vi.container = "image folder";
    vi.codec = fs::path(m_files.front()).extension().string().substr(1);
    vi.pixel_format = "rgb24";
    vi.width = m_out_w;
    vi.height = m_out_h;
    vi.fps = kNominalFps;
    vi.frame_count = size();
    vi.duration_s = static_cast<double>(size()) / kNominalFps;
    return vi;
  }

  const std::string& path() const override { return m_path; }

 private:
  // Frame folders carry no timing; DAVIS was captured at 24-30 fps, we report a nominal 25.
  static constexpr double kNominalFps = 25.0;
  std::string m_path;
  FrameSourceOptions m_opts;
  std::vector<std::string> m_files;
  int64_t m_cursor = 0;
  int m_native_w = 0, m_native_h = 0, m_out_w = 0, m_out_h = 0;
};

}  // namespace

std::unique_ptr<FrameSource> image_folder_source_open(const std::string& path, const FrameSourceOptions& opts) {
  return std::make_unique<ImageFolderSource>(path, opts);
}

std::unique_ptr<FrameSource> frame_source_open(const std::string& path, const FrameSourceOptions& opts) {
  std::error_code ec;
  if (!fs::exists(path, ec)) throw Error("'" + path + "' does not exist");
  if (fs::is_directory(path, ec)) return image_folder_source_open(path, opts);
  // A pipe or device would block the decoder forever (a pipe has no end to seek to).
  if (!fs::is_regular_file(path, ec)) throw Error("'" + path + "' is not a regular file or a folder of frames");
  if (fs::file_size(path, ec) == 0) throw Error("'" + path + "' is an empty file, not a video");
  return video_file_source_open(path, opts);
}

}  // namespace corrtrack
