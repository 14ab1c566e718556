// The "Inspect" dock.
#include "corrtrack/ui/inspect_panel.h"

#include <QFormLayout>
#include <QLabel>
#include <QSignalBlocker>
#include <QSpinBox>
#include <QVBoxLayout>

namespace corrtrack::ui {

InspectPanel::InspectPanel(QWidget* parent) : QWidget(parent) {
  auto* v = new QVBoxLayout(this);
  auto* form = new QFormLayout();
  m_other = new QSpinBox(this);
  m_other->setRange(0, 0);
  m_other->setToolTip(tr("The frame whose similarity to the clicked pixel is shown here"));
  form->addRow(tr("Other frame"), m_other);
  v->addLayout(form);
  auto* help = new QLabel(tr("Inspect tool (I): click a pixel of the frame; its feature similarity is shown there and here on the other frame, with the best matches numbered."), this);
  help->setWordWrap(true);
  v->addWidget(help);
  m_view = new FrameView(this);
  m_view->setTool(Tool::Inspect);
  m_view->setPlaceholder(tr("Inspect a pixel (Inspect tool, I) to see its feature similarity on this other frame."));
  m_view->setMinimumSize(320, 200);
  v->addWidget(m_view, 1);
  connect(m_other, &QSpinBox::valueChanged, this, [this](int k) { Q_EMIT otherFrameChosen(k); });
}

void InspectPanel::setFrameCount(int64_t frames) {
  const QSignalBlocker quiet(m_other);
  m_other->setRange(0, int(std::max<int64_t>(0, frames - 1)));
}

void InspectPanel::setOtherFrame(int64_t k) {
  if (m_other->value() == int(k)) return;
  const QSignalBlocker quiet(m_other);
  m_other->setValue(int(k));
}

}  // namespace corrtrack::ui
