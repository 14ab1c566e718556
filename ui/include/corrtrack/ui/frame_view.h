// The frame canvas: shows a rendered frame at its native aspect with zoom (wheel, at the cursor)
// and pan (middle or right drag); turns left-button input into strokes, polygon points, clicks
// in image coordinates (with the click tool, a right click that does not drag is a negative click). It knows nothing about masks or models.
#pragma once

#include <QImage>
#include <QRectF>
#include <QString>
#include <QPointF>
#include <QWidget>

#include <vector>

namespace corrtrack::ui {

enum class Tool { Brush, Eraser, Polygon, Fill, Inspect, Click };

class FrameView : public QWidget {
  Q_OBJECT
 public:
  explicit FrameView(QWidget* parent = nullptr);
  void setImage(const QImage& image);   // keeps zoom and pan when the size does not change
  bool hasImage() const { return !m_image.isNull(); }
  void setTool(Tool tool) { m_tool = tool; m_polygon.clear(); update(); }
  Tool tool() const { return m_tool; }
  void setBrushRadius(double r) { m_radius = r; update(); }
  double brushRadius() const { return m_radius; }
  void setMarkers(std::vector<QPointF> points) { m_markers = std::move(points); update(); }
  // The click tool's points (green: positive, red: negative), image coordinates.
  void setClickMarkers(std::vector<std::pair<QPointF, bool>> points) { m_clicks = std::move(points); update(); }
  // A vertical colour bar (viridis, as heat_overlay colours) at the right edge labelled with the
  // values at its ends; lo > hi hides it.
  void setColourBar(double lo, double hi) { m_barLo = lo; m_barHi = hi; update(); }
  bool colourBarShown() const { return m_barLo <= m_barHi; }
  // The text shown while there is no image.
  void setPlaceholder(const QString& text) { m_placeholder = text; update(); }
  // Where each marker's number is drawn (widget coordinates), after the last paint: labels are
  // placed beside their marker where they overlap no other label or marker.
  const std::vector<QRectF>& markerLabels() const { return m_labels; }
  void fitToWindow();
  double zoom() const { return m_zoom; }
  // Image coordinates of a widget position, and back.
  QPointF toImage(QPointF widgetPos) const;
  QPointF toWidget(QPointF imagePos) const;

 Q_SIGNALS:
  void strokeFinished(std::vector<QPointF> points);   // brush / eraser, image coordinates
  void polygonFinished(std::vector<QPointF> points);  // double-click or Enter closes it
  void clicked(QPointF imagePos);                     // fill / inspect
  // Click tool: left click adds (positive), right click or Shift+left click removes (negative).
  void pointClicked(QPointF imagePos, bool positive);

 protected:
  void paintEvent(QPaintEvent*) override;
  void mousePressEvent(QMouseEvent*) override;
  void mouseMoveEvent(QMouseEvent*) override;
  void mouseReleaseEvent(QMouseEvent*) override;
  void mouseDoubleClickEvent(QMouseEvent*) override;
  void wheelEvent(QWheelEvent*) override;
  void resizeEvent(QResizeEvent*) override;
  void keyPressEvent(QKeyEvent*) override;

 private:
  QImage m_image;
  Tool m_tool = Tool::Click;
  double m_radius = 8.0;
  double m_zoom = 1.0;
  QPointF m_offset;            // widget position of image pixel (0, 0)
  bool m_fitted = false;
  bool m_painting = false, m_panning = false;
  QPointF m_panStart, m_offsetStart, m_cursor;
  std::vector<QPointF> m_stroke, m_polygon, m_markers;
  std::vector<std::pair<QPointF, bool>> m_clicks;
  std::vector<QRectF> m_labels;
  double m_barLo = 1, m_barHi = 0;
  QString m_placeholder;
};

}  // namespace corrtrack::ui
