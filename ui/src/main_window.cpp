// CorrTrack Studio main window: the centre, the docks and how they talk to the session and jobs.
#include "corrtrack/ui/main_window.h"

#include <QAction>
#include <QApplication>
#include <QCloseEvent>
#include <QDialog>
#include <QDialogButtonBox>
#include <QDockWidget>
#include <QHeaderView>
#include <QTableWidget>
#include <QToolBar>
#include <QDragEnterEvent>
#include <QDropEvent>
#include <QFileDialog>
#include <QFileInfo>
#include <QHBoxLayout>
#include <QKeyEvent>
#include <QLabel>
#include <QMenu>
#include <QMenuBar>
#include <QMessageBox>
#include <QMimeData>
#include <QScrollArea>
#include <QSettings>
#include <QSignalBlocker>
#include <QSlider>
#include <QStatusBar>
#include <QTimer>
#include <QToolButton>
#include <QVBoxLayout>

#include <algorithm>
#include <cmath>

namespace corrtrack::ui {

namespace {

constexpr int kRecentFiles = 10;

QSettings studioSettings() { return QSettings(QStringLiteral("CorrTrack"), QStringLiteral("Studio")); }

QImage toQImage(const Image& img) {
  QImage q(img.width, img.height, QImage::Format_RGB888);
  for (int y = 0; y < img.height; ++y) std::memcpy(q.scanLine(y), img.px(0, y), size_t(img.width) * 3);
  return q;
}

}  // namespace

MainWindow::MainWindow(QWidget* parent, bool remember) : QMainWindow(parent), m_remember(remember) {
  setWindowTitle("CorrTrack Studio");
  setAcceptDrops(true);
  buildCentre();
  buildDocks();
  buildMenus();
  buildToolbar();
  connectPanels();
  connectJobs();
  resize(1400, 860);
  if (m_remember) {
    QSettings settings = studioSettings();
    restoreGeometry(settings.value("window/geometry").toByteArray());
    restoreState(settings.value("window/state").toByteArray());
  }
  refresh();
}

MainWindow::~MainWindow() {
  m_propagation.cancel();
  m_propagation.wait();
  m_features.wait();
}

// ---------------------------------------------------------------------------------------------
// Layout and wiring
// ---------------------------------------------------------------------------------------------

void MainWindow::buildCentre() {
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
  m_timeline->setMinimumWidth(200);
  m_frameLabel = new QLabel("–", central);
  m_anchorLabel = new QLabel(central);
  m_play->setToolTip(tr("Play / pause (Space)"));
  m_timeline->setToolTip(tr("Frame (←/→: one frame, Shift: ten, Home/End)"));
  m_strip = new TimelineStrip(central);
  m_strip->setObjectName("timelineStrip");
  v->addWidget(m_strip);
  connect(m_strip, &TimelineStrip::frameChosen, this, [this](qint64 k) { setCurrentFrame(k); });
  bar->addWidget(m_play);
  bar->addWidget(m_timeline, 1);
  bar->addWidget(m_frameLabel);
  statusBar()->addPermanentWidget(m_anchorLabel);
  v->addLayout(bar);
  setCentralWidget(central);
  m_playTimer = new QTimer(this);
  connect(m_playTimer, &QTimer::timeout, this, [this] {
    if (m_current + 1 >= m_session.frameCount()) return m_play->setChecked(false);
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
  connect(m_view, &FrameView::pointClicked, this, &MainWindow::segmentClick);
  connect(m_view, &FrameView::clicked, this, [this](QPointF p) {
    if (!m_session.isOpen()) return;
    if (m_view->tool() == Tool::Fill) m_session.floodFill(m_current, p, uint8_t(m_object));
    if (m_view->tool() == Tool::Inspect) inspectAt(p);
  });
}

void MainWindow::buildDocks() {
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
  m_tools = new ToolsPanel(this);
  m_model = new ModelPanel(this);
  m_inspect = new InspectPanel(this);
  m_training = new TrainingPanel(this);
  // Right: the annotation tools. Left: propagation (in front), inspection and training as tabs —
  // so that each column fits a 1280×720 screen without scrolling.
  auto* tools = dock(tr("Objects and tools"), m_tools, Qt::RightDockWidgetArea);
  auto* model = dock(tr("Model and propagation"), m_model, Qt::LeftDockWidgetArea);
  auto* inspect = dock(tr("Inspect"), m_inspect, Qt::LeftDockWidgetArea);
  auto* training = dock(tr("Training"), m_training, Qt::LeftDockWidgetArea);
  tabifyDockWidget(model, inspect);
  tabifyDockWidget(inspect, training);
  model->raise();
  m_modelDock = model;
  m_inspectDock = inspect;
  resizeDocks({model, tools}, {340, 290}, Qt::Horizontal);
}

void MainWindow::connectPanels() {
  connect(m_tools, &ToolsPanel::addObjectRequested, this, [this] { attempt([this] { selectObject(m_session.addObject()); }); });
  connect(m_tools, &ToolsPanel::removeObjectRequested, this, [this] {
    if (m_session.objects().size() > 1) m_session.removeObject(m_object);
    if (!m_session.objects().empty()) selectObject(m_session.objects().front());
  });
  connect(m_tools, &ToolsPanel::objectChosen, this, [this](int row) {
    if (row < int(m_session.objects().size())) m_object = m_session.objects()[size_t(row)];
    resetClicks();
  });
  connect(m_tools, &ToolsPanel::toolChosen, this, [this](Tool t) {
    resetClicks();
    m_view->setTool(t);
    if (t == Tool::Inspect && m_viewMode == ViewMode::Masks) setViewMode(ViewMode::Similarity);
  });
  connect(m_tools, &ToolsPanel::brushRadiusChanged, this, [this](int r) { m_view->setBrushRadius(r); });
  connect(m_tools, &ToolsPanel::overlayChanged, this, [this] { refresh(); });
  connect(m_tools, &ToolsPanel::viewModeChosen, this, &MainWindow::setViewMode);
  connect(m_tools, &ToolsPanel::clearFrameRequested, this, [this] {
    if (m_session.isOpen()) m_session.clearFrame(m_current);
  });
  connect(m_model, &ModelPanel::propagateRequested, this, &MainWindow::propagate);
  connect(m_model, &ModelPanel::cancelRequested, this, &MainWindow::cancelPropagation);
  connect(m_model, &ModelPanel::modelChanged, this, [this] { m_pair.reset(); });
  connect(m_model, &ModelPanel::message, this, &MainWindow::showMessage);
  connect(m_inspect, &InspectPanel::otherFrameChosen, this, &MainWindow::setOtherFrame);
  connect(m_training, &TrainingPanel::useCheckpointRequested, this, &MainWindow::useCheckpoint);
  connect(m_training, &TrainingPanel::message, this, &MainWindow::showMessage);
}

void MainWindow::connectJobs() {
  connect(&m_session, &Session::maskChanged, this, [this](qint64 k) {
    if (k == m_current || k == m_other) refresh();
    m_strip->setState(k, m_session.state(k));
    refreshTimeline();
  });
  connect(&m_session, &Session::objectsChanged, this, &MainWindow::refreshObjects);
  connect(&m_session, &Session::saveFailed, this, [this](const QString& why) {
    showMessage(tr("Saving the masks failed (%1); they are kept in memory and saving is retried at the next edit").arg(why), true);
  });
  connect(&m_session, &Session::undoStateChanged, this, [this] {
    m_undo->setEnabled(m_session.canUndo());
    m_redo->setEnabled(m_session.canRedo());
  });
  connect(&m_propagation, &PropagationJob::maskReady, this, [this](qint64 k, std::shared_ptr<const Image> mask, std::shared_ptr<const SoftMasks> soft) {
    m_session.setPropagated(k, *mask, soft);
  });
  connect(&m_propagation, &PropagationJob::progress, m_model, &ModelPanel::showProgress);
  connect(&m_propagation, &PropagationJob::adapting, m_model, &ModelPanel::showAdapting);
  connect(&m_propagation, &PropagationJob::finished, this, &MainWindow::onPropagationFinished);
  connect(&m_features, &FeatureJob::ready, this, &MainWindow::onFeaturesReady);
  connect(&m_features, &FeatureJob::failed, this, [this](const QString& e) { showMessage(e, true); });
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
  auto* recent = file->addMenu(tr("Open &recent"));
  recent->setObjectName("recentMenu");
  connect(recent, &QMenu::aboutToShow, this, [this, recent] {
    recent->clear();
    for (const QString& f : recentFiles()) recent->addAction(f, this, [this, f] { openVideo(f); });
    if (recent->isEmpty()) recent->addAction(tr("(none yet)"))->setEnabled(false);
  });
  file->addAction(tr("&Save workspace as…"), QKeySequence::SaveAs, this, [this] {
    if (!m_session.isOpen()) return showMessage(tr("Open a video first."), true);
    const QString d = QFileDialog::getExistingDirectory(this, tr("Workspace folder (masks are saved there from now on)"));
    if (!d.isEmpty()) saveWorkspaceAs(d);
  });
  file->addAction(tr("&Import mask PNG…"), this, [this] {
    const QString f = QFileDialog::getOpenFileName(this, tr("Mask"), QString(), tr("PNG (*.png)"));
    if (!f.isEmpty()) importMask(f);
  });
  file->addSeparator();
  file->addAction(tr("Export palette PNGs…"), this, &MainWindow::exportPngs);
  file->addAction(tr("Export binary masks…"), this, &MainWindow::exportBinary);
  file->addAction(tr("Export overlay video…"), this, &MainWindow::exportVideo);
  file->addAction(tr("Export COCO JSON (RLE)…"), this, &MainWindow::exportCoco);
  file->addAction(tr("Export soft masks…"), this, &MainWindow::exportSoft);
  file->addSeparator();
  file->addAction(tr("&Quit"), QKeySequence::Quit, this, &QWidget::close);
  auto* edit = menuBar()->addMenu(tr("&Edit"));
  m_undo = edit->addAction(tr("&Undo"), QKeySequence::Undo, this, [this] {
    // Within a click sequence undo takes back the last click (its edit is the newest one).
    const bool inClicks = !m_clicks.empty() && m_clickFrame == m_current;
    m_session.undo();
    if (!inClicks) return resetClicks();
    m_clicks.pop_back();
    if (m_clicks.empty()) return resetClicks();
    showClickMarkers();
  });
  m_redo = edit->addAction(tr("&Redo"), QKeySequence::Redo, this, [this] {
    resetClicks();
    m_session.redo();
  });
  m_undo->setObjectName("undo");
  m_redo->setObjectName("redo");
  m_undo->setEnabled(false);
  m_redo->setEnabled(false);

  auto* go = menuBar()->addMenu(tr("&Go"));
  m_actPlay = go->addAction(tr("&Play / pause"), QKeySequence(Qt::Key_Space), this, [this] { m_play->toggle(); });
  m_actNextAnchor = go->addAction(tr("&Next anchor"), QKeySequence(Qt::Key_BracketRight), this, &MainWindow::nextAnchor);
  m_actPrevAnchor = go->addAction(tr("P&revious anchor"), QKeySequence(Qt::Key_BracketLeft), this, &MainWindow::previousAnchor);
  go->addSeparator();
  m_actForward = go->addAction(tr("Propagate &forward"), QKeySequence(Qt::CTRL | Qt::Key_Right), this, [this] { propagate(true); });
  m_actBackward = go->addAction(tr("Propagate &backward"), QKeySequence(Qt::CTRL | Qt::Key_Left), this, [this] { propagate(false); });
  m_actCancel = go->addAction(tr("&Cancel propagation"), QKeySequence(Qt::CTRL | Qt::Key_Period), this, &MainWindow::cancelPropagation);
  m_actPlay->setObjectName("play");
  m_actNextAnchor->setObjectName("nextAnchor");
  m_actPrevAnchor->setObjectName("previousAnchor");
  m_actForward->setObjectName("propagateForward");
  m_actBackward->setObjectName("propagateBackward");
  m_actCancel->setObjectName("cancelPropagation");

  m_viewMenu = menuBar()->addMenu(tr("&View"));
  m_actFit = m_viewMenu->addAction(tr("&Fit frame to window"), QKeySequence(Qt::Key_0), this, [this] { m_view->fitToWindow(); });
  m_viewMenu->addAction(tr("&Masks"), QKeySequence(Qt::Key_M), this, [this] { setViewMode(ViewMode::Masks); });
  m_viewMenu->addAction(tr("&Similarity"), QKeySequence(Qt::Key_S), this, [this] { setViewMode(ViewMode::Similarity); });
  m_viewMenu->addAction(tr("Feature &PCA"), this, [this] { setViewMode(ViewMode::Pca); });
  m_viewMenu->addSeparator();   // the docks' and toolbar's show/hide entries follow (buildToolbar)

  auto* help = menuBar()->addMenu(tr("&Help"));
  help->addAction(tr("&Keyboard shortcuts"), QKeySequence(Qt::Key_F1), this, &MainWindow::showShortcuts)->setObjectName("shortcutsHelp");
  help->addAction(tr("&About CorrTrack Studio"), this, [this] {
    QMessageBox::about(this, tr("About CorrTrack Studio"),
                       tr("<b>CorrTrack Studio %1</b><br>Annotate objects with a few clicks, propagate the masks through the "
                          "video with a self-supervised correspondence model, correct and export them.").arg(QCoreApplication::applicationVersion()));
  });
}

void MainWindow::buildToolbar() {
  auto* bar = addToolBar(tr("Main toolbar"));
  bar->setObjectName("mainToolbar");
  bar->setToolButtonStyle(Qt::ToolButtonTextOnly);
  // The menus' own actions, with a short label and a tooltip: enabled and disabled together.
  auto add = [bar](QAction* a, const QString& label, const QString& tip) {
    a->setIconText(label);
    a->setToolTip(tip);
    bar->addAction(a);
  };
  add(m_undo, tr("Undo"), tr("Undo the last edit (Ctrl+Z)"));
  add(m_redo, tr("Redo"), tr("Redo (Ctrl+Shift+Z)"));
  bar->addSeparator();
  add(m_actPrevAnchor, tr("|◀ Anchor"), tr("Previous anchor ([)"));
  add(m_actBackward, tr("◀ Propagate"), tr("Propagate backward from this annotated frame (Ctrl+Left)"));
  add(m_actCancel, tr("■ Cancel"), tr("Cancel the propagation; computed masks are kept (Ctrl+.)"));
  add(m_actForward, tr("Propagate ▶"), tr("Propagate forward from this annotated frame (Ctrl+Right)"));
  add(m_actNextAnchor, tr("Anchor ▶|"), tr("Next anchor (])"));
  bar->addSeparator();
  add(m_actFit, tr("Fit"), tr("Fit the frame to the window (0)"));
  // View ▸ the docks and the toolbar (show / hide).
  for (auto* d : findChildren<QDockWidget*>()) m_viewMenu->addAction(d->toggleViewAction());
  m_viewMenu->addAction(bar->toggleViewAction());
}

QList<QPair<QString, QString>> MainWindow::shortcuts() const {
  QList<QPair<QString, QString>> list = {
      {"C", tr("Click tool: left click adds to the object, right click / Shift+click removes")},
      {"B / E / P / F / I", tr("Brush / eraser / polygon / fill / inspect tool")},
      {"1 … 9", tr("Select object 1 … 9")},
      {"← / →", tr("Previous / next frame (Shift: 10 frames)")},
      {"Home / End", tr("First / last frame")},
      {tr("Wheel / right or middle drag"), tr("Zoom at the cursor / pan")},
      {tr("Enter / double-click, Esc"), tr("Close / drop the polygon")},
  };
  for (const QAction* a : findChildren<QAction*>()) {
    if (a->shortcut().isEmpty()) continue;
    QString text = a->text();
    text.remove('&');
    list.append({a->shortcut().toString(QKeySequence::NativeText), text});
  }
  return list;
}

void MainWindow::showShortcuts() {
  QDialog dialog(this);
  dialog.setObjectName("shortcutsDialog");
  dialog.setWindowTitle(tr("Keyboard shortcuts"));
  auto* v = new QVBoxLayout(&dialog);
  const auto list = shortcuts();
  auto* table = new QTableWidget(int(list.size()), 2, &dialog);
  table->setHorizontalHeaderLabels({tr("Keys"), tr("Action")});
  for (int i = 0; i < int(list.size()); ++i) {
    table->setItem(i, 0, new QTableWidgetItem(list[i].first));
    table->setItem(i, 1, new QTableWidgetItem(list[i].second));
  }
  table->horizontalHeader()->setStretchLastSection(true);
  table->resizeColumnToContents(0);
  table->verticalHeader()->hide();
  table->setEditTriggers(QAbstractItemView::NoEditTriggers);
  v->addWidget(table);
  auto* buttons = new QDialogButtonBox(QDialogButtonBox::Close, &dialog);
  connect(buttons, &QDialogButtonBox::rejected, &dialog, &QDialog::reject);
  v->addWidget(buttons);
  dialog.resize(560, 480);
  dialog.exec();
}

void MainWindow::nextAnchor() {
  const auto& a = m_session.anchors();
  auto it = a.upper_bound(m_current);
  if (it != a.end()) setCurrentFrame(*it);
}

void MainWindow::previousAnchor() {
  const auto& a = m_session.anchors();
  auto it = a.lower_bound(m_current);
  if (it != a.begin()) setCurrentFrame(*std::prev(it));
}

// ---------------------------------------------------------------------------------------------
// Video, frames, objects
// ---------------------------------------------------------------------------------------------

bool MainWindow::attempt(const std::function<void()>& action) {
  try {
    action();
    return true;
  } catch (const std::exception& e) {
    showMessage(QString::fromStdString(error_message(e)), true);
    return false;
  }
}

bool MainWindow::openVideo(const QString& path, const QString& workspace) {
  if (m_propagation.running()) {
    showMessage(tr("Cancel the running propagation before opening another video."), true);
    return false;
  }
  if (!confirmUnsaved()) return false;
  if (!attempt([&] { m_session.open(path, workspace, m_autosave); })) return false;
  noteRecent(path);
  m_pair.reset();
  m_haveQuery = false;
  m_current = -1;
  {
    const QSignalBlocker quiet(m_timeline);
    m_timeline->setRange(0, int(m_session.frameCount() - 1));
  }
  m_inspect->setFrameCount(m_session.frameCount());
  m_other = std::min<int64_t>(10, m_session.frameCount() - 1);
  m_inspect->setOtherFrame(m_other);
  m_training->setDefaultData(path);
  setWindowTitle("CorrTrack Studio — " + QFileInfo(path).fileName());
  refreshObjects();
  setCurrentFrame(0);
  rebuildTimeline();
  const QString opened = tr("Opened %1: %2 frames, %3×%4").arg(path).arg(m_session.frameCount()).arg(m_session.width()).arg(m_session.height());
  if (!m_session.workspaceError().isEmpty()) {
    showMessage(tr("%1. Masks are NOT saved automatically (%2): use File ▸ Save workspace as…").arg(opened, m_session.workspaceError()), true);
  } else if (m_session.workspace().isEmpty()) {
    showMessage(tr("%1 (scratch: nothing is saved until File ▸ Save workspace as…)").arg(opened));
  } else {
    showMessage(tr("%1; masks are saved as you go in %2").arg(opened, m_session.workspace()));
  }
  return true;
}

bool MainWindow::saveWorkspaceAs(const QString& dir) {
  if (!attempt([&] { m_session.saveWorkspaceAs(dir); })) return false;
  showMessage(tr("Saved the workspace in %1; masks are saved there from now on").arg(dir));
  return true;
}

bool MainWindow::confirmUnsaved() {
  if (!m_session.isOpen() || !m_session.hasUnsavedChanges()) return true;
  QMessageBox box(QMessageBox::Warning, tr("Unsaved masks"),
                  tr("The masks of %1 have changes that are not saved.").arg(QFileInfo(m_session.path()).fileName()),
                  QMessageBox::Save | QMessageBox::Discard | QMessageBox::Cancel, this);
  box.setObjectName("unsavedPrompt");
  box.setInformativeText(tr("Save them in a workspace folder, discard them, or go back?"));
  box.setDefaultButton(QMessageBox::Save);
  const int answer = box.exec();
  if (answer == QMessageBox::Discard) return true;
  if (answer != QMessageBox::Save) return false;
  const QString d = QFileDialog::getExistingDirectory(this, tr("Workspace folder"));
  return !d.isEmpty() && saveWorkspaceAs(d);
}

QStringList MainWindow::recentFiles() { return studioSettings().value("recentFiles").toStringList(); }

void MainWindow::noteRecent(const QString& path) {
  QSettings settings = studioSettings();
  QStringList files = settings.value("recentFiles").toStringList();
  const QString absolute = QFileInfo(path).absoluteFilePath();
  files.removeAll(absolute);
  files.prepend(absolute);
  while (files.size() > kRecentFiles) files.removeLast();
  settings.setValue("recentFiles", files);
}

bool MainWindow::importMask(const QString& png) {
  if (!m_session.isOpen()) {
    showMessage(tr("Open a video before importing a mask."), true);
    return false;
  }
  if (!attempt([&] { m_session.importMask(m_current, png); })) return false;
  showMessage(tr("Imported %1 on frame %2").arg(png).arg(m_current));
  return true;
}

void MainWindow::setCurrentFrame(int64_t k) {
  if (!m_session.isOpen()) return;
  k = std::clamp<int64_t>(k, 0, m_session.frameCount() - 1);
  if (k == m_current) return;
  m_current = k;
  resetClicks();
  {
    const QSignalBlocker quiet(m_timeline);
    m_timeline->setValue(int(k));
  }
  m_strip->setCurrent(k);
  // A similarity query belongs to the frame it was made on.
  m_haveQuery = false;
  m_simCurrent = torch::Tensor();
  m_simOther = torch::Tensor();
  m_view->setMarkers({});
  m_inspect->otherView().setMarkers({});
  if (m_viewMode != ViewMode::Masks) setViewMode(m_viewMode);
  refresh();
}

void MainWindow::setOtherFrame(int64_t k) {
  if (!m_session.isOpen()) return;
  m_other = std::clamp<int64_t>(k, 0, m_session.frameCount() - 1);
  m_inspect->setOtherFrame(m_other);
  m_pair.reset();
  if (m_haveQuery) inspectAt(m_query);
  refresh();
}

void MainWindow::selectObject(int id) {
  const auto& objs = m_session.objects();
  if (std::find(objs.begin(), objs.end(), id) == objs.end()) return;
  if (id != m_object) resetClicks();
  m_object = id;
  m_tools->setObjects(objs, m_object);
}

void MainWindow::refreshObjects() {
  const auto& objs = m_session.objects();
  if (std::find(objs.begin(), objs.end(), m_object) == objs.end() && !objs.empty()) m_object = objs.front();
  m_tools->setObjects(objs, m_object);
}

void MainWindow::rebuildTimeline() {
  std::vector<Session::FrameState> states(size_t(std::max<int64_t>(0, m_session.frameCount())));
  for (int64_t k = 0; k < int64_t(states.size()); ++k) states[size_t(k)] = m_session.state(k);
  m_strip->setStates(std::move(states));
  m_strip->setCurrent(m_current);
  refreshTimeline();
}

void MainWindow::refreshTimeline() {
  if (!m_session.isOpen()) return;
  const size_t masked = m_session.maskCount();
  m_anchorLabel->setText(tr("%1 anchors · %2 frames with masks").arg(m_session.anchors().size()).arg(masked));
}

void MainWindow::refresh() {
  if (!m_session.isOpen() || m_current < 0) {
    m_view->setImage(QImage());
    return;
  }
  attempt([this] {
    const Image& frame = m_session.frame(m_current);
    Image shown;
    if (m_viewMode == ViewMode::Similarity && m_simCurrent.defined()) {
      shown = heat_overlay(frame, m_simCurrent);
    } else if (m_viewMode == ViewMode::Pca && m_pair && m_pair->frame_a == m_current) {
      shown = pca_image(m_pair->a, frame.width, frame.height);
    } else {
      shown = overlay_render(frame, m_session.mask(m_current), m_tools->overlayMode(), m_tools->opacity());
    }
    m_view->setImage(toQImage(shown));
    auto bar = [](FrameView& v, const torch::Tensor& map) {
      if (map.defined()) v.setColourBar(map.min().item<double>(), map.max().item<double>()); else v.setColourBar(1, 0);
    };
    bar(*m_view, m_viewMode == ViewMode::Similarity ? m_simCurrent : torch::Tensor());
    // The Inspect dock shows the other frame only while inspecting.
    FrameView& otherView = m_inspect->otherView();
    if (m_viewMode == ViewMode::Masks) {
      otherView.setImage(QImage());
    } else {
      const Image& other = m_session.frame(m_other);
      otherView.setImage(toQImage(m_simOther.defined() ? heat_overlay(other, m_simOther) : other));
    }
    bar(otherView, m_viewMode == ViewMode::Similarity ? m_simOther : torch::Tensor());
  });
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

void MainWindow::segmentClick(QPointF p, bool positive) {
  if (!m_session.isOpen() || m_current < 0) return;
  if (m_clickFrame != m_current || m_clickObject != m_object) {
    resetClicks();
    m_clickFrame = m_current;
    m_clickObject = m_object;
    m_clickBase = m_session.mask(m_current);
  }
  // A click names a pixel: its centre (so the same pixel gives the same mask at any zoom).
  m_clicks.push_back(Click{std::floor(p.x()) + 0.5, std::floor(p.y()) + 0.5, positive});
  QApplication::setOverrideCursor(Qt::WaitCursor);
  const bool ok = attempt([&] {
    const Image region = click_segment(m_session.frame(m_current), m_clicks);
    m_session.setObjectRegion(m_current, m_clickBase, region, uint8_t(m_object));
  });
  QApplication::restoreOverrideCursor();
  if (!ok) {
    m_clicks.pop_back();
    return;
  }
  showClickMarkers();
  showMessage(tr("%n click(s) on object %1 (left adds, right removes; Ctrl+Z takes the last one back)", "", int(m_clicks.size())).arg(m_object));
}

void MainWindow::showClickMarkers() {
  std::vector<std::pair<QPointF, bool>> shown;
  for (const auto& c : m_clicks) shown.emplace_back(QPointF(c.x, c.y), c.positive);
  m_view->setClickMarkers(std::move(shown));
}

void MainWindow::resetClicks() {
  m_clicks.clear();
  m_clickFrame = -1;
  m_clickBase = Image();
  if (m_view) m_view->setClickMarkers({});
}

// ---------------------------------------------------------------------------------------------
// Model and propagation
// ---------------------------------------------------------------------------------------------

bool MainWindow::useCheckpoint(const QString& path) {
  QString error;
  if (!m_model->useCheckpoint(path, &error)) {
    showMessage(error, true);
    return false;
  }
  showMessage(tr("Features: %1").arg(path));
  return true;
}

void MainWindow::useBaseline(const QString& features) { m_model->useBaseline(features); }

bool MainWindow::propagate(bool forward) {
  auto refuse = [this](const QString& why) {
    showMessage(why, true);
    return false;
  };
  if (!m_session.isOpen()) return refuse(tr("Open a video first."));
  if (m_propagation.running()) return refuse(tr("A propagation is already running."));
  if (!m_session.isAnchor(m_current)) return refuse(tr("Annotate or correct this frame first: propagation starts from an annotated frame."));
  const auto [first, last] = m_session.propagationRange(m_current, forward);
  if ((forward && first > last) || (!forward && first < last)) {
    return refuse(tr("Nothing to propagate: the next frame in that direction is an anchor or the end."));
  }
  const Image mask = m_session.mask(m_current);
  if (mask_num_objects(mask) == 0) return refuse(tr("This frame's mask is empty."));
  if (!attempt([&, last = last] { m_propagation.start(m_session.reopen(), m_current, mask, last, modelChoice()); })) return false;
  m_model->setPropagating(true, int(std::llabs(last - m_current)));
  m_modelDock->raise();   // its progress bar and Cancel
  showMessage(tr("Propagating from frame %1 to %2…").arg(m_current).arg(last));
  return true;
}

void MainWindow::cancelPropagation() { m_propagation.cancel(); }

void MainWindow::onPropagationFinished(bool cancelled, const QString& error) {
  m_model->propagationEnded(!cancelled && error.isEmpty());
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
  m_tools->setViewMode(mode);
  if (!m_session.isOpen()) return;
  if (mode == ViewMode::Masks) {
    m_simCurrent = torch::Tensor();
    m_simOther = torch::Tensor();
    m_view->setMarkers({});
    m_inspect->otherView().setMarkers({});
  }
  if (mode == ViewMode::Pca && (!m_pair || m_pair->frame_a != m_current) && !m_features.running()) {
    m_features.start(m_session.frame(m_current), m_current, m_session.frame(m_other), m_other, modelChoice());
  }
  refresh();
}

void MainWindow::inspectAt(QPointF p) {
  if (!m_session.isOpen()) return;
  m_inspectDock->raise();   // the other frame's similarity is shown there
  m_query = p;
  m_haveQuery = true;
  if (m_viewMode == ViewMode::Masks) setViewMode(ViewMode::Similarity);
  if (m_pair && m_pair->frame_a == m_current && m_pair->frame_b == m_other) {
    updateSimilarity();
    return;
  }
  if (m_features.running()) return;  // the finished job re-runs the query
  m_features.start(m_session.frame(m_current), m_current, m_session.frame(m_other), m_other, modelChoice());
  showMessage(tr("Computing features of frames %1 and %2…").arg(m_current).arg(m_other));
}

void MainWindow::onFeaturesReady(std::shared_ptr<const FeaturePair> f) {
  m_pair = std::move(f);
  if (m_haveQuery && (m_pair->frame_a != m_current || m_pair->frame_b != m_other)) {
    inspectAt(m_query);  // the frames changed while it ran
    return;
  }
  if (m_haveQuery) updateSimilarity();
  refresh();
}

void MainWindow::updateSimilarity() {
  const int w = m_session.width(), h = m_session.height();
  m_simCurrent = similarity_map(*m_pair, false, m_query.x(), m_query.y(), w, h);
  m_simOther = similarity_map(*m_pair, true, m_query.x(), m_query.y(), w, h);
  const int spacing = std::max(8, int(m_pair->stride / m_pair->scale));
  std::vector<QPointF> here{m_query}, there;
  for (auto [x, y] : best_matches(m_simOther, 5, 2 * spacing)) there.emplace_back(x + 0.5, y + 0.5);
  m_view->setMarkers(here);
  m_inspect->otherView().setMarkers(there);
  showMessage(tr("Similarity of pixel (%1, %2): best match on frame %3 at (%4, %5)")
                  .arg(int(m_query.x())).arg(int(m_query.y())).arg(m_other)
                  .arg(there.empty() ? -1 : int(there[0].x())).arg(there.empty() ? -1 : int(there[0].y())));
  refresh();
}

// ---------------------------------------------------------------------------------------------
// Export
// ---------------------------------------------------------------------------------------------

// The export dialogs start where the same kind of export last went (QSettings "export/<kind>").
QString MainWindow::askExportFolder(const QString& kind, const QString& title) {
  QSettings settings = studioSettings();
  const QString d = QFileDialog::getExistingDirectory(this, title, settings.value("export/" + kind).toString());
  if (!d.isEmpty()) settings.setValue("export/" + kind, d);
  return d;
}

QString MainWindow::askExportFile(const QString& kind, const QString& title, const QString& name, const QString& filter) {
  QSettings settings = studioSettings();
  const QString last = settings.value("export/" + kind).toString();
  const QString f = QFileDialog::getSaveFileName(this, title, last.isEmpty() ? name : QFileInfo(last).dir().filePath(name), filter);
  if (!f.isEmpty()) settings.setValue("export/" + kind, f);
  return f;
}

void MainWindow::exportPngs() {
  const QString d = askExportFolder("palette", tr("Folder for palette PNGs"));
  if (d.isEmpty()) return;
  if (attempt([&] { m_session.exportPalettePngs(d); })) showMessage(tr("Wrote %1 palette PNGs to %2").arg(m_session.frameCount()).arg(d));
}

void MainWindow::exportBinary() {
  const QString d = askExportFolder("binary", tr("Folder for binary masks"));
  if (d.isEmpty()) return;
  if (attempt([&] { m_session.exportBinaryMasks(d); })) {
    showMessage(tr("Wrote binary masks of %1 objects to %2").arg(m_session.objects().size()).arg(d));
  }
}

void MainWindow::exportSoft() {
  const QString d = askExportFolder("soft", tr("Folder for soft masks"));
  if (d.isEmpty()) return;
  if (attempt([&] { m_session.exportSoftMasks(d); })) {
    showMessage(tr("Wrote soft masks of %1 objects to %2").arg(m_session.objects().size()).arg(d));
  }
}

void MainWindow::exportCoco() {
  const QString f = askExportFile("coco", tr("COCO data set"), "masks.json", tr("JSON (*.json)"));
  if (f.isEmpty()) return;
  if (attempt([&] { m_session.exportCoco(f); })) showMessage(tr("Wrote %1 frames as COCO to %2").arg(m_session.frameCount()).arg(f));
}

void MainWindow::exportVideo() {
  const QString f = askExportFile("video", tr("Overlay video"), "overlay.mp4", tr("Video (*.mp4 *.mkv *.avi)"));
  if (f.isEmpty()) return;
  if (attempt([&] { m_session.exportOverlayVideo(f, m_tools->overlayMode(), m_tools->opacity()); })) showMessage(tr("Wrote %1").arg(f));
}

// ---------------------------------------------------------------------------------------------
// Input
// ---------------------------------------------------------------------------------------------

void MainWindow::keyPressEvent(QKeyEvent* e) {
  const bool shift = e->modifiers() & Qt::ShiftModifier;
  switch (e->key()) {
    case Qt::Key_Right: setCurrentFrame(m_current + (shift ? 10 : 1)); return;
    case Qt::Key_Left: setCurrentFrame(m_current - (shift ? 10 : 1)); return;
    case Qt::Key_Home: setCurrentFrame(0); return;
    case Qt::Key_End: setCurrentFrame(m_session.frameCount() - 1); return;
    case Qt::Key_B: m_tools->chooseTool(Tool::Brush); return;
    case Qt::Key_E: m_tools->chooseTool(Tool::Eraser); return;
    case Qt::Key_P: m_tools->chooseTool(Tool::Polygon); return;
    case Qt::Key_F: m_tools->chooseTool(Tool::Fill); return;
    case Qt::Key_I: m_tools->chooseTool(Tool::Inspect); return;
    case Qt::Key_C: m_tools->chooseTool(Tool::Click); return;
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
  if (!confirmUnsaved()) {
    e->ignore();
    return;
  }
  m_propagation.cancel();
  m_propagation.wait();
  if (m_remember) {
    QSettings settings = studioSettings();
    settings.setValue("window/geometry", saveGeometry());
    settings.setValue("window/state", saveState());
  }
  QMainWindow::closeEvent(e);
}

}  // namespace corrtrack::ui
