// Colour maps, the SVG painter and line charts (no OpenCV: these build in every configuration).
#include "corrtrack/drawing.h"

#include "corrtrack/core.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <limits>

namespace corrtrack {

namespace {

// Viridis sampled at nine evenly spaced points (matplotlib's values); linear in between.
constexpr std::array<Rgb, 9> kViridis{{{68, 1, 84}, {71, 45, 123}, {59, 82, 139}, {44, 114, 142}, {33, 145, 140},
                                       {40, 174, 128}, {94, 201, 98}, {173, 220, 48}, {253, 231, 37}}};
// tab10.
constexpr std::array<Rgb, 10> kTab10{{{31, 119, 180}, {255, 127, 14}, {44, 160, 44}, {214, 39, 40}, {148, 103, 189},
                                      {140, 86, 75}, {227, 119, 194}, {127, 127, 127}, {188, 189, 34}, {23, 190, 207}}};

std::string svg_color(Rgb c) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "#%02x%02x%02x", c.r, c.g, c.b);
  return buf;
}

std::string svg_num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f", v);
  return buf;
}

std::string svg_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string svg_stroke(Rgb c, double thickness) {
  return thickness <= 0 ? " fill=\"" + svg_color(c) + "\" stroke=\"none\""
                        : " fill=\"none\" stroke=\"" + svg_color(c) + "\" stroke-width=\"" + svg_num(thickness) + "\"";
}

// Tick label: short, without trailing zeros ("0.001", "2e+04", "150").
std::string tick_label(double v, double step) {
  if (std::abs(v) < step * 1e-6) v = 0.0;
  char buf[32];
  const double mag = std::max(std::abs(v), step);
  if (mag >= 1e5 || mag < 1e-3) std::snprintf(buf, sizeof buf, "%.3g", v);
  else {
    const int decimals = std::max(0, int(std::ceil(-std::log10(step) - 1e-9)));
    std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  }
  return buf;
}

struct Range {
  double lo = std::numeric_limits<double>::infinity(), hi = -std::numeric_limits<double>::infinity();
  void add(double v) {
    if (!std::isfinite(v)) return;
    lo = std::min(lo, v);
    hi = std::max(hi, v);
  }
  // An empty range becomes [0, 1]; a single value gets a margin so that it has an extent.
  void settle() {
    if (!(lo <= hi)) lo = 0.0, hi = 1.0;
    if (hi - lo < 1e-12 * std::max(1.0, std::abs(hi))) {
      const double pad = std::max(std::abs(hi) * 0.05, 1e-3);
      lo -= pad, hi += pad;
    }
  }
};

const Rgb kInk{40, 40, 40}, kGrid{225, 225, 225}, kFaint{110, 110, 110};

// "-- label" entries from (x, baseline y), a series without points greyed out, wrapping to a new
// row before an entry would pass `right`. Returns the baseline of the last row.
double draw_legend(Painter& p, const ChartPanel& panel, double x, double right, double y, double font) {
  const double first_x = x;
  for (size_t si = 0; si < panel.series.size(); ++si) {
    const auto& s = panel.series[si];
    const double entry = 20 + p.text_width(s.label, font);
    if (x > first_x && x + entry > right) {
      x = first_x;
      y += font + 6;
    }
    bool any = false;
    for (size_t i = 0; i < s.x.size() && i < s.y.size() && !any; ++i) any = std::isfinite(s.x[i]) && std::isfinite(s.y[i]);
    const Rgb c = any ? chart_color(si) : kGrid;
    p.line(x, y - font / 2 + 1, x + 16, y - font / 2 + 1, c, 2.0);
    p.text(x + 20, y, s.label, any ? kInk : kFaint, font);
    x += entry + 12;
  }
  return y;
}

void draw_panel(Painter& p, const ChartPanel& panel, double x0, double y0, double w, double h) {
  const double font = 11.0;
  // Plot area inside the panel: room for the title, tick labels and axis labels.
  const double left = x0 + 62, right = x0 + w - 14, bottom = y0 + h - 40;
  p.text((left + right) / 2, y0 + 18, panel.title, kInk, font + 2, TextAlign::Center);
  const double top = panel.series.size() > 1 ? draw_legend(p, panel, left, right, y0 + 36, font) + 10 : y0 + 30;
  Range xr, yr;
  for (const auto& s : panel.series)
    for (size_t i = 0; i < s.x.size() && i < s.y.size(); ++i)
      if (std::isfinite(s.x[i]) && std::isfinite(s.y[i])) xr.add(s.x[i]), yr.add(s.y[i]);
  xr.settle();
  yr.settle();
  const auto xt = chart_ticks(xr.lo, xr.hi), yt = chart_ticks(yr.lo, yr.hi);
  // The axes span the ticks (which cover the data).
  const double xlo = std::min(xr.lo, xt.front()), xhi = std::max(xr.hi, xt.back());
  const double ylo = std::min(yr.lo, yt.front()), yhi = std::max(yr.hi, yt.back());
  auto X = [&](double v) { return left + (v - xlo) / (xhi - xlo) * (right - left); };
  auto Y = [&](double v) { return bottom - (v - ylo) / (yhi - ylo) * (bottom - top); };
  const double xstep = xt.size() > 1 ? xt[1] - xt[0] : 1.0, ystep = yt.size() > 1 ? yt[1] - yt[0] : 1.0;
  for (double t : yt) {
    p.line(left, Y(t), right, Y(t), kGrid, 1.0);
    p.text(left - 6, Y(t) + font / 2, tick_label(t, ystep), kFaint, font, TextAlign::Right);
  }
  for (double t : xt) {
    p.line(X(t), top, X(t), bottom, kGrid, 1.0);
    p.text(X(t), bottom + font + 6, tick_label(t, xstep), kFaint, font, TextAlign::Center);
  }
  p.rect(left, top, right - left, bottom - top, kFaint, 1.0);
  p.text((left + right) / 2, y0 + h - 8, panel.x_label, kInk, font, TextAlign::Center);
  if (!panel.y_label.empty()) p.text(x0 + 4, top - 8, panel.y_label, kInk, font, TextAlign::Left);
  for (size_t si = 0; si < panel.series.size(); ++si) {
    const auto& s = panel.series[si];
    std::vector<std::pair<double, double>> pts;
    auto flush = [&] {
      if (pts.size() == 1) p.circle(pts[0].first, pts[0].second, 2.0, chart_color(si), 0.0);
      else if (pts.size() > 1) p.polyline(pts, chart_color(si), 1.6);
      pts.clear();
    };
    for (size_t i = 0; i < s.x.size() && i < s.y.size(); ++i) {
      if (std::isfinite(s.x[i]) && std::isfinite(s.y[i])) pts.emplace_back(X(s.x[i]), Y(s.y[i]));
      else flush();   // a gap where a value is missing
    }
    flush();
  }
}

}  // namespace

Rgb colormap_viridis(double v) {
  if (!std::isfinite(v)) v = 0.0;
  const double t = std::clamp(v, 0.0, 1.0) * (kViridis.size() - 1);
  const size_t i = std::min<size_t>(size_t(t), kViridis.size() - 2);
  const double f = t - double(i);
  auto mix = [&](uint8_t a, uint8_t b) { return uint8_t(std::lround(a + (b - a) * f)); };
  return Rgb{mix(kViridis[i].r, kViridis[i + 1].r), mix(kViridis[i].g, kViridis[i + 1].g), mix(kViridis[i].b, kViridis[i + 1].b)};
}

Rgb chart_color(size_t i) { return kTab10[i % kTab10.size()]; }

void image_paste(Image& dst, const Image& src, int x, int y) {
  if (src.channels != dst.channels) throw Error("cannot paste a " + std::to_string(src.channels) + "-channel image into a " + std::to_string(dst.channels) + "-channel one");
  const int x0 = std::max(0, x), x1 = std::min(dst.width, x + src.width);
  if (x1 <= x0) return;
  for (int row = std::max(0, y); row < std::min(dst.height, y + src.height); ++row)
    std::copy_n(src.px(x0 - x, row - y), size_t(x1 - x0) * src.channels, dst.px(x0, row));
}

// ---------------------------------------------------------------------------------------------

SvgPainter::SvgPainter(int width, int height, Rgb background) : m_w(width), m_h(height) {
  rect(0, 0, width, height, background, 0.0);
}

void SvgPainter::line(double x0, double y0, double x1, double y1, Rgb color, double thickness) {
  m_body += "<line x1=\"" + svg_num(x0) + "\" y1=\"" + svg_num(y0) + "\" x2=\"" + svg_num(x1) + "\" y2=\"" + svg_num(y1) +
            "\"" + svg_stroke(color, std::max(thickness, 0.5)) + "/>\n";
}

void SvgPainter::polyline(const std::vector<std::pair<double, double>>& points, Rgb color, double thickness) {
  m_body += "<polyline points=\"";
  for (const auto& [x, y] : points) m_body += svg_num(x) + "," + svg_num(y) + " ";
  m_body += "\"" + svg_stroke(color, std::max(thickness, 0.5)) + " stroke-linejoin=\"round\"/>\n";
}

void SvgPainter::rect(double x, double y, double w, double h, Rgb color, double thickness) {
  m_body += "<rect x=\"" + svg_num(x) + "\" y=\"" + svg_num(y) + "\" width=\"" + svg_num(w) + "\" height=\"" + svg_num(h) +
            "\"" + svg_stroke(color, thickness) + "/>\n";
}

void SvgPainter::circle(double x, double y, double radius, Rgb color, double thickness) {
  m_body += "<circle cx=\"" + svg_num(x) + "\" cy=\"" + svg_num(y) + "\" r=\"" + svg_num(radius) + "\"" +
            svg_stroke(color, thickness) + "/>\n";
}

void SvgPainter::text(double x, double y, const std::string& s, Rgb color, double size, TextAlign align) {
  if (s.empty()) return;
  static const char* kAnchor[] = {"start", "middle", "end"};
  // A capital letter is ~0.72 of the font size in common sans-serif faces.
  m_body += "<text x=\"" + svg_num(x) + "\" y=\"" + svg_num(y) + "\" font-family=\"DejaVu Sans, Arial, sans-serif\" font-size=\"" +
            svg_num(size / 0.72) + "\" fill=\"" + svg_color(color) + "\" text-anchor=\"" + kAnchor[int(align)] + "\">" +
            svg_escape(s) + "</text>\n";
}

double SvgPainter::text_width(const std::string& s, double size) const { return 0.55 * (size / 0.72) * s.size(); }

std::string SvgPainter::str() const {
  return "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" +
         std::to_string(m_w) + "\" height=\"" + std::to_string(m_h) + "\" viewBox=\"0 0 " + std::to_string(m_w) + " " +
         std::to_string(m_h) + "\">\n" + m_body + "</svg>\n";
}

// ---------------------------------------------------------------------------------------------

std::vector<double> chart_ticks(double lo, double hi, int target) {
  if (!(hi > lo) || !std::isfinite(lo) || !std::isfinite(hi)) return {lo};
  const double raw = (hi - lo) / std::max(1, target);
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  double step = mag;
  for (double m : {1.0, 2.0, 5.0, 10.0}) {
    step = m * mag;
    if (step >= raw) break;
  }
  std::vector<double> ticks;
  const double first = std::floor(lo / step + 1e-9) * step;
  for (int i = 0;; ++i) {
    const double t = first + i * step;
    ticks.push_back(std::abs(t) < step * 1e-9 ? 0.0 : t);
    if (t >= hi - step * 1e-9 || i > 1000) break;
  }
  return ticks;
}

void chart_draw(Painter& painter, const std::vector<ChartPanel>& panels, int columns) {
  columns = std::max(1, columns);
  const int rows = (int(panels.size()) + columns - 1) / columns;
  const double w = double(painter.width()) / columns, h = double(painter.height()) / std::max(1, rows);
  for (size_t i = 0; i < panels.size(); ++i) draw_panel(painter, panels[i], w * (i % columns), h * (i / columns), w, h);
}

void chart_write(const std::string& path, const std::vector<ChartPanel>& panels, int columns, int panel_width, int panel_height) {
  if (panels.empty()) throw Error("nothing to plot into '" + path + "'");
  columns = std::max(1, std::min<int>(columns, int(panels.size())));
  const int rows = (int(panels.size()) + columns - 1) / columns;
  const int W = columns * panel_width, H = rows * panel_height;
  std::string ext = std::filesystem::path(path).extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return char(std::tolower(c)); });
  if (ext == ".svg") {
    SvgPainter svg(W, H);
    chart_draw(svg, panels, columns);
    file_write_atomic(path, svg.str());
  } else if (ext == ".png") {
    Image canvas(W, H, 3, 255);
    chart_draw(*painter_raster(canvas), panels, columns);
    image_write_png(path, canvas);
  } else {
    throw Error("cannot plot into '" + path + "': the name must end in .png or .svg");
  }
}

}  // namespace corrtrack
