// CorrTrack Studio main window.
#include "corrtrack/ui/main_window.h"

#include "corrtrack/video_methods.h"


#include <QAction>
#include <QApplication>
#include <QButtonGroup>
#include <QChart>
#include <QChartView>
#include <QCloseEvent>
#include <QComboBox>
#include <QDir>
#include <QDockWidget>
#include <QDoubleSpinBox>
#include <QDragEnterEvent>
#include <QDropEvent>
#include <QFileDialog>
#include <QFileInfo>
#include <QFormLayout>
#include <QHBoxLayout>
#include <QKeyEvent>
#include <QLabel>
#include <QLineEdit>
#include <QLineSeries>
#include <QListWidget>
#include <QMenuBar>
#include <QMimeData>
#include <QPainter>
#include <QProgressBar>
#include <QPushButton>
#include <QScrollArea>
#include <QSlider>
#include <QSpinBox>
#include <QStatusBar>
#include <QTimer>
#include <QToolButton>
#include <QVBoxLayout>
#include <QValueAxis>

#include <filesystem>

namespace corrtrack::ui {

namespace {

QImage toQImage(const Image& img) {
  QImage q(img.width, img.height, QImage::Format_RGB888);
  for (int y = 0; y < img.height; ++y) std::memcpy(q.scanLine(y), img.px(0, y), size_t(img.width) * 3);
  return q;
}

QColor objectColour(int id) {
  const auto& p = davis_palette();
  return QColor(p[size_t(id) * 3], p[size_t(id) * 3 + 1], p[size_t(id) * 3 + 2]);
}

OverlayMode overlayMode(int index) {
  switch (index) {
    case 1: return OverlayMode::Contour;
    case 2: return OverlayMode::FadeBackground;
    case 3: return OverlayMode::MaskOnly;
    default: return OverlayMode::Blend;
  }
}

}  // namespace

MainWindow::MainWindow(QWidget* parent) : QMainWindow(parent) {
  setWindowTitle("CorrTrack Studio");
  setAcceptDrops(true);
  buildUi();
  buildMenus();
  connect(&m_session, &Session::maskChanged, this, [this](qint64 k) {
    if (k == m_current || k == m_other) refresh();
    refreshTimeline();
  });
  connect(&m_session, &Session::objectsChanged, this, &MainWindow::refreshObjects);
  connect(&m_session, &Session::undoStateChanged, this, [this] {
    m_undo->setEnabled(m_session.canUndo());
    m_redo->setEnabled(m_session.canRedo());
  });
  connect(&m_propagation, &PropagationJob::maskReady, this, [this](qint64 k, std::shared_ptr<const Image> mask) {
    m_session.setPropagated(k, *mask);
  });
  connect(&m_propagation, &PropagationJob::progress, this, [this](qint64 done, qint64 total, double fps, double eta) {
    m_progress->setMaximum(int(std::max<qint64>(1, total)));
    m_progress->setValue(int(done));
    m_rate->setText(QString("%1 fps · ETA %2 s").arg(fps, 0, 'f', 2).arg(eta, 0, 'f', 0));
  });
  connect(&m_propagation, &PropagationJob::finished, this, &MainWindow::onPropagationFinished);
  connect(&m_features, &FeatureJob::ready, this, &MainWindow::onFeaturesReady);
  connect(&m_features, &FeatureJob::failed, this, [this](const QString& e) { showMessage(e, true); });
  auto* memTimer = new QTimer(this);
  connect(memTimer, &QTimer::timeout, this, [this] {
    m_memory->setText(QString("memory: %1 MB").arg(double(current_rss_bytes()) / (1 << 20), 0, 'f', 0));
  });
  memTimer->start(1000);
  resize(1400, 860);
  refresh();
}

MainWindow::~MainWindow() {
  m_propagation.cancel();
  m_propagation.wait();
  m_features.wait();
}

// ---------------------------------------------------------------------------------------------
// Layout
// ---------------------------------------------------------------------------------------------

void MainWindow::buildUi() {
  auto* central = new QWidget(this);
  auto* v = new QVBoxLayout(central);
  m_message = new QLabel(central);
  m_message->setWordWrap(true);
  m_message->hide();
  v->addWidget(m_message);
  m_view = new FrameView(central);
  v->addWidget(m_view, 1);
  auto* bar = new QHBoxLayout();
  m_play = new QToolButton(central);
  m_play->setText("▶");
  m_play->setCheckable(true);
  m_timeline = new QSlider(Qt::Horizontal, central);
  m_timeline->setRange(0, 0);
  m_frameLabel = new QLabel("–", central);
  m_anchorLabel = new QLabel(central);
  m_timeline->setMinimumWidth(200);
  bar->addWidget(m_play);
  bar->addWidget(m_timeline, 1);
  bar->addWidget(m_frameLabel);
  statusBar()->addPermanentWidget(m_anchorLabel);
  v->addLayout(bar);
  setCentralWidget(central);
  m_playTimer = new QTimer(this);
  connect(m_playTimer, &QTimer::timeout, this, [this] {
    if (m_current + 1 >= m_session.frameCount()) {
      m_play->setChecked(false);
      return;
    }
    setCurrentFrame(m_current + 1);
  });
  connect(m_play, &QToolButton::toggled, this, [this](bool on) {
    m_play->setText(on ? "⏸" : "▶");
    if (on) m_playTimer->start(int(1000.0 / std::max(1.0, m_session.fps()))); else m_playTimer->stop();
  });
  connect(m_timeline, &QSlider::valueChanged, this, [this](int k) { setCurrentFrame(k); });
  connect(m_view, &FrameView::strokeFinished, this, [this](std::vector<QPointF> pts) {
    if (!m_session.isOpen()) return;
    const bool erase = m_view->tool() == Tool::Eraser;
    m_session.paintStroke(m_current, pts, m_view->brushRadius(), erase ? 0 : uint8_t(m_object));
  });
  connect(m_view, &FrameView::polygonFinished, this, [this](std::vector<QPointF> pts) {
    if (m_session.isOpen()) m_session.fillPolygon(m_current, pts, uint8_t(m_object));
  });
  connect(m_view, &FrameView::clicked, this, [this](QPointF p) {
    if (!m_session.isOpen()) return;
    if (m_view->tool() == Tool::Fill) m_session.floodFill(m_current, p, uint8_t(m_object));
    if (m_view->tool() == Tool::Inspect) inspectAt(p);
  });

  auto dock = [this](const QString& title, QWidget* w, Qt::DockWidgetArea area) {
    auto* d = new QDockWidget(title, this);
    d->setObjectName(title);
    auto* scroll = new QScrollArea(d);
    scroll->setWidget(w);
    scroll->setWidgetResizable(true);
    d->setWidget(scroll);
    addDockWidget(area, d);
    return d;
  };
  auto* tools = dock(tr("Objects and tools"), buildToolsPanel(), Qt::RightDockWidgetArea);
  dock(tr("Model and propagation"), buildModelPanel(), Qt::RightDockWidgetArea);
  auto* inspect = dock(tr("Inspect"), buildInspectPanel(), Qt::LeftDockWidgetArea);
  auto* training = dock(tr("Training"), buildTrainingPanel(), Qt::LeftDockWidgetArea);
  tabifyDockWidget(inspect, training);
  inspect->raise();
  resizeDocks({inspect, tools}, {340, 300}, Qt::Horizontal);
}

QWidget* MainWindow::buildToolsPanel() {
  auto* w = new QWidget(this);
  auto* v = new QVBoxLayout(w);
  m_objects = new QListWidget(w);
  m_objects->setMaximumHeight(150);
  v->addWidget(new QLabel(tr("Objects (keys 1–9)"), w));
  v->addWidget(m_objects);
  auto* row = new QHBoxLayout();
  auto* add = new QPushButton(tr("Add object"), w);
  auto* remove = new QPushButton(tr("Remove"), w);
  row->addWidget(add);
  row->addWidget(remove);
  v->addLayout(row);
  connect(add, &QPushButton::clicked, this, [this] {
    try {
      selectObject(m_session.addObject());
    } catch (const std::exception& e) {
      showMessage(e.what(), true);
    }
  });
  connect(remove, &QPushButton::clicked, this, [this] {
    if (m_session.objects().size() > 1) m_session.removeObject(m_object);
    if (!m_session.objects().empty()) selectObject(m_session.objects().front());
  });
  connect(m_objects, &QListWidget::currentRowChanged, this, [this](int row) {
    if (row >= 0 && row < int(m_session.objects().size())) m_object = m_session.objects()[size_t(row)];
  });

  m_tools = new QButtonGroup(w);
  auto* tools = new QHBoxLayout();
  const std::pair<const char*, Tool> kTools[] = {{"Brush (B)", Tool::Brush}, {"Eraser (E)", Tool::Eraser}, {"Polygon (P)", Tool::Polygon},
                                                 {"Fill (F)", Tool::Fill}, {"Inspect (I)", Tool::Inspect}};
  int id = 0;
  auto* grid = new QVBoxLayout();
  for (const auto& [name, tool] : kTools) {
    auto* b = new QToolButton(w);
    b->setText(tr(name));
    b->setCheckable(true);
    b->setToolButtonStyle(Qt::ToolButtonTextOnly);
    m_tools->addButton(b, id++);
    tools->addWidget(b);
    if (id == 3) {
      grid->addLayout(tools);
      tools = new QHBoxLayout();
    }
  }
  grid->addLayout(tools);
  v->addLayout(grid);
  m_tools->button(0)->setChecked(true);
  connect(m_tools, &QButtonGroup::idClicked, this, [this](int i) {
    m_view->setTool(Tool(i));
    if (Tool(i) == Tool::Inspect && m_viewMode == ViewMode::Masks) setViewMode(ViewMode::Similarity);
  });
  auto* form = new QFormLayout();
  m_brush = new QSpinBox(w);
  m_brush->setRange(1, 200);
  m_brush->setValue(8);
  connect(m_brush, &QSpinBox::valueChanged, this, [this](int r) { m_view->setBrushRadius(r); });
  form->addRow(tr("Brush radius"), m_brush);
  m_overlay = new QComboBox(w);
  m_overlay->addItems({tr("Colour blend"), tr("Contour only"), tr("Fade background"), tr("Mask only")});
  connect(m_overlay, &QComboBox::currentIndexChanged, this, [this] { refresh(); });
  form->addRow(tr("Overlay"), m_overlay);
  m_opacity = new QSlider(Qt::Horizontal, w);
  m_opacity->setRange(0, 100);
  m_opacity->setValue(50);
  connect(m_opacity, &QSlider::valueChanged, this, [this] { refresh(); });
  form->addRow(tr("Opacity"), m_opacity);
  m_viewCombo = new QComboBox(w);
  m_viewCombo->addItems({tr("Masks"), tr("Similarity"), tr("Feature PCA")});
  connect(m_viewCombo, &QComboBox::currentIndexChanged, this, [this](int i) { setViewMode(ViewMode(i)); });
  form->addRow(tr("View"), m_viewCombo);
  v->addLayout(form);
  auto* clear = new QPushButton(tr("Clear this frame"), w);
  connect(clear, &QPushButton::clicked, this, [this] {
    if (m_session.isOpen()) m_session.clearFrame(m_current);
  });
  v->addWidget(clear);
  v->addStretch(1);
  return w;
}

QWidget* MainWindow::buildModelPanel() {
  auto* w = new QWidget(this);
  auto* v = new QVBoxLayout(w);
  auto* form = new QFormLayout();
  m_model = new QComboBox(w);
  m_model->addItems({tr("default (bundled MAST)"), "pixels", "random", tr("checkpoint…")});
  form->addRow(tr("Features"), m_model);
  m_modelInfo = new QLabel(w);
  m_modelInfo->setWordWrap(true);
  form->addRow(m_modelInfo);
  const PropagationConfig defaults;
  m_scale = new QDoubleSpinBox(w);
  m_scale->setRange(0.1, 2.0);
  m_scale->setSingleStep(0.05);
  m_scale->setValue(0.5);
  form->addRow(tr("Internal resolution"), m_scale);
  m_context = new QSpinBox(w);
  m_context->setRange(1, 100);
  m_context->setValue(defaults.context);
  form->addRow(tr("Context frames"), m_context);
  m_topk = new QSpinBox(w);
  m_topk->setRange(1, 1000);
  m_topk->setValue(defaults.topk);
  form->addRow(tr("Top-k"), m_topk);
  m_radius = new QDoubleSpinBox(w);
  m_radius->setRange(0, 100);
  m_radius->setValue(defaults.radius);
  form->addRow(tr("Radius (cells)"), m_radius);
  m_temperature = new QDoubleSpinBox(w);
  m_temperature->setDecimals(3);
  m_temperature->setRange(0.001, 10);
  m_temperature->setSingleStep(0.01);
  m_temperature->setValue(defaults.temperature);
  form->addRow(tr("Temperature"), m_temperature);
  m_mode = new QComboBox(w);
  m_mode->addItems({"crw", "mast"});
  form->addRow(tr("Mode"), m_mode);
  m_memory = new QLabel(w);
  form->addRow(m_memory);
  v->addLayout(form);
  connect(m_model, &QComboBox::activated, this, [this](int i) {
    if (i == 3) {
      const QString f = QFileDialog::getOpenFileName(this, tr("Checkpoint"), QString(), tr("Checkpoints (*.ckpt)"));
      if (f.isEmpty() || !useCheckpoint(f)) m_model->setCurrentIndex(0);
    } else {
      useBaseline(i == 0 ? "default" : m_model->itemText(i));
    }
  });
  auto* row = new QHBoxLayout();
  m_backward = new QPushButton(tr("◀ Propagate"), w);
  m_forward = new QPushButton(tr("Propagate ▶"), w);
  row->addWidget(m_backward);
  row->addWidget(m_forward);
  v->addLayout(row);
  m_progress = new QProgressBar(w);
  m_progress->setValue(0);
  m_rate = new QLabel(w);
  m_cancel = new QPushButton(tr("Cancel"), w);
  m_cancel->setEnabled(false);
  v->addWidget(m_progress);
  v->addWidget(m_rate);
  v->addWidget(m_cancel);
  connect(m_forward, &QPushButton::clicked, this, [this] { propagate(true); });
  connect(m_backward, &QPushButton::clicked, this, [this] { propagate(false); });
  connect(m_cancel, &QPushButton::clicked, this, &MainWindow::cancelPropagation);
  v->addStretch(1);
  useBaseline("default");
  return w;
}

QWidget* MainWindow::buildInspectPanel() {
  auto* w = new QWidget(this);
  auto* v = new QVBoxLayout(w);
  auto* form = new QFormLayout();
  m_otherSpin = new QSpinBox(w);
  m_otherSpin->setRange(0, 0);
  form->addRow(tr("Other frame"), m_otherSpin);
  v->addLayout(form);
  auto* help = new QLabel(tr("Inspect tool (I): click a pixel of the frame; its feature similarity is shown there and here on the other frame, with the best matches numbered."), w);
  help->setWordWrap(true);
  v->addWidget(help);
  m_otherView = new FrameView(w);
  m_otherView->setTool(Tool::Inspect);
  m_otherView->setMinimumSize(320, 200);
  v->addWidget(m_otherView, 1);
  connect(m_otherSpin, &QSpinBox::valueChanged, this, [this](int k) { setOtherFrame(k); });
  return w;
}

QWidget* MainWindow::buildTrainingPanel() {
  auto* w = new QWidget(this);
  auto* v = new QVBoxLayout(w);
  auto* form = new QFormLayout();
  m_trainMethod = new QComboBox(w);
  for (const auto& name : video_method_names()) m_trainMethod->addItem(QString::fromStdString(name));
  form->addRow(tr("Method"), m_trainMethod);
  m_trainData = new QLineEdit(w);
  m_trainData->setPlaceholderText(tr("clip cache, videos or frame folders (default: the open video)"));
  form->addRow(tr("Data"), m_trainData);
  m_trainOut = new QLineEdit(QDir::home().filePath("corrtrack-runs/run"), w);
  form->addRow(tr("Run folder"), m_trainOut);
  m_trainSteps = new QSpinBox(w);
  m_trainSteps->setRange(1, 10000000);
  m_trainSteps->setValue(500);
  form->addRow(tr("Steps"), m_trainSteps);
  v->addLayout(form);
  auto* row = new QHBoxLayout();
  m_trainStart = new QPushButton(tr("Start training"), w);
  m_trainCancel = new QPushButton(tr("Cancel"), w);
  m_trainUse = new QPushButton(tr("Use this checkpoint"), w);
  m_trainCancel->setEnabled(false);
  m_trainUse->setEnabled(false);
  row->addWidget(m_trainStart);
  row->addWidget(m_trainCancel);
  v->addLayout(row);
  v->addWidget(m_trainUse);
  m_trainStatus = new QLabel(w);
  m_trainStatus->setWordWrap(true);
  v->addWidget(m_trainStatus);
  m_lossSeries = new QLineSeries(w);
  auto* chart = new QChart();
  chart->addSeries(m_lossSeries);
  chart->createDefaultAxes();
  chart->legend()->hide();
  chart->setTitle(tr("training loss"));
  m_lossChart = new QChartView(chart, w);
  m_lossChart->setMinimumHeight(220);
  m_lossChart->setRenderHint(QPainter::Antialiasing);
  v->addWidget(m_lossChart, 1);
  connect(m_trainStart, &QPushButton::clicked, this, &MainWindow::startTraining);
  connect(m_trainCancel, &QPushButton::clicked, &m_training, &TrainingRunner::cancel);
  connect(m_trainUse, &QPushButton::clicked, this, [this] { useCheckpoint(QDir(m_trainOut->text()).filePath("last.ckpt")); });
  connect(&m_training, &TrainingRunner::stderrLine, this, [this](const QString& line) { m_trainStatus->setText(line.section("] ", -1)); });
  connect(&m_training, &TrainingRunner::lossCurve, this, &MainWindow::showLossCurve);
  connect(&m_training, &TrainingRunner::finished, this, [this](bool ok, const QString& message) {
    m_trainStart->setEnabled(true);
    m_trainCancel->setEnabled(false);
    const QString ckpt = QDir(m_trainOut->text()).filePath("last.ckpt");
    m_trainUse->setEnabled(QFileInfo::exists(ckpt));
    m_trainStatus->setText(ok ? tr("finished: %1").arg(ckpt) : tr("%1; the last checkpoint is kept").arg(message));
  });
  return w;
}

void MainWindow::buildMenus() {
  auto* file = menuBar()->addMenu(tr("&File"));
  file->addAction(tr("&Open video…"), QKeySequence::Open, this, [this] {
    const QString f = QFileDialog::getOpenFileName(this, tr("Video"), QString(), tr("Videos (*.mp4 *.mkv *.avi *.webm *.mov *.mpg);;All files (*)"));
    if (!f.isEmpty()) openVideo(f);
  });
  file->addAction(tr("Open frame &folder…"), this, [this] {
    const QString d = QFileDialog::getExistingDirectory(this, tr("Frame folder"));
    if (!d.isEmpty()) openVideo(d);
  });
  file->addAction(tr("Open with &workspace…"), this, [this] {
    const QString f = QFileDialog::getOpenFileName(this, tr("Video"));
    if (f.isEmpty()) return;
    const QString ws = QFileDialog::getExistingDirectory(this, tr("Workspace folder (masks are saved there as you go)"));
    if (!ws.isEmpty()) openVideo(f, ws);
  });
  file->addAction(tr("&Import mask PNG…"), this, [this] {
    const QString f = QFileDialog::getOpenFileName(this, tr("Mask"), QString(), tr("PNG (*.png)"));
    if (!f.isEmpty()) importMask(f);
  });
  file->addSeparator();
  file->addAction(tr("Export palette PNGs…"), this, &MainWindow::exportPngs);
  file->addAction(tr("Export binary masks…"), this, &MainWindow::exportBinary);
  file->addAction(tr("Export overlay video…"), this, &MainWindow::exportVideo);
  file->addSeparator();
  file->addAction(tr("&Quit"), QKeySequence::Quit, this, &QWidget::close);
  auto* edit = menuBar()->addMenu(tr("&Edit"));
  m_undo = edit->addAction(tr("&Undo"), QKeySequence::Undo, this, [this] { m_session.undo(); });
  m_redo = edit->addAction(tr("&Redo"), QKeySequence::Redo, this, [this] { m_session.redo(); });
  m_undo->setEnabled(false);
  m_redo->setEnabled(false);
}

// ---------------------------------------------------------------------------------------------
// Video, frames, objects
// ---------------------------------------------------------------------------------------------

bool MainWindow::openVideo(const QString& path, const QString& workspace) {
  if (m_propagation.running()) {
    showMessage(tr("Cancel the running propagation before opening another video."), true);
    return false;
  }
  try {
    m_session.open(path, workspace);
  } catch (const std::exception& e) {
    showMessage(QString::fromStdString(e.what()), true);
    return false;
  }
  m_pair.reset();
  m_haveQuery = false;
  m_current = -1;
  m_timeline->blockSignals(true);
  m_timeline->setRange(0, int(m_session.frameCount() - 1));
  m_timeline->blockSignals(false);
  m_otherSpin->blockSignals(true);
  m_otherSpin->setRange(0, int(m_session.frameCount() - 1));
  m_otherSpin->blockSignals(false);
  m_other = std::min<int64_t>(10, m_session.frameCount() - 1);
  m_otherSpin->setValue(int(m_other));
  setWindowTitle("CorrTrack Studio — " + QFileInfo(path).fileName());
  showMessage(tr("Opened %1: %2 frames, %3×%4").arg(path).arg(m_session.frameCount()).arg(m_session.width()).arg(m_session.height()));
  refreshObjects();
  setCurrentFrame(0);
  return true;
}

bool MainWindow::importMask(const QString& png) {
  if (!m_session.isOpen()) {
    showMessage(tr("Open a video before importing a mask."), true);
    return false;
  }
  try {
    m_session.importMask(m_current, png);
  } catch (const std::exception& e) {
    showMessage(QString::fromStdString(e.what()), true);
    return false;
  }
  showMessage(tr("Imported %1 on frame %2").arg(png).arg(m_current));
  return true;
}

void MainWindow::setCurrentFrame(int64_t k) {
  if (!m_session.isOpen()) return;
  k = std::clamp<int64_t>(k, 0, m_session.frameCount() - 1);
  if (k == m_current) return;
  m_current = k;
  m_timeline->blockSignals(true);
  m_timeline->setValue(int(k));
  m_timeline->blockSignals(false);
  // A similarity query belongs to the frame it was made on.
  m_haveQuery = false;
  m_simCurrent = torch::Tensor();
  m_simOther = torch::Tensor();
  m_view->setMarkers({});
  m_otherView->setMarkers({});
  if (m_viewMode != ViewMode::Masks) setViewMode(m_viewMode);
  refresh();
}

void MainWindow::setOtherFrame(int64_t k) {
  if (!m_session.isOpen()) return;
  m_other = std::clamp<int64_t>(k, 0, m_session.frameCount() - 1);
  if (m_otherSpin->value() != int(m_other)) {
    m_otherSpin->blockSignals(true);
    m_otherSpin->setValue(int(m_other));
    m_otherSpin->blockSignals(false);
  }
  m_pair.reset();
  if (m_haveQuery) inspectAt(m_query);
  refresh();
}

void MainWindow::selectObject(int id) {
  const auto& objs = m_session.objects();
  auto it = std::find(objs.begin(), objs.end(), id);
  if (it == objs.end()) return;
  m_object = id;
  m_objects->setCurrentRow(int(it - objs.begin()));
}

void MainWindow::refreshObjects() {
  m_objects->blockSignals(true);
  m_objects->clear();
  for (int id : m_session.objects()) {
    QPixmap swatch(14, 14);
    swatch.fill(objectColour(id));
    m_objects->addItem(new QListWidgetItem(QIcon(swatch), tr("object %1").arg(id)));
  }
  m_objects->blockSignals(false);
  const auto& objs = m_session.objects();
  if (std::find(objs.begin(), objs.end(), m_object) == objs.end() && !objs.empty()) m_object = objs.front();
  selectObject(m_object);
}

void MainWindow::refreshTimeline() {
  if (!m_session.isOpen()) return;
  int masked = 0;
  for (int64_t k = 0; k < m_session.frameCount(); ++k) masked += m_session.hasMask(k) ? 1 : 0;
  m_anchorLabel->setText(tr("%1 anchors · %2 frames with masks").arg(m_session.anchors().size()).arg(masked));
}

void MainWindow::refresh() {
  if (!m_session.isOpen() || m_current < 0) {
    m_view->setImage(QImage());
    return;
  }
  try {
    const Image& frame = m_session.frame(m_current);
    Image shown;
    if (m_viewMode == ViewMode::Similarity && m_simCurrent.defined()) {
      shown = heatOverlay(frame, m_simCurrent);
    } else if (m_viewMode == ViewMode::Pca && m_pair && m_pair->frameA == m_current) {
      shown = pcaImage(m_pair->a, frame.width, frame.height);
    } else {
      shown = overlay_render(frame, m_session.mask(m_current), overlayMode(m_overlay->currentIndex()), float(m_opacity->value()) / 100.0f);
    }
    m_view->setImage(toQImage(shown));
    const Image& other = m_session.frame(m_other);
    m_otherView->setImage(toQImage(m_simOther.defined() ? heatOverlay(other, m_simOther) : other));
  } catch (const std::exception& e) {
    showMessage(QString::fromStdString(e.what()), true);
  }
  m_frameLabel->setText(tr("frame %1 / %2%3").arg(m_current).arg(m_session.frameCount() - 1).arg(m_session.isAnchor(m_current) ? tr(" (anchor)") : QString()));
  refreshTimeline();
}

void MainWindow::showMessage(const QString& text, bool error) {
  m_lastMessage = text;
  m_message->setText(text);
  m_message->setStyleSheet(error ? "QLabel { background: #5a1e1e; color: white; padding: 4px; }" : "QLabel { padding: 4px; }");
  m_message->setVisible(error);
  statusBar()->showMessage(text, error ? 0 : 8000);
}

// ---------------------------------------------------------------------------------------------
// Model and propagation
// ---------------------------------------------------------------------------------------------

ModelChoice MainWindow::modelChoice() const {
  ModelChoice c;
  const int i = m_model->currentIndex();
  c.features = i == 1 ? "pixels" : i == 2 ? "random" : "default";
  c.checkpoint = i == 3 ? m_checkpoint : QString();
  c.config.scale = m_scale->value();
  c.config.context = m_context->value();
  c.config.topk = m_topk->value();
  c.config.radius = m_radius->value();
  c.config.temperature = m_temperature->value();
  c.config.mode = m_mode->currentIndex() == 1 ? PropagationMode::Mast : PropagationMode::Crw;
  c.config.roi_gap = m_roiGap;
  return c;
}

bool MainWindow::applyRecommendedSettings(const ModelChoice& choice) {
  PropagationConfig c;
  try {
    c = propagation_config_resolve(PropagationConfig(), {}, model_hints(choice.spec()));
  } catch (const std::exception& e) {
    showMessage(QString::fromStdString(e.what()), true);
    return false;
  }
  m_scale->setValue(c.scale);
  m_context->setValue(c.context);
  m_topk->setValue(c.topk);
  m_radius->setValue(c.radius);
  m_temperature->setValue(c.temperature);
  m_mode->setCurrentIndex(c.mode == PropagationMode::Mast ? 1 : 0);
  m_roiGap = c.roi_gap;
  return true;
}

bool MainWindow::useCheckpoint(const QString& path) {
  try {
    makeFeatures(ModelChoice{"default", path, {}});  // loads it once: a broken file is reported now
    m_modelInfo->setText(describeCheckpoint(path));
  } catch (const std::exception& e) {
    showMessage(QString::fromStdString(e.what()), true);
    return false;
  }
  m_checkpoint = path;
  m_model->setCurrentIndex(3);
  m_model->setItemText(3, QFileInfo(path).fileName());
  applyRecommendedSettings(modelChoice());
  m_pair.reset();
  showMessage(tr("Features: %1").arg(path));
  return true;
}

void MainWindow::useBaseline(const QString& features) {
  m_checkpoint.clear();
  m_model->setItemText(3, tr("checkpoint…"));
  m_model->setCurrentIndex(features == "pixels" ? 1 : features == "random" ? 2 : 0);
  if (features == "default") {
    try {
      m_modelInfo->setText(describeCheckpoint(QString::fromStdString(default_model_path())));
    } catch (const std::exception& e) {
      m_modelInfo->setText(QString::fromStdString(e.what()));
    }
  } else {
    m_modelInfo->setText(features == "pixels" ? tr("Lab colour, parameter-free") : tr("randomly initialised ResNet-18 (res3)"));
  }
  applyRecommendedSettings(modelChoice());
  m_pair.reset();
}

bool MainWindow::propagate(bool forward) {
  if (!m_session.isOpen()) {
    showMessage(tr("Open a video first."), true);
    return false;
  }
  if (m_propagation.running()) {
    showMessage(tr("A propagation is already running."), true);
    return false;
  }
  if (!m_session.isAnchor(m_current)) {
    showMessage(tr("Annotate or correct this frame first: propagation starts from an annotated frame."), true);
    return false;
  }
  const auto [first, last] = m_session.propagationRange(m_current, forward);
  if ((forward && first > last) || (!forward && first < last)) {
    showMessage(tr("Nothing to propagate: the next frame in that direction is an anchor or the end."), true);
    return false;
  }
  Image mask = m_session.mask(m_current);
  if (mask_num_objects(mask) == 0) {
    showMessage(tr("This frame's mask is empty."), true);
    return false;
  }
  try {
    m_propagation.start(m_session.path(), m_current, mask, last, modelChoice());
  } catch (const std::exception& e) {
    showMessage(QString::fromStdString(e.what()), true);
    return false;
  }
  m_propAnchor = m_current;
  m_progress->setValue(0);
  m_progress->setMaximum(int(std::llabs(last - m_current)));
  m_cancel->setEnabled(true);
  m_forward->setEnabled(false);
  m_backward->setEnabled(false);
  showMessage(tr("Propagating from frame %1 to %2…").arg(m_current).arg(last));
  return true;
}

void MainWindow::cancelPropagation() { m_propagation.cancel(); }

void MainWindow::onPropagationFinished(bool cancelled, const QString& error) {
  m_cancel->setEnabled(false);
  m_forward->setEnabled(true);
  m_backward->setEnabled(true);
  if (!error.isEmpty()) {
    showMessage(tr("Propagation failed: %1").arg(error), true);
  } else {
    showMessage(cancelled ? tr("Propagation cancelled; the masks already computed are kept.") : tr("Propagation finished."));
  }
  refresh();
}

// ---------------------------------------------------------------------------------------------
// Inspection
// ---------------------------------------------------------------------------------------------

void MainWindow::setViewMode(ViewMode mode) {
  m_viewMode = mode;
  if (m_viewCombo->currentIndex() != int(mode)) {
    m_viewCombo->blockSignals(true);
    m_viewCombo->setCurrentIndex(int(mode));
    m_viewCombo->blockSignals(false);
  }
  if (!m_session.isOpen()) return;
  if (mode == ViewMode::Masks) {
    m_simCurrent = torch::Tensor();
    m_simOther = torch::Tensor();
    m_view->setMarkers({});
    m_otherView->setMarkers({});
  }
  if (mode == ViewMode::Pca && (!m_pair || m_pair->frameA != m_current) && !m_features.running()) {
    m_features.start(m_session.frame(m_current), m_current, m_session.frame(m_other), m_other, modelChoice());
  }
  refresh();
}

void MainWindow::inspectAt(QPointF p) {
  if (!m_session.isOpen()) return;
  m_query = p;
  m_haveQuery = true;
  if (m_viewMode == ViewMode::Masks) setViewMode(ViewMode::Similarity);
  if (m_pair && m_pair->frameA == m_current && m_pair->frameB == m_other) {
    updateSimilarity();
    return;
  }
  if (m_features.running()) return;  // the finished job re-runs the query
  m_features.start(m_session.frame(m_current), m_current, m_session.frame(m_other), m_other, modelChoice());
  showMessage(tr("Computing features of frames %1 and %2…").arg(m_current).arg(m_other));
}

void MainWindow::onFeaturesReady(std::shared_ptr<const FeaturePair> f) {
  m_pair = std::move(f);
  if (m_haveQuery && (m_pair->frameA != m_current || m_pair->frameB != m_other)) {
    inspectAt(m_query);  // the frames changed while it ran
    return;
  }
  if (m_haveQuery) updateSimilarity();
  refresh();
}

void MainWindow::updateSimilarity() {
  const int w = m_session.width(), h = m_session.height();
  m_simCurrent = similarityMap(*m_pair, false, m_query.x(), m_query.y(), w, h);
  m_simOther = similarityMap(*m_pair, true, m_query.x(), m_query.y(), w, h);
  const int spacing = std::max(8, int(m_pair->stride / m_pair->scale));
  std::vector<QPointF> here{m_query}, there;
  for (auto [x, y] : bestMatches(m_simOther, 5, 2 * spacing)) there.emplace_back(x + 0.5, y + 0.5);
  m_view->setMarkers(here);
  m_otherView->setMarkers(there);
  showMessage(tr("Similarity of pixel (%1, %2): best match on frame %3 at (%4, %5)")
                  .arg(int(m_query.x())).arg(int(m_query.y())).arg(m_other)
                  .arg(there.empty() ? -1 : int(there[0].x())).arg(there.empty() ? -1 : int(there[0].y())));
  refresh();
}

// ---------------------------------------------------------------------------------------------
// Training
// ---------------------------------------------------------------------------------------------

void MainWindow::startTraining() {
  QString data = m_trainData->text().trimmed();
  if (data.isEmpty()) data = m_session.path();
  if (data.isEmpty()) {
    showMessage(tr("Choose training data (a clip cache, videos or frame folders)."), true);
    return;
  }
  const QString out = m_trainOut->text().trimmed();
  const QString exe = QDir(QCoreApplication::applicationDirPath()).filePath("corrtrack");
  if (!QFileInfo::exists(exe)) {
    showMessage(tr("The corrtrack command was not found next to the Studio (%1).").arg(exe), true);
    return;
  }
  const QStringList args{"--method", m_trainMethod->currentText(), "--data", data, "--steps", QString::number(m_trainSteps->value()),
                         "--log-every", "5", "--checkpoint-every", "50"};
  m_lossSeries->clear();
  QString error;
  if (!m_training.start(exe, args, out, &error)) {
    showMessage(error, true);
    return;
  }
  m_trainStart->setEnabled(false);
  m_trainCancel->setEnabled(true);
  m_trainUse->setEnabled(false);
  m_trainStatus->setText(tr("starting: corrtrack train %1 --out %2").arg(args.join(' '), out));
}

void MainWindow::showLossCurve(const QList<QPointF>& points) {
  double lo = 1e30, hi = -1e30;
  for (const auto& p : points) {
    lo = std::min(lo, p.y());
    hi = std::max(hi, p.y());
  }
  m_lossSeries->replace(points);
  auto* chart = m_lossChart->chart();
  const auto axesX = chart->axes(Qt::Horizontal), axesY = chart->axes(Qt::Vertical);
  if (!axesX.isEmpty()) axesX[0]->setRange(0, std::max(1.0, points.back().x()));
  if (!axesY.isEmpty()) axesY[0]->setRange(lo - 0.05 * (hi - lo + 1e-9), hi + 0.05 * (hi - lo + 1e-9));
}

// ---------------------------------------------------------------------------------------------
// Export
// ---------------------------------------------------------------------------------------------

void MainWindow::exportPngs() {
  const QString d = QFileDialog::getExistingDirectory(this, tr("Folder for palette PNGs"));
  if (d.isEmpty()) return;
  try {
    m_session.exportPalettePngs(d);
    showMessage(tr("Wrote %1 palette PNGs to %2").arg(m_session.frameCount()).arg(d));
  } catch (const std::exception& e) {
    showMessage(QString::fromStdString(e.what()), true);
  }
}

void MainWindow::exportBinary() {
  const QString d = QFileDialog::getExistingDirectory(this, tr("Folder for binary masks"));
  if (d.isEmpty()) return;
  try {
    m_session.exportBinaryMasks(d);
    showMessage(tr("Wrote binary masks of %1 objects to %2").arg(m_session.objects().size()).arg(d));
  } catch (const std::exception& e) {
    showMessage(QString::fromStdString(e.what()), true);
  }
}

void MainWindow::exportVideo() {
  const QString f = QFileDialog::getSaveFileName(this, tr("Overlay video"), "overlay.mp4", tr("Video (*.mp4 *.mkv *.avi)"));
  if (f.isEmpty()) return;
  try {
    m_session.exportOverlayVideo(f, overlayMode(m_overlay->currentIndex()), float(m_opacity->value()) / 100.0f);
    showMessage(tr("Wrote %1").arg(f));
  } catch (const std::exception& e) {
    showMessage(QString::fromStdString(e.what()), true);
  }
}

// ---------------------------------------------------------------------------------------------
// Keys, drops, close
// ---------------------------------------------------------------------------------------------

void MainWindow::keyPressEvent(QKeyEvent* e) {
  const bool shift = e->modifiers() & Qt::ShiftModifier;
  switch (e->key()) {
    case Qt::Key_Right: setCurrentFrame(m_current + (shift ? 10 : 1)); return;
    case Qt::Key_Left: setCurrentFrame(m_current - (shift ? 10 : 1)); return;
    case Qt::Key_Home: setCurrentFrame(0); return;
    case Qt::Key_End: setCurrentFrame(m_session.frameCount() - 1); return;
    case Qt::Key_B: m_tools->button(0)->click(); return;
    case Qt::Key_E: m_tools->button(1)->click(); return;
    case Qt::Key_P: m_tools->button(2)->click(); return;
    case Qt::Key_F: m_tools->button(3)->click(); return;
    case Qt::Key_I: m_tools->button(4)->click(); return;
    default: break;
  }
  if (e->key() >= Qt::Key_1 && e->key() <= Qt::Key_9) {
    const size_t i = size_t(e->key() - Qt::Key_1);
    if (i < m_session.objects().size()) selectObject(m_session.objects()[i]);
    return;
  }
  QMainWindow::keyPressEvent(e);
}

void MainWindow::dragEnterEvent(QDragEnterEvent* e) {
  if (e->mimeData()->hasUrls()) e->acceptProposedAction();
}

void MainWindow::dropEvent(QDropEvent* e) {
  const auto urls = e->mimeData()->urls();
  if (urls.isEmpty()) return;
  const QString path = urls.front().toLocalFile();
  if (path.endsWith(".png", Qt::CaseInsensitive) && m_session.isOpen()) importMask(path); else openVideo(path);
}

void MainWindow::closeEvent(QCloseEvent* e) {
  m_propagation.cancel();
  m_propagation.wait();
  QMainWindow::closeEvent(e);
}

}  // namespace corrtrack::ui
