// The raster painter: anti-aliased drawing on an RGB Image with OpenCV (Hershey font for text).
#include "corrtrack/core.h"
#include "corrtrack/drawing.h"

#include <opencv2/imgproc.hpp>

#include <cmath>

namespace corrtrack {

namespace {

constexpr int kShift = 4;                 // fractional bits of the coordinates given to OpenCV
constexpr double kOne = 1 << kShift;
constexpr int kFont = cv::FONT_HERSHEY_SIMPLEX;
constexpr double kFontCapHeight = 22.0;   // of a capital letter at font scale 1, pixels

cv::Point fixed(double x, double y) { return {int(std::lround(x * kOne)), int(std::lround(y * kOne))}; }
cv::Scalar scalar(Rgb c) { return {double(c.r), double(c.g), double(c.b)}; }   // the buffer is RGB
int pen(double thickness) { return thickness <= 0 ? cv::FILLED : std::max(1, int(std::lround(thickness))); }

class RasterPainter : public Painter {
 public:
  explicit RasterPainter(Image& target) : m_img(target) {
    if (target.channels != 3 || target.empty()) throw Error("the raster painter draws on RGB images (3 channels)");
    m_mat = cv::Mat(target.height, target.width, CV_8UC3, target.data.data());
  }
  int width() const override { return m_img.width; }
  int height() const override { return m_img.height; }
  void line(double x0, double y0, double x1, double y1, Rgb color, double thickness) override {
    cv::line(m_mat, fixed(x0, y0), fixed(x1, y1), scalar(color), pen(std::max(thickness, 1.0)), cv::LINE_AA, kShift);
  }
  void polyline(const std::vector<std::pair<double, double>>& points, Rgb color, double thickness) override {
    std::vector<cv::Point> pts;
    pts.reserve(points.size());
    for (const auto& [x, y] : points) pts.push_back(fixed(x, y));
    cv::polylines(m_mat, pts, false, scalar(color), pen(std::max(thickness, 1.0)), cv::LINE_AA, kShift);
  }
  void rect(double x, double y, double w, double h, Rgb color, double thickness) override {
    cv::rectangle(m_mat, fixed(x, y), fixed(x + w, y + h), scalar(color), pen(thickness), cv::LINE_AA, kShift);
  }
  void circle(double x, double y, double radius, Rgb color, double thickness) override {
    cv::circle(m_mat, fixed(x, y), int(std::lround(radius * kOne)), scalar(color), pen(thickness), cv::LINE_AA, kShift);
  }
  void text(double x, double y, const std::string& s, Rgb color, double size, TextAlign align) override {
    if (s.empty()) return;
    const double w = text_width(s, size);
    const double x0 = align == TextAlign::Left ? x : (align == TextAlign::Center ? x - w / 2 : x - w);
    cv::putText(m_mat, s, cv::Point(int(std::lround(x0)), int(std::lround(y))), kFont, size / kFontCapHeight, scalar(color),
                text_pen(size), cv::LINE_AA);
  }
  double text_width(const std::string& s, double size) const override {
    int baseline = 0;
    return cv::getTextSize(s, kFont, size / kFontCapHeight, text_pen(size), &baseline).width;
  }

 private:
  static int text_pen(double size) { return size >= 20 ? 2 : 1; }
  Image& m_img;
  cv::Mat m_mat;
};

}  // namespace

std::unique_ptr<Painter> painter_raster(Image& target) { return std::make_unique<RasterPainter>(target); }

}  // namespace corrtrack
