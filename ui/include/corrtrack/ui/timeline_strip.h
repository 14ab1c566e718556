// The timeline strip under the frame: one column per frame (or per group of frames when the
// video has more frames than the strip has pixels) coloured by what its mask is — nothing,
// propagated, annotated or corrected (Session::FrameState) — with the current frame marked.
// Clicking or dragging on it seeks. It holds a copy of the states; the window updates it.
#pragma once

#include "corrtrack/ui/session.h"

#include <QWidget>

#include <vector>

namespace corrtrack::ui {

class TimelineStrip : public QWidget {
  Q_OBJECT
 public:
  explicit TimelineStrip(QWidget* parent = nullptr);
  void setStates(std::vector<Session::FrameState> states);
  void setState(int64_t k, Session::FrameState s);
  void setCurrent(int64_t k);
  const std::vector<Session::FrameState>& states() const { return m_states; }
  // The colour of each state (the legend in the tooltip uses the same).
  static QColor colour(Session::FrameState s);
  // The frame under widget x (clamped to the video).
  int64_t frameAt(double x) const;

 Q_SIGNALS:
  void frameChosen(qint64 k);

 protected:
  void paintEvent(QPaintEvent*) override;
  void mousePressEvent(QMouseEvent*) override;
  void mouseMoveEvent(QMouseEvent*) override;

 private:
  std::vector<Session::FrameState> m_states;
  int64_t m_current = 0;
};

}  // namespace corrtrack::ui
