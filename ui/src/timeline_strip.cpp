// Timeline strip: frame states as coloured columns, the current frame marked, click to seek.
#include "corrtrack/ui/timeline_strip.h"

#include <QMouseEvent>
#include <QPainter>

#include <algorithm>
#include <cmath>

namespace corrtrack::ui {

namespace {
// Of the frames drawn in one column, the most telling state wins (corrected > annotated > propagated).
int rank(Session::FrameState s) {
  switch (s) {
    case Session::FrameState::Corrected: return 3;
    case Session::FrameState::Annotated: return 2;
    case Session::FrameState::Propagated: return 1;
    default: return 0;
  }
}
}  // namespace

TimelineStrip::TimelineStrip(QWidget* parent) : QWidget(parent) {
  setFixedHeight(14);
  setMinimumWidth(200);
  setCursor(Qt::PointingHandCursor);
  setToolTip(tr("Frames: amber = annotated, red = corrected (anchors); blue = propagated; dark = no mask. "
                "Click to go to a frame."));
}

QColor TimelineStrip::colour(Session::FrameState s) {
  switch (s) {
    case Session::FrameState::Corrected: return QColor(230, 70, 70);
    case Session::FrameState::Annotated: return QColor(245, 180, 40);
    case Session::FrameState::Propagated: return QColor(70, 130, 220);
    default: return QColor(55, 55, 62);
  }
}

void TimelineStrip::setStates(std::vector<Session::FrameState> states) {
  m_states = std::move(states);
  update();
}

void TimelineStrip::setState(int64_t k, Session::FrameState s) {
  if (k < 0 || k >= int64_t(m_states.size()) || m_states[size_t(k)] == s) return;
  m_states[size_t(k)] = s;
  update();
}

void TimelineStrip::setCurrent(int64_t k) {
  m_current = k;
  update();
}

int64_t TimelineStrip::frameAt(double x) const {
  if (m_states.empty() || width() <= 0) return 0;
  const int64_t n = int64_t(m_states.size());
  return std::clamp<int64_t>(int64_t(std::floor(x / width() * double(n))), 0, n - 1);
}

void TimelineStrip::paintEvent(QPaintEvent*) {
  QPainter p(this);
  p.fillRect(rect(), colour(Session::FrameState::None));
  const int64_t n = int64_t(m_states.size());
  if (n == 0) return;
  const int w = width();
  // One pass per pixel column: the frames [first, last] that fall in it.
  for (int x = 0; x < w; ++x) {
    const int64_t first = int64_t(double(x) / w * n), last = std::max(first, int64_t(double(x + 1) / w * n) - 1);
    int best = 0;
    Session::FrameState shown = Session::FrameState::None;
    for (int64_t k = first; k <= std::min(last, n - 1); ++k) {
      if (rank(m_states[size_t(k)]) > best) {
        best = rank(m_states[size_t(k)]);
        shown = m_states[size_t(k)];
      }
    }
    if (best > 0) p.fillRect(x, 2, 1, height() - 4, colour(shown));
  }
  const double cx = (double(m_current) + 0.5) / double(n) * w;
  p.setPen(QPen(Qt::white, 2));
  p.drawLine(QPointF(cx, 0), QPointF(cx, height()));
}

void TimelineStrip::mousePressEvent(QMouseEvent* e) {
  if (e->button() == Qt::LeftButton && !m_states.empty()) Q_EMIT frameChosen(frameAt(e->position().x()));
}

void TimelineStrip::mouseMoveEvent(QMouseEvent* e) {
  if ((e->buttons() & Qt::LeftButton) && !m_states.empty()) Q_EMIT frameChosen(frameAt(e->position().x()));
}

}  // namespace corrtrack::ui
