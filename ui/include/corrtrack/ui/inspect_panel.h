// The "Inspect" dock: the other frame of a similarity query and its view.
#pragma once

#include "corrtrack/ui/frame_view.h"

#include <QWidget>

class QSpinBox;

namespace corrtrack::ui {

class InspectPanel : public QWidget {
  Q_OBJECT
 public:
  explicit InspectPanel(QWidget* parent = nullptr);
  void setFrameCount(int64_t frames);      // no signal is emitted
  void setOtherFrame(int64_t k);           // no signal is emitted
  FrameView& otherView() { return *m_view; }

 Q_SIGNALS:
  void otherFrameChosen(qint64 k);

 private:
  QSpinBox* m_other = nullptr;
  FrameView* m_view = nullptr;
};

}  // namespace corrtrack::ui
