// Frame canvas: zoom, pan, brush cursor, stroke / polygon / click input in image coordinates.
#include "corrtrack/ui/frame_view.h"

#include <QKeyEvent>
#include <QMouseEvent>
#include <QPainter>
#include <QPainterPath>
#include <QWheelEvent>

#include <algorithm>
#include <cmath>

namespace corrtrack::ui {

FrameView::FrameView(QWidget* parent) : QWidget(parent) {
  setMouseTracking(true);
  setFocusPolicy(Qt::StrongFocus);
  setMinimumSize(320, 200);
  setAutoFillBackground(true);
  QPalette p = palette();
  p.setColor(QPalette::Window, QColor(32, 32, 36));
  setPalette(p);
}

void FrameView::setImage(const QImage& image) {
  const bool resized = image.size() != m_image.size();
  m_image = image;
  if (resized || !m_fitted) fitToWindow();
  update();
}

void FrameView::fitToWindow() {
  if (m_image.isNull() || width() <= 0 || height() <= 0) return;
  m_zoom = std::min(double(width()) / m_image.width(), double(height()) / m_image.height());
  m_offset = QPointF((width() - m_image.width() * m_zoom) / 2, (height() - m_image.height() * m_zoom) / 2);
  m_fitted = true;
  update();
}

QPointF FrameView::toImage(QPointF p) const { return (p - m_offset) / m_zoom; }
QPointF FrameView::toWidget(QPointF p) const { return p * m_zoom + m_offset; }

void FrameView::paintEvent(QPaintEvent*) {
  QPainter painter(this);
  if (m_image.isNull()) {
    painter.setPen(QColor(180, 180, 190));
    painter.drawText(rect(), Qt::AlignCenter, tr("Open a video or frame folder (File ▸ Open, or drop it here)"));
    return;
  }
  painter.setRenderHint(QPainter::SmoothPixmapTransform, m_zoom < 1.0);
  painter.drawImage(QRectF(m_offset, QSizeF(m_image.width() * m_zoom, m_image.height() * m_zoom)), m_image);
  painter.setRenderHint(QPainter::Antialiasing, true);
  // Polygon in progress.
  if (!m_polygon.empty()) {
    painter.setPen(QPen(QColor(255, 255, 255), 1.5, Qt::DashLine));
    QPainterPath path(toWidget(m_polygon[0]));
    for (size_t i = 1; i < m_polygon.size(); ++i) path.lineTo(toWidget(m_polygon[i]));
    path.lineTo(toWidget(toImage(m_cursor)));
    painter.drawPath(path);
  }
  // Best matches of the similarity view.
  painter.setPen(QPen(QColor(255, 255, 255), 2));
  for (size_t i = 0; i < m_markers.size(); ++i) {
    const QPointF c = toWidget(m_markers[i]);
    const double r = i == 0 ? 9 : 6;
    painter.drawLine(c - QPointF(r, 0), c + QPointF(r, 0));
    painter.drawLine(c - QPointF(0, r), c + QPointF(0, r));
    painter.drawText(c + QPointF(r + 2, -r), QString::number(i + 1));
  }
  // Click tool points.
  for (const auto& [p, positive] : m_clicks) {
    painter.setPen(QPen(QColor(255, 255, 255), 1.5));
    painter.setBrush(positive ? QColor(40, 200, 60) : QColor(220, 40, 40));
    painter.drawEllipse(toWidget(p), 5.0, 5.0);
  }
  painter.setBrush(Qt::NoBrush);
  // Brush cursor.
  if ((m_tool == Tool::Brush || m_tool == Tool::Eraser) && underMouse()) {
    painter.setPen(QPen(m_tool == Tool::Eraser ? QColor(255, 120, 120) : QColor(255, 255, 255), 1));
    painter.setBrush(Qt::NoBrush);
    painter.drawEllipse(m_cursor, m_radius * m_zoom, m_radius * m_zoom);
  }
}

void FrameView::mousePressEvent(QMouseEvent* e) {
  m_cursor = e->position();
  if (e->button() == Qt::MiddleButton || e->button() == Qt::RightButton) {
    m_panning = true;
    m_panStart = e->position();
    m_offsetStart = m_offset;
    return;
  }
  if (e->button() != Qt::LeftButton || m_image.isNull()) return;
  const QPointF p = toImage(e->position());
  switch (m_tool) {
    case Tool::Brush:
    case Tool::Eraser:
      m_painting = true;
      m_stroke = {p};
      break;
    case Tool::Polygon:
      m_polygon.push_back(p);
      break;
    case Tool::Fill:
    case Tool::Inspect:
      Q_EMIT clicked(p);
      break;
    case Tool::Click:
      Q_EMIT pointClicked(p, !(e->modifiers() & Qt::ShiftModifier));
      break;
  }
  update();
}

void FrameView::mouseMoveEvent(QMouseEvent* e) {
  m_cursor = e->position();
  if (m_panning) {
    m_offset = m_offsetStart + (e->position() - m_panStart);
  } else if (m_painting) {
    m_stroke.push_back(toImage(e->position()));
  }
  update();
}

void FrameView::mouseReleaseEvent(QMouseEvent* e) {
  if (m_panning && (e->button() == Qt::MiddleButton || e->button() == Qt::RightButton)) {
    m_panning = false;
    const QPointF moved = e->position() - m_panStart;
    if (m_tool == Tool::Click && e->button() == Qt::RightButton && !m_image.isNull() &&
        std::abs(moved.x()) + std::abs(moved.y()) < 4) {
      m_offset = m_offsetStart;
      Q_EMIT pointClicked(toImage(e->position()), false);
    }
    return;
  }
  if (m_painting && e->button() == Qt::LeftButton) {
    m_painting = false;
    auto stroke = std::move(m_stroke);
    m_stroke.clear();
    Q_EMIT strokeFinished(stroke);
  }
}

void FrameView::mouseDoubleClickEvent(QMouseEvent* e) {
  if (m_tool == Tool::Polygon && e->button() == Qt::LeftButton && m_polygon.size() >= 3) {
    auto poly = std::move(m_polygon);
    m_polygon.clear();
    Q_EMIT polygonFinished(poly);
    update();
  }
}

void FrameView::keyPressEvent(QKeyEvent* e) {
  if (m_tool == Tool::Polygon && (e->key() == Qt::Key_Return || e->key() == Qt::Key_Enter) && m_polygon.size() >= 3) {
    auto poly = std::move(m_polygon);
    m_polygon.clear();
    Q_EMIT polygonFinished(poly);
    update();
    return;
  }
  if (e->key() == Qt::Key_Escape && !m_polygon.empty()) {
    m_polygon.clear();
    update();
    return;
  }
  QWidget::keyPressEvent(e);
}

void FrameView::wheelEvent(QWheelEvent* e) {
  if (m_image.isNull()) return;
  const double factor = std::pow(1.0015, e->angleDelta().y());
  const double zoom = std::clamp(m_zoom * factor, 0.05, 40.0);
  const QPointF anchor = toImage(e->position());
  m_zoom = zoom;
  m_offset = e->position() - anchor * m_zoom;  // the pixel under the cursor stays put
  update();
}

void FrameView::resizeEvent(QResizeEvent*) { fitToWindow(); }

}  // namespace corrtrack::ui
