// The "Objects and tools" dock.
#include "corrtrack/ui/tools_panel.h"

#include <QButtonGroup>
#include <QComboBox>
#include <QFormLayout>
#include <QHBoxLayout>
#include <QLabel>
#include <QListWidget>
#include <QPushButton>
#include <QSlider>
#include <QSignalBlocker>
#include <QSpinBox>
#include <QToolButton>
#include <QVBoxLayout>

namespace corrtrack::ui {

namespace {

QColor objectColour(int id) {
  const auto& p = davis_palette();
  return QColor(p[size_t(id) * 3], p[size_t(id) * 3 + 1], p[size_t(id) * 3 + 2]);
}

}  // namespace

ToolsPanel::ToolsPanel(QWidget* parent) : QWidget(parent) {
  auto* v = new QVBoxLayout(this);
  m_objects = new QListWidget(this);
  m_objects->setMaximumHeight(150);
  v->addWidget(new QLabel(tr("Objects (keys 1–9)"), this));
  v->addWidget(m_objects);
  auto* row = new QHBoxLayout();
  auto* add = new QPushButton(tr("Add object"), this);
  auto* remove = new QPushButton(tr("Remove"), this);
  add->setToolTip(tr("A new object with the next free id and colour"));
  remove->setToolTip(tr("Remove the selected object from every frame"));
  m_objects->setToolTip(tr("Objects; the selected one is what the tools paint (keys 1–9)"));
  row->addWidget(add);
  row->addWidget(remove);
  v->addLayout(row);
  connect(add, &QPushButton::clicked, this, &ToolsPanel::addObjectRequested);
  connect(remove, &QPushButton::clicked, this, &ToolsPanel::removeObjectRequested);
  connect(m_objects, &QListWidget::currentRowChanged, this, [this](int r) { if (r >= 0) Q_EMIT objectChosen(r); });

  m_tools = new QButtonGroup(this);
  struct ToolButton {
    const char* name;
    Tool tool;
    const char* tip;
  };
  const ToolButton kTools[] = {
      {"Click (C)", Tool::Click, "Click to segment: left click adds to the object, right click (or Shift+click) removes; "
                                 "each click refines the mask (OpenCV GrabCut seeded from the clicks)"},
      {"Brush (B)", Tool::Brush, "Paint the selected object"},
      {"Eraser (E)", Tool::Eraser, "Erase to background"},
      {"Polygon (P)", Tool::Polygon, "Click the corners; double-click or Enter fills the polygon, Esc drops it"},
      {"Fill (F)", Tool::Fill, "Flood-fill the clicked region of equal label with the selected object"},
      {"Inspect (I)", Tool::Inspect, "Show the model's feature similarity of the clicked pixel, here and on the other frame"}};
  auto* grid = new QVBoxLayout();
  auto* line = new QHBoxLayout();
  for (const auto& [name, tool, tip] : kTools) {
    auto* b = new QToolButton(this);
    b->setText(tr(name));
    b->setToolTip(tr(tip));
    b->setCheckable(true);
    b->setToolButtonStyle(Qt::ToolButtonTextOnly);
    m_tools->addButton(b, int(tool));
    line->addWidget(b);
    if (tool == Tool::Eraser) {
      grid->addLayout(line);
      line = new QHBoxLayout();
    }
  }
  grid->addLayout(line);
  v->addLayout(grid);
  m_tools->button(int(Tool::Click))->setChecked(true);
  connect(m_tools, &QButtonGroup::idClicked, this, [this](int i) { Q_EMIT toolChosen(Tool(i)); });

  auto* form = new QFormLayout();
  m_brush = new QSpinBox(this);
  m_brush->setRange(1, 200);
  m_brush->setValue(8);
  connect(m_brush, &QSpinBox::valueChanged, this, &ToolsPanel::brushRadiusChanged);
  m_brush->setToolTip(tr("Brush and eraser radius, image pixels"));
  form->addRow(tr("Brush radius"), m_brush);
  m_overlay = new QComboBox(this);
  m_overlay->addItems({tr("Colour blend"), tr("Contour only"), tr("Fade background"), tr("Mask only")});
  connect(m_overlay, &QComboBox::currentIndexChanged, this, &ToolsPanel::overlayChanged);
  m_overlay->setToolTip(tr("How masks are drawn over the frame"));
  form->addRow(tr("Overlay"), m_overlay);
  m_opacity = new QSlider(Qt::Horizontal, this);
  m_opacity->setRange(0, 100);
  m_opacity->setValue(50);
  connect(m_opacity, &QSlider::valueChanged, this, &ToolsPanel::overlayChanged);
  m_opacity->setToolTip(tr("Opacity of the mask overlay"));
  form->addRow(tr("Opacity"), m_opacity);
  m_view = new QComboBox(this);
  m_view->addItems({tr("Masks"), tr("Similarity"), tr("Feature PCA")});
  connect(m_view, &QComboBox::currentIndexChanged, this, [this](int i) { Q_EMIT viewModeChosen(ViewMode(i)); });
  m_view->setToolTip(tr("What the canvas shows: masks, the feature similarity of a clicked pixel, or the features' PCA colours"));
  form->addRow(tr("View"), m_view);
  v->addLayout(form);
  auto* clear = new QPushButton(tr("Clear this frame"), this);
  clear->setToolTip(tr("Erase every object on this frame (undoable)"));
  connect(clear, &QPushButton::clicked, this, &ToolsPanel::clearFrameRequested);
  v->addWidget(clear);
  v->addStretch(1);
}

void ToolsPanel::setObjects(const std::vector<int>& ids, int current) {
  const QSignalBlocker quiet(m_objects);
  m_objects->clear();
  for (size_t i = 0; i < ids.size(); ++i) {
    QPixmap swatch(14, 14);
    swatch.fill(objectColour(ids[i]));
    m_objects->addItem(new QListWidgetItem(QIcon(swatch), tr("object %1").arg(ids[i])));
    if (ids[i] == current) m_objects->setCurrentRow(int(i));
  }
}

void ToolsPanel::setViewMode(ViewMode mode) {
  if (m_view->currentIndex() == int(mode)) return;
  const QSignalBlocker quiet(m_view);
  m_view->setCurrentIndex(int(mode));
}

void ToolsPanel::chooseTool(Tool tool) { m_tools->button(int(tool))->click(); }

OverlayMode ToolsPanel::overlayMode() const {
  switch (m_overlay->currentIndex()) {
    case 1: return OverlayMode::Contour;
    case 2: return OverlayMode::FadeBackground;
    case 3: return OverlayMode::MaskOnly;
    default: return OverlayMode::Blend;
  }
}

float ToolsPanel::opacity() const { return float(m_opacity->value()) / 100.0f; }

}  // namespace corrtrack::ui
