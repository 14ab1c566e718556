// Frame canvas: zoom, pan, brush cursor, stroke / polygon / click input in image coordinates.
#include "corrtrack/ui/frame_view.h"

#include "corrtrack/drawing.h"

#include <QFontMetricsF>
#include <QKeyEvent>
#include <QLinearGradient>
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
    painter.drawText(rect().adjusted(12, 0, -12, 0), Qt::AlignCenter | Qt::TextWordWrap,
                     m_placeholder.isEmpty() ? tr("Open a video or frame folder (File ▸ Open, or drop it here)") : m_placeholder);
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
  // Best matches of the similarity view: crosses, then their numbers where they overlap nothing.
  painter.setPen(QPen(QColor(255, 255, 255), 2));
  std::vector<QRectF> taken;
  for (size_t i = 0; i < m_markers.size(); ++i) {
    const QPointF c = toWidget(m_markers[i]);
    const double r = i == 0 ? 9 : 6;
    painter.drawLine(c - QPointF(r, 0), c + QPointF(r, 0));
    painter.drawLine(c - QPointF(0, r), c + QPointF(0, r));
    taken.emplace_back(c - QPointF(r, r), c + QPointF(r, r));
  }
  m_labels.clear();
  const QFontMetricsF fm(painter.font());
  for (size_t i = 0; i < m_markers.size(); ++i) {
    const QPointF c = toWidget(m_markers[i]);
    const double r = i == 0 ? 9 : 6;
    const QSizeF size(fm.horizontalAdvance(QString::number(i + 1)) + 2, fm.height());
    // Candidates: right, left, above, below, then further out on the right and left.
    const QPointF corners[] = {c + QPointF(r + 2, -size.height() / 2), c + QPointF(-r - 2 - size.width(), -size.height() / 2),
                               c + QPointF(-size.width() / 2, -r - 2 - size.height()), c + QPointF(-size.width() / 2, r + 2),
                               c + QPointF(r + 2, -r - size.height()), c + QPointF(-r - 2 - size.width(), r)};
    QRectF chosen(corners[0], size);
    for (const QPointF& at : corners) {
      const QRectF box(at, size);
      bool free = true;
      for (size_t j = 0; j < taken.size() && free; ++j) free = !box.intersects(taken[j]) || j == i;
      if (free) {
        chosen = box;
        break;
      }
    }
    taken.push_back(chosen);
    m_labels.push_back(chosen);
    painter.drawText(chosen, Qt::AlignCenter, QString::number(i + 1));
  }
  // Colour bar of the similarity view.
  if (colourBarShown()) {
    const QRectF bar(width() - 26, 24, 12, std::max(60.0, height() * 0.4));
    QLinearGradient g(bar.bottomLeft(), bar.topLeft());
    for (int i = 0; i <= 10; ++i) {
      const Rgb col = colormap_viridis(i / 10.0);
      g.setColorAt(i / 10.0, QColor(col.r, col.g, col.b));
    }
    painter.fillRect(bar, g);
    painter.setPen(QPen(QColor(230, 230, 230), 1));
    painter.drawRect(bar);
    const QString hi = QString::number(m_barHi, 'f', 2), lo = QString::number(m_barLo, 'f', 2);
    painter.drawText(QRectF(bar.left() - 64, bar.top() - 2, 60, 16), Qt::AlignRight | Qt::AlignVCenter, hi);
    painter.drawText(QRectF(bar.left() - 64, bar.bottom() - 14, 60, 16), Qt::AlignRight | Qt::AlignVCenter, lo);
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
