// Pictures for people: colour maps, a small 2-D painter over an RGB Image (anti-aliased lines,
// circles, boxes, text) or an SVG document, and line charts drawn through it. The inspection
// commands, training curves and the Studio draw with these, so a picture looks the same everywhere.
//
//   Image canvas(640, 480, 3, 255);
//   auto p = painter_raster(canvas);                  // needs video support (OpenCV)
//   p->line(10, 10, 200, 120, kChartColors[0], 2.0);
//   p->text(20, 40, "loss", Rgb{0, 0, 0}, 14.0);
//   chart_write("curves.svg", {panel}, 2);            // .png or .svg
#pragma once

#include "corrtrack/video.h"

#include <memory>
#include <string>
#include <vector>

namespace corrtrack {

struct Rgb {
  uint8_t r = 0, g = 0, b = 0;
  bool operator==(const Rgb& o) const { return r == o.r && g == o.g && b == o.b; }
};

// Viridis (perceptually uniform, dark blue -> green -> yellow) at v in [0, 1] (clamped).
Rgb colormap_viridis(double v);
// The ten categorical colours of charts and class plots (tab10), cycled by index.
Rgb chart_color(size_t i);

// Copies `src` into `dst` (same channel count) with its top-left corner at (x, y), clipped to `dst`.
void image_paste(Image& dst, const Image& src, int x, int y);

enum class TextAlign { Left, Center, Right };

// A surface in pixel coordinates, origin at the top left, y down. `thickness` <= 0 fills.
class Painter {
 public:
  virtual ~Painter() = default;
  virtual int width() const = 0;
  virtual int height() const = 0;
  virtual void line(double x0, double y0, double x1, double y1, Rgb color, double thickness = 1.0) = 0;
  virtual void polyline(const std::vector<std::pair<double, double>>& points, Rgb color, double thickness = 1.0) = 0;
  virtual void rect(double x, double y, double w, double h, Rgb color, double thickness = 1.0) = 0;
  virtual void circle(double x, double y, double radius, Rgb color, double thickness = 1.0) = 0;
  // Text whose baseline starts (Left), is centred (Center) or ends (Right) at (x, y); `size` is
  // the height of a capital letter in pixels.
  virtual void text(double x, double y, const std::string& s, Rgb color, double size, TextAlign align = TextAlign::Left) = 0;
  // Width of `s` drawn at `size` (for layout).
  virtual double text_width(const std::string& s, double size) const = 0;
};

// Draws on `target` (RGB, 3 channels; it must outlive the painter). Throws Error without video support.
std::unique_ptr<Painter> painter_raster(Image& target);

// Builds an SVG document of width x height (available in every build).
class SvgPainter : public Painter {
 public:
  SvgPainter(int width, int height, Rgb background = Rgb{255, 255, 255});
  int width() const override { return m_w; }
  int height() const override { return m_h; }
  void line(double x0, double y0, double x1, double y1, Rgb color, double thickness = 1.0) override;
  void polyline(const std::vector<std::pair<double, double>>& points, Rgb color, double thickness = 1.0) override;
  void rect(double x, double y, double w, double h, Rgb color, double thickness = 1.0) override;
  void circle(double x, double y, double radius, Rgb color, double thickness = 1.0) override;
  void text(double x, double y, const std::string& s, Rgb color, double size, TextAlign align = TextAlign::Left) override;
  double text_width(const std::string& s, double size) const override;
  // The whole document, closed.
  std::string str() const;

 private:
  int m_w, m_h;
  std::string m_body;
};

// ---------------------------------------------------------------------------------------------
// Line charts
// ---------------------------------------------------------------------------------------------

struct ChartSeries {
  std::string label;
  std::vector<double> x, y;   // same length; non-finite points are left out
};
struct ChartPanel {
  std::string title, x_label, y_label;
  std::vector<ChartSeries> series;   // colours by position: series i of every panel shares chart_color(i)
};

// Draws `panels` in a grid of `columns`, each with axes, ticks at 1-2-5 steps and a legend
// naming the series when there are several.
void chart_draw(Painter& painter, const std::vector<ChartPanel>& panels, int columns);
// Writes the chart as PNG or SVG (by the extension, atomically); `panel_width` x `panel_height`
// pixels per panel. Throws Error naming the path for another extension.
void chart_write(const std::string& path, const std::vector<ChartPanel>& panels, int columns, int panel_width = 420,
                 int panel_height = 300);

// "Nice" tick positions covering [lo, hi]: multiples of 1, 2 or 5 x 10^k, about `target` of them.
std::vector<double> chart_ticks(double lo, double hi, int target = 5);

}  // namespace corrtrack
