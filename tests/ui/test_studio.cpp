// CorrTrack Studio under QT_QPA_PLATFORM=offscreen: painting, propagation (complete, cancelled,
// with the event loop's latency measured), similarity maps, export read back by the J&F scorer,
// workspaces, and bad input reported in the window.
#include <torch/torch.h>

#include "corrtrack/click_segment.h"
#include "corrtrack/tracking.h"
#include "corrtrack/ui/jobs.h"
#include "corrtrack/ui/main_window.h"
#include "corrtrack/ui/model_panel.h"
#include "corrtrack/ui/session.h"
#include "data_dirs.h"
#include "qt_support.h"

#include <QAction>
#include <QCheckBox>
#include <QComboBox>
#include <QElapsedTimer>
#include <QLabel>
#include <QDockWidget>
#include <QScrollArea>
#include <QSettings>
#include <QLineEdit>
#include <QScrollBar>
#include <QSpinBox>
#include <QTabBar>
#include <QTableWidget>
#include <QAbstractSpinBox>
#include <QAbstractSlider>
#include <QMessageBox>
#include <QProcess>
#include <QPushButton>
#include <QAbstractButton>
#include <QProgressBar>
#include <QTemporaryDir>
#include <QTimer>
#include <QtTest/QtTest>

#include <csignal>
#include <filesystem>
#include <algorithm>
#include <fstream>

#include <nlohmann/json.hpp>

using namespace corrtrack;
using corrtrack::ui::MainWindow;
namespace fs = std::filesystem;
using corrtrack::test::waitUntil;

namespace {

const QString kVideo = QStringLiteral(CORRTRACK_TEST_SOURCE_DIR "/assets/sample/city.mp4");
const QString kMask = QStringLiteral(CORRTRACK_TEST_SOURCE_DIR "/assets/sample/city_00000.png");

// The first n frames of the sample video as a PNG folder (a short test clip).
QString writeClip(const QString& dir, int n) {
  auto src = frame_source_open(kVideo.toStdString());
  fs::create_directories(dir.toStdString());
  for (int k = 0; k < n; ++k) {
    image_write_png((fs::path(dir.toStdString()) / (std::to_string(10000 + k).substr(1) + ".png")).string(), src->frame(k));
  }
  return dir;
}

// A left-button drag on the canvas from image point `from` to `to`; returns the widget points.
std::pair<QPoint, QPoint> dragOnView(MainWindow& w, QPointF from, QPointF to) {
  const QPoint a = w.view().toWidget(from).toPoint(), b = w.view().toWidget(to).toPoint();
  QTest::mousePress(&w.view(), Qt::LeftButton, Qt::NoModifier, a);
  QMouseEvent move(QEvent::MouseMove, QPointF(b), w.view().mapToGlobal(QPointF(b)), Qt::NoButton, Qt::LeftButton, Qt::NoModifier);
  QCoreApplication::sendEvent(&w.view(), &move);
  QTest::mouseRelease(&w.view(), Qt::LeftButton, Qt::NoModifier, b);
  return {a, b};
}

int countNonZero(const Image& m) {
  int n = 0;
  for (uint8_t v : m.data) n += v != 0;
  return n;
}

}  // namespace

class StudioTest : public QObject {
  Q_OBJECT
  QTemporaryDir m_home;
 private Q_SLOTS:
  // Every window of this run keeps its automatic workspaces, settings (recent files, layout) and
  // per-user data in a private folder: nothing is written next to the sample video or in $HOME,
  // and no state of an earlier run is resumed.
  void initTestCase() {
    torch::set_num_threads(1);
    QVERIFY(m_home.isValid());
    if (!qEnvironmentVariableIsEmpty("CORRTRACK_TEST_CRASH")) return;   // the crash child uses its parent's
    qputenv("XDG_CONFIG_HOME", m_home.filePath("config").toLocal8Bit());
    qputenv("XDG_DATA_HOME", m_home.filePath("data").toLocal8Bit());
  }
  // Each test function starts with no automatic workspace (they would resume each other's masks).
  void init() {
    if (!qEnvironmentVariableIsEmpty("CORRTRACK_TEST_CRASH")) return;
    qputenv("CORRTRACK_WORKSPACES", m_home.filePath("workspaces-" + QString(QTest::currentTestFunction())).toLocal8Bit());
  }

  // The crash test's child (run only by sigkillKeepsTheLastEdit, through CORRTRACK_TEST_CRASH):
  // edits in a real window — a brush stroke on frame 0, a click-to-segment click on frame 2 —
  // then SIGKILL right after the last edit returns.
  void crashChild() {
    if (qEnvironmentVariableIsEmpty("CORRTRACK_TEST_CRASH")) QSKIP("the child of sigkillKeepsTheLastEdit");
    MainWindow w;
    w.show();
    QVERIFY(w.openVideo(kVideo));
    QVERIFY(QTest::qWaitForWindowExposed(&w));
    QTest::keyClick(&w, Qt::Key_B);
    w.view().setBrushRadius(6);
    const auto [a, b] = dragOnView(w, QPointF(100, 100), QPointF(160, 100));
    w.setCurrentFrame(2);
    QTest::keyClick(&w, Qt::Key_C);
    QTest::mouseClick(&w.view(), Qt::LeftButton, Qt::NoModifier, w.view().toWidget(QPointF(330, 215)).toPoint());
    std::printf("edits done: %d pixels on frame 2\n", countNonZero(w.session().mask(2)));
    std::fflush(stdout);
    ::raise(SIGKILL);
  }

  // Never lose work: the Studio killed with SIGKILL right after two edits (no close, no flush at
  // exit) is reopened on the same video; both masks and anchors are there.
  void sigkillKeepsTheLastEdit() {
    QProcess child;
    QProcessEnvironment env = QProcessEnvironment::systemEnvironment();
    env.insert("CORRTRACK_TEST_CRASH", "1");
    child.setProcessEnvironment(env);
    child.start(QCoreApplication::applicationFilePath(), {"crashChild"});
    QVERIFY(child.waitForFinished(120000));
    const QString out = QString::fromLocal8Bit(child.readAllStandardOutput());
    QCOMPARE(child.exitStatus(), QProcess::CrashExit);
    QVERIFY2(out.contains("edits done"), qPrintable(out + child.readAllStandardError()));
    const int clickPixels = out.section("edits done: ", 1).section(' ', 0, 0).toInt();
    QVERIFY(clickPixels > 100);
    MainWindow w;
    QVERIFY(w.openVideo(kVideo));
    QCOMPARE(w.session().workspace(), ui::Session::automaticWorkspace(kVideo));
    QVERIFY(w.session().isAnchor(0));
    QVERIFY(w.session().isAnchor(2));
    QCOMPARE(int(*w.session().mask(0).px(130, 100)), 1);   // on the stroke
    QCOMPARE(int(*w.session().mask(0).px(130, 140)), 0);
    QCOMPARE(countNonZero(w.session().mask(2)), clickPixels);
    QVERIFY(!w.session().hasUnsavedChanges());
    QVERIFY(MainWindow::recentFiles().contains(QFileInfo(kVideo).absoluteFilePath()));
  }

  // The window's size and dock layout are remembered: a window closed at 1100×700 with the
  // tools dock hidden comes back that way; an offscreen render (remember off) ignores it.
  void layoutIsRemembered() {
    {
      MainWindow w;
      w.resize(1100, 700);
      w.show();
      QVERIFY(QTest::qWaitForWindowExposed(&w));
      for (auto* d : w.findChildren<QDockWidget*>()) {
        if (d->windowTitle() == "Objects and tools") d->hide();
      }
      QVERIFY(w.close());
    }
    auto toolsVisible = [](MainWindow& w) {
      for (auto* d : w.findChildren<QDockWidget*>()) {
        if (d->windowTitle() == "Objects and tools") return d->isVisible();
      }
      return true;
    };
    MainWindow again;
    again.show();
    QVERIFY(QTest::qWaitForWindowExposed(&again));
    QCOMPARE(again.size(), QSize(1100, 700));
    QVERIFY(!toolsVisible(again));
    MainWindow fresh(nullptr, false);
    fresh.show();
    QVERIFY(QTest::qWaitForWindowExposed(&fresh));
    QCOMPARE(fresh.size(), QSize(1400, 860));
    QVERIFY(toolsVisible(fresh));
    again.close();   // saves the layout once more: later tests construct windows without `remember` off
    QSettings("CorrTrack", "Studio").remove("window");
  }

  // The automatic workspace: $CORRTRACK_WORKSPACES/<name>-<hash> when set, else next to the video.
  void automaticWorkspaceLocation() {
    const QString ws = ui::Session::automaticWorkspace(kVideo);
    QVERIFY(ws.startsWith(qEnvironmentVariable("CORRTRACK_WORKSPACES") + "/city.mp4-"));
    QVERIFY(ws != ui::Session::automaticWorkspace(m_home.filePath("elsewhere/city.mp4")));
    QTemporaryDir tmp;
    const QString clip = writeClip(tmp.filePath("clip"), 3);
    const QByteArray saved = qgetenv("CORRTRACK_WORKSPACES");
    qunsetenv("CORRTRACK_WORKSPACES");
    const QString beside = ui::Session::automaticWorkspace(clip);
    const QString video = tmp.filePath("v.mp4");
    QVERIFY(QFile::copy(kVideo, video));
    const QString besideVideo = ui::Session::automaticWorkspace(video);
    qputenv("CORRTRACK_WORKSPACES", saved);
    QCOMPARE(beside, QFileInfo(clip).absoluteFilePath() + "/.corrtrack");   // a frame folder: inside, hidden
    QCOMPARE(besideVideo, QFileInfo(video).absoluteFilePath() + ".corrtrack");
  }

  // A scratch session (no autosave): closing with edits asks; Cancel keeps the window open,
  // Discard closes it. After Save workspace as… nothing is unsaved and closing does not ask.
  void closeAsksWhenUnsaved() {
    QTemporaryDir tmp;
    MainWindow w;
    w.setAutosave(false);
    w.show();
    QVERIFY(w.openVideo(kVideo));
    QVERIFY(w.session().workspace().isEmpty());
    w.session().paintStroke(1, {QPointF(40, 40)}, 8, 1);
    QVERIFY(w.session().hasUnsavedChanges());
    auto answerPrompt = [](QMessageBox::StandardButton answer, bool* asked) {
      QTimer::singleShot(100, [answer, asked] {
        auto* box = qobject_cast<QMessageBox*>(QApplication::activeModalWidget());
        *asked = box && box->objectName() == "unsavedPrompt";
        if (box) box->button(answer)->click();
      });
    };
    bool asked = false;
    answerPrompt(QMessageBox::Cancel, &asked);
    QVERIFY(!w.close());
    QVERIFY(asked);
    QVERIFY(w.isVisible());
    // Opening another video asks the same way; Cancel keeps this one.
    asked = false;
    answerPrompt(QMessageBox::Cancel, &asked);
    QVERIFY(!w.openVideo(writeClip(tmp.filePath("clip"), 2)));
    QVERIFY(asked);
    QCOMPARE(w.session().path(), kVideo);
    // Saved: the workspace holds the mask, and closing no longer asks.
    QVERIFY(w.saveWorkspaceAs(tmp.filePath("saved")));
    QVERIFY(!w.session().hasUnsavedChanges());
    QVERIFY(QFileInfo::exists(tmp.filePath("saved/masks/") + QString::fromStdString(w.session().frameName(1)) + ".png"));
    w.session().paintStroke(2, {QPointF(40, 40)}, 8, 1);   // saved there as it happens
    QVERIFY(!w.session().hasUnsavedChanges());
    QVERIFY(w.close());
    // A workspace of another video is refused.
    MainWindow other;
    other.setAutosave(false);
    QVERIFY(other.openVideo(writeClip(tmp.filePath("clip2"), 2)));
    QVERIFY(!other.saveWorkspaceAs(tmp.filePath("saved")));
    QVERIFY(other.lastMessage().contains("another video"));
    asked = false;
    other.session().paintStroke(0, {QPointF(10, 10)}, 4, 1);
    answerPrompt(QMessageBox::Discard, &asked);
    QVERIFY(other.close());
    QVERIFY(asked);
  }

  // A save that fails (the workspace's mask folder replaced by a file) is reported in the window,
  // the edit stays in memory as unsaved, and the next edit after the folder is back saves both.
  void failedSaveIsReportedAndRetried() {
    QTemporaryDir tmp;
    MainWindow w;
    QVERIFY(w.openVideo(kVideo, tmp.filePath("ws")));
    QVERIFY(QDir(tmp.filePath("ws/masks")).removeRecursively());
    { QFile f(tmp.filePath("ws/masks")); QVERIFY(f.open(QIODevice::WriteOnly)); }
    w.session().paintStroke(3, {QPointF(40, 40)}, 8, 1);
    QVERIFY(w.session().hasUnsavedChanges());
    QVERIFY(w.lastMessage().contains("Saving the masks failed"));
    QVERIFY(QFile::remove(tmp.filePath("ws/masks")));
    QVERIFY(QDir().mkpath(tmp.filePath("ws/masks")));
    w.session().paintStroke(5, {QPointF(40, 40)}, 8, 1);
    QVERIFY(!w.session().hasUnsavedChanges());
    for (int k : {3, 5}) QVERIFY(QFileInfo::exists(tmp.filePath("ws/masks/") + QString::fromStdString(w.session().frameName(k)) + ".png"));
  }

  // The training panel's curve: every complete metrics line in order; a torn last line (a run
  // killed mid-write) and lines without step/loss are skipped.
  void lossCurveFromMetrics() {
    QTemporaryDir tmp;
    const QString path = tmp.path() + "/metrics.jsonl";
    {
      std::ofstream out(path.toStdString());
      // (No raw string literals here: moc reads this file and counts their braces.)
      out << "{\"step\":5,\"loss\":2.5,\"lr\":0.001}\n{\"note\":\"no loss\"}\n"
          << "{\"step\":10,\"loss\":1.25}\n{\"step\":15,\"lo";
    }
    const auto points = corrtrack::ui::readLossCurve(path);
    QCOMPARE(points.size(), 2);
    QCOMPARE(points[0], QPointF(5, 2.5));
    QCOMPARE(points[1], QPointF(10, 1.25));
    QVERIFY(corrtrack::ui::readLossCurve(tmp.path() + "/missing.jsonl").isEmpty());
  }

  // The model panel's device: auto and cpu, cuda only where there is one; auto resolves to the
  // device this machine has, and the choice reaches the jobs.
  void modelPanelDevice() {
    corrtrack::ui::ModelPanel p;
    const bool cuda = torch::cuda::is_available();
    QCOMPARE(p.choice().device.is_cuda(), cuda);
    QComboBox* device = nullptr;
    for (auto* c : p.findChildren<QComboBox*>()) if (c->findData("cpu") >= 0) device = c;
    QVERIFY(device != nullptr);
    QCOMPARE(device->count(), cuda ? 3 : 2);
    QCOMPARE(device->itemText(0), QString(cuda ? "auto (cuda)" : "auto (cpu)"));
    device->setCurrentIndex(device->findData("cpu"));
    QVERIFY(p.choice().device.is_cpu());
    // The precision choice: auto by default (naming what it resolves to), fp32 and bf16 reach the jobs.
    QComboBox* precision = nullptr;
    for (auto* c : p.findChildren<QComboBox*>()) if (c->findData("bf16") >= 0) precision = c;
    QVERIFY(precision != nullptr);
    QCOMPARE(p.choice().precision, corrtrack::Precision::Auto);
    QCOMPARE(precision->itemText(0), QString("auto (%1)").arg(corrtrack::cpu_has_native_bf16() ? "bf16" : "fp32"));
    precision->setCurrentIndex(precision->findData("fp32"));
    QCOMPARE(p.choice().precision, corrtrack::Precision::Float32);
    precision->setCurrentIndex(precision->findData("bf16"));
    QCOMPARE(p.choice().precision, corrtrack::Precision::BFloat16);
  }

  // The preset fills the engine settings as the command's --protocol does, over the default
  // model's recommendation (its half resolution and edge refinement stand), and "the model's" restores them.
  void modelPanelPreset() {
    corrtrack::ui::ModelPanel p;
    auto* preset = p.findChild<QComboBox*>("enginePreset");
    QVERIFY(preset != nullptr);
    const auto pick = [&](const QString& name) {
      preset->setCurrentIndex(preset->findData(name));
      Q_EMIT preset->activated(preset->currentIndex());
      return p.choice().config;
    };
    auto c = pick("quality");
    QCOMPARE(c.context, 80);
    QCOMPARE(c.radius, 16.0);
    QCOMPARE(c.topk, 10);
    QCOMPARE(c.scale, 0.5);
    QCOMPARE(c.refine_radius, 12);   // the default model's edge refinement stands under a preset
    QCOMPARE(c.feedback_power, 1.5);  // and so does its feedback sharpening
    c = pick("fast");
    QCOMPARE(c.context, 20);
    QCOMPARE(c.radius, 8.0);
    c = pick(QString());
    QCOMPARE(c.context, 20);
    QCOMPARE(c.radius, 12.0);
    QCOMPARE(c.scale, 0.5);
    QCOMPARE(c.refine_radius, 12);
    QCOMPARE(c.refine_eps, 3e-4);
    // The refinement row is the user's to change: 0 turns it off.
    auto* refine = p.findChild<QSpinBox*>("refineRadius");
    QVERIFY(refine != nullptr);
    refine->setValue(0);
    QCOMPARE(p.choice().config.refine_radius, 0);
    // So is the sharpening: 1 feeds the soft labels back as predicted.
    auto* power = p.findChild<QDoubleSpinBox*>("feedbackPower");
    QVERIFY(power != nullptr);
    QCOMPARE(p.choice().config.feedback_power, 1.5);
    power->setValue(1.0);
    QCOMPARE(p.choice().config.feedback_power, 1.0);
    auto* flip = p.findChild<QCheckBox*>("flipFeatures");
    QVERIFY(flip != nullptr);
    QVERIFY(!p.choice().config.flip);
    flip->setChecked(true);
    QVERIFY(p.choice().config.flip);
    // The model's line names what it recommends.
    const QString about = corrtrack::ui::describeCheckpoint(QString::fromStdString(corrtrack::default_model_path()));
    QVERIFY2(about.endsWith("recommends scale 0.5, refine 12 px, feedback power 1.5"), qPrintable(about));
  }

  // The Session alone, no window: strokes make anchors, undo/redo restore exact masks, the
  // propagation range stops at anchors, and exported palette PNGs read back bit for bit.
  void sessionWithoutWidgets() {
    QTemporaryDir tmp;
    const QString clip = writeClip(tmp.path() + "/clip", 6);
    corrtrack::ui::Session s;
    s.open(clip);
    QCOMPARE(s.frameCount(), qint64(6));
    s.paintStroke(1, {QPointF(40, 40), QPointF(80, 40)}, 5.0, 1);
    Image painted = s.mask(1);
    QCOMPARE(int(painted.px(60, 40)[0]), 1);
    QCOMPARE(int(painted.px(60, 90)[0]), 0);
    QVERIFY(s.isAnchor(1));
    s.paintStroke(4, {QPointF(10, 10)}, 3.0, 2);
    QCOMPARE(s.propagationRange(1, true), std::make_pair(int64_t(2), int64_t(3)));
    QCOMPARE(s.propagationRange(1, false), std::make_pair(int64_t(0), int64_t(0)));
    s.undo();
    QVERIFY(!s.isAnchor(4));
    QCOMPARE(countNonZero(s.mask(4)), 0);
    s.redo();
    QCOMPARE(int(s.mask(4).px(10, 10)[0]), 2);
    s.exportPalettePngs(tmp.path() + "/out");
    Image back = mask_read((tmp.path() + "/out/" + QString::fromStdString(s.frameName(1)) + ".png").toStdString());
    QVERIFY(back.data == painted.data);
  }

  // Click to segment with QTest clicks on the first frame of real DAVIS sequences: each next click
  // is where the standard simulator puts it (click_next: inside the largest error, left click when
  // the object is missed there, right click when the mask spills); IoU with the ground truth must
  // reach 0.8 within 5 clicks. Undo takes back the last click.
  void clickToSegmentOnDavis() {
    const std::string data = test::data_dir();
    const fs::path root = fs::path(data) / "davis2016-val-dev";
    if (data.empty() || !fs::is_directory(root)) QSKIP("davis2016-val-dev not found: set CORRTRACK_DATA_DIR to ../shared/data");
    // At 1920×1080 the 854×480 frame is shown enlarged, so every click lands on the very pixel the
    // simulator chose (and the clicks are those of `corrtrack bench clicks`).
    for (const char* seq : {"blackswan", "dog", "cows"}) {
      MainWindow w(nullptr, false);
      w.resize(1920, 1080);
      w.show();
      QVERIFY(w.openVideo(QString::fromStdString((root / "JPEGImages" / seq).string())));
      QVERIFY(QTest::qWaitForWindowExposed(&w));
      QCOMPARE(int(w.view().tool()), int(ui::Tool::Click));
      const Image truth = mask_read((root / "Annotations" / seq / "00000.png").string());
      std::string line;
      double iou = 0;
      int clicks = 0;
      while (clicks < 5 && iou < 0.8) {
        auto c = click_next(truth, w.session().mask(0));
        QVERIFY(c.has_value());
        const QPoint at = w.view().toWidget(QPointF(c->x, c->y)).toPoint();
        QVERIFY(w.view().zoom() >= 1.0);
        if (qEnvironmentVariableIsSet("CLICK_DEBUG")) {
          const QPointF back = w.view().toImage(QPointF(at));
          std::printf("click %.1f %.1f -> widget %d %d -> image %.2f %.2f zoom %.3f\n", c->x, c->y, at.x(), at.y(), back.x(), back.y(), w.view().zoom());
        }
        QTest::mouseClick(&w.view(), c->positive ? Qt::LeftButton : Qt::RightButton, Qt::NoModifier, at);
        ++clicks;
        QCOMPARE(int(w.clickCount()), clicks);
        iou = davis_jaccard(w.session().mask(0), truth);
        line += (c->positive ? " +" : " -") + std::to_string(iou).substr(0, 5);
      }
      std::printf("%-20s clicks→IoU%s\n", seq, line.c_str());
      QVERIFY2(iou >= 0.8, seq);
      QVERIFY(w.session().isAnchor(0));
      // Undo takes back the last click only.
      if (clicks > 1) {
        w.findChild<QAction*>("undo")->trigger();
        QCOMPARE(int(w.clickCount()), clicks - 1);
        QVERIFY(davis_jaccard(w.session().mask(0), truth) != iou);
      }
    }
  }

  // Correcting fast: Ctrl+Right propagates; the timeline strip then marks frame 0 annotated and
  // the rest propagated; an edit on a propagated frame marks it corrected (undo takes that back);
  // ] and [ jump between anchors; Space plays and pauses; Help lists every shortcut.
  void timelineKeysAndShortcuts() {
    using FS = ui::Session::FrameState;
    QTemporaryDir tmp;
    MainWindow w;
    w.useBaseline("pixels");
    w.show();
    QVERIFY(w.openVideo(writeClip(tmp.filePath("clip"), 8)));
    QVERIFY(QTest::qWaitForWindowExposed(&w));
    w.activateWindow();
    QVERIFY(QTest::qWaitForWindowActive(&w));
    QVERIFY(w.importMask(kMask));
    QTest::keyClick(&w, Qt::Key_Right, Qt::ControlModifier);
    QVERIFY(w.propagationRunning() || w.session().hasMask(7));
    QVERIFY(waitUntil([&] { return !w.propagationRunning(); }, 120000));
    QCoreApplication::processEvents();
    const auto& states = w.timelineStrip().states();
    QCOMPARE(int(states.size()), 8);
    QCOMPARE(int(states[0]), int(FS::Annotated));
    for (int k = 1; k < 8; ++k) QCOMPARE(int(states[size_t(k)]), int(FS::Propagated));
    // The strip draws them: frame 0's column amber, frame 5's blue.
    const QImage strip = w.timelineStrip().grab().toImage();
    auto colourAt = [&](int k) { return strip.pixelColor(int((k + 0.5) / 8.0 * strip.width()), strip.height() / 2); };
    QCOMPARE(colourAt(5), ui::TimelineStrip::colour(FS::Propagated));
    QVERIFY(colourAt(0) != ui::TimelineStrip::colour(FS::Propagated));   // amber (the current-frame line may cross it)
    w.setCurrentFrame(4);
    w.session().paintStroke(4, {QPointF(60, 60)}, 6, 1);
    QCOMPARE(int(w.timelineStrip().states()[4]), int(FS::Corrected));
    QCOMPARE(int(w.session().state(4)), int(FS::Corrected));
    w.session().undo();
    QCOMPARE(int(w.timelineStrip().states()[4]), int(FS::Propagated));
    w.session().redo();
    QCOMPARE(int(w.timelineStrip().states()[4]), int(FS::Corrected));
    // Anchors are 0 and 4.
    QTest::keyClick(&w, Qt::Key_Home);
    QCOMPARE(int(w.currentFrame()), 0);
    QTest::keyClick(&w, Qt::Key_BracketRight);
    QCOMPARE(int(w.currentFrame()), 4);
    QTest::keyClick(&w, Qt::Key_BracketRight);
    QCOMPARE(int(w.currentFrame()), 4);
    QTest::keyClick(&w, Qt::Key_BracketLeft);
    QCOMPARE(int(w.currentFrame()), 0);
    // Space plays (frames advance), Space again pauses.
    QTest::keyClick(&w, Qt::Key_Space);
    QVERIFY(waitUntil([&] { return w.currentFrame() >= 2; }, 5000));
    QTest::keyClick(&w, Qt::Key_Space);
    const int64_t paused = w.currentFrame();
    QTest::qWait(300);
    QCOMPARE(w.currentFrame(), paused);
    // Help ▸ Keyboard shortcuts lists every action's shortcut.
    const auto list = w.shortcuts();
    QStringList keys;
    for (const auto& [k, what] : list) keys << k;
    for (const char* k : {"Ctrl+Right", "Ctrl+Left", "Space", "]", "[", "Ctrl+Z", "F1"}) QVERIFY2(keys.contains(k), k);
    int rows = -1;
    QTimer::singleShot(100, [&] {
      auto* d = QApplication::activeModalWidget();
      if (d && d->objectName() == "shortcutsDialog") {
        rows = d->findChild<QTableWidget*>()->rowCount();
        d->close();
      }
    });
    w.findChild<QAction*>("shortcutsHelp")->trigger();
    QCOMPARE(rows, int(list.size()));
    // Every control of the window explains itself.
    QStringList silent;
    for (QWidget* c : w.findChildren<QWidget*>()) {
      const bool control = qobject_cast<QAbstractButton*>(c) || qobject_cast<QComboBox*>(c) || qobject_cast<QAbstractSpinBox*>(c) ||
                           qobject_cast<QAbstractSlider*>(c) || qobject_cast<QLineEdit*>(c);
      if (!control || c->objectName().startsWith("qt_") || QString(c->metaObject()->className()).startsWith("QDockWidget")) continue;
      if (qobject_cast<QLineEdit*>(c) && qobject_cast<QAbstractSpinBox*>(c->parentWidget())) continue;   // a spin box's own editor
      if (qobject_cast<QScrollBar*>(c) || qobject_cast<QTabBar*>(c->parentWidget())) continue;   // Qt's own scrolling
      if (c->toolTip().isEmpty()) {
        silent << QString("%1 '%2' in %3").arg(c->metaObject()->className(), c->property("text").toString(),
                                               c->parentWidget() ? c->parentWidget()->metaObject()->className() : "-");
      }
    }
    QVERIFY2(silent.isEmpty(), qPrintable(silent.join(", ")));
  }

  // Looks and layout: at 1280×720 every dock (each tab raised in turn) shows all of its controls
  // without scrolling, and the propagation buttons are on screen.
  void fitsAt1280x720() {
    MainWindow w(nullptr, false);
    w.resize(1280, 720);
    w.show();
    QVERIFY(w.openVideo(kVideo));
    QVERIFY(QTest::qWaitForWindowExposed(&w));
    QCOMPARE(w.size(), QSize(1280, 720));
    const auto docks = w.findChildren<QDockWidget*>();
    QCOMPARE(int(docks.size()), 4);
    for (QDockWidget* d : docks) {
      d->raise();
      QCoreApplication::processEvents();
      auto* area = qobject_cast<QScrollArea*>(d->widget());
      QVERIFY(area && area->isVisible());
      QVERIFY2(!area->verticalScrollBar()->isVisible(), qPrintable(d->windowTitle() + ": scrolls vertically"));
      QVERIFY2(!area->horizontalScrollBar()->isVisible(), qPrintable(d->windowTitle() + ": scrolls horizontally"));
    }
    docks.front()->raise();   // any; then the model dock by its title
    for (QDockWidget* d : docks) {
      if (d->windowTitle() == "Model and propagation") d->raise();
    }
    QCoreApplication::processEvents();
    for (QPushButton* b : w.findChildren<QPushButton*>()) {
      if (!b->text().contains("Propagate")) continue;
      QVERIFY(b->isVisible());
      const QRect r(b->mapTo(&w, QPoint(0, 0)), b->size());
      QVERIFY2(w.rect().contains(r), qPrintable(b->text()));
    }
  }

  // A brush stroke dragged across the canvas sets the mask pixels under it to the object and
  // makes the frame an anchor; undo restores the empty mask.
  void strokeSetsMaskPixels() {
    MainWindow w;
    w.show();
    QVERIFY(w.openVideo(kVideo));
    QVERIFY(QTest::qWaitForWindowExposed(&w));
    QTest::keyClick(&w, Qt::Key_B);   // the brush (the click tool is the default)
    QCOMPARE(int(w.view().tool()), int(ui::Tool::Brush));
    w.view().setBrushRadius(6);
    const auto [a, b] = dragOnView(w, QPointF(100, 100), QPointF(160, 100));
    const Image m = w.session().mask(0);
    const QPointF mid = w.view().toImage(QPointF((a + b) / 2));
    QCOMPARE(int(*m.px(int(mid.x()), int(mid.y()))), 1);
    QCOMPARE(int(*m.px(130, 140)), 0);  // 40 px below the stroke
    QVERIFY(w.session().isAnchor(0));
    w.session().undo();
    QCOMPARE(countNonZero(w.session().mask(0)), 0);
    QVERIFY(!w.session().isAnchor(0));
  }

  // Propagating the annotation of frame 0 over a 10-frame clip fills a mask on every frame.
  void propagateFillsEveryFrame() {
    QTemporaryDir tmp;
    MainWindow w;
    w.useBaseline("pixels");
    QVERIFY(w.openVideo(writeClip(tmp.filePath("clip"), 10)));
    QVERIFY(w.importMask(kMask));
    QVERIFY(w.propagate(true));
    QVERIFY(waitUntil([&] { return !w.propagationRunning(); }, 120000));
    QCoreApplication::processEvents();
    const int objects = mask_num_objects(w.session().mask(0));
    QVERIFY(objects >= 1);
    // Masks are held run-length encoded: ten frames' masks and the history take far less than
    // ten raw masks (640×360 bytes each).
    const size_t raw = size_t(10) * 640 * 360;
    QVERIFY2(w.session().maskBytes() < raw / 10, qPrintable(QString("%1 bytes").arg(w.session().maskBytes())));
    std::printf("masks of 10 frames: %zu bytes held (raw: %zu)\n", w.session().maskBytes(), raw);
    for (int k = 1; k < 10; ++k) {
      QVERIFY2(w.session().hasMask(k), qPrintable(QString("frame %1 has no mask").arg(k)));
      QCOMPARE(mask_num_objects(w.session().mask(k)), objects);
      QVERIFY(!w.session().isAnchor(k));
    }
    // Export: palette PNGs that the J&F scorer reads; scored against the session's own masks
    // (written independently as the ground truth) every value is exactly 1.
    const QString root = tmp.filePath("davis");
    for (int k = 0; k < 10; ++k) {
      const auto dir = fs::path(root.toStdString()) / "Annotations" / "clip";
      fs::create_directories(dir);
      mask_write((dir / (w.session().frameName(k) + ".png")).string(), w.session().mask(k));
    }
    w.session().exportPalettePngs(tmp.filePath("results/clip"));
    Image back = mask_read(tmp.filePath("results/clip/0005.png").toStdString());
    QVERIFY(back == w.session().mask(5));
    const auto ev = davis_evaluate(root.toStdString(), tmp.filePath("results").toStdString(), {"clip"});
    QCOMPARE(ev.global_value("J&F-Mean"), 1.0);
    w.session().exportBinaryMasks(tmp.filePath("binary"));
    QVERIFY(QFileInfo::exists(tmp.filePath("binary/object_1/0003.png")));
    // COCO: an image per frame; frame 5's object 1 area is its pixel count in the session.
    w.session().exportCoco(tmp.filePath("masks.json"));
    std::ifstream in(tmp.filePath("masks.json").toStdString());
    const auto coco = nlohmann::json::parse(in);
    QCOMPARE(int64_t(coco["images"].size()), w.session().frameCount());
    const Image m5 = w.session().mask(5);
    const int64_t want = std::count(m5.data.begin(), m5.data.end(), uint8_t(1));
    int64_t got = -1;
    for (const auto& a : coco["annotations"]) {
      if (a["image_id"] == 5 && a["category_id"] == 1) got = a["area"].get<int64_t>();
    }
    QVERIFY(want > 0);
    QCOMPARE(got, want);
  }

  // Soft masks: a propagation keeps them per frame (in the workspace), equal to the engine's own
  // soft output; their argmax with the background's share is the mask; an edit drops the frame's
  // (exported from its mask, 0/255); a reopened workspace still has the others.
  void softMasksExportAndResume() {
    QTemporaryDir tmp;
    const QString clip = writeClip(tmp.filePath("clip"), 6);
    const QString ws = tmp.filePath("ws");
    ui::ModelChoice model;
    {
      MainWindow w;
      w.useBaseline("pixels");
      QVERIFY(w.openVideo(clip, ws));
      QVERIFY(w.importMask(kMask));
      QVERIFY(w.propagate(true));
      QVERIFY(waitUntil([&] { return !w.propagationRunning(); }, 120000));
      QCoreApplication::processEvents();
      model = w.modelChoice();
      auto& s = w.session();
      QVERIFY(!s.hasSoftMasks(0));   // the anchor keeps none: its export is its mask
      for (int k = 1; k < 6; ++k) QVERIFY2(s.hasSoftMasks(k), qPrintable(QString("frame %1").arg(k)));
      s.exportSoftMasks(tmp.filePath("soft"));
      const int objects = int(s.objects().size());
      QVERIFY(objects >= 1);
      auto softOf = [&](const QString& dir, int id, int64_t k) {
        const Image rgb = image_read(QDir(dir).filePath(QString("object_%1/%2.png").arg(id).arg(QString::fromStdString(s.frameName(k)))).toStdString());
        Image g(rgb.width, rgb.height, 1);
        for (size_t i = 0; i < g.data.size(); ++i) g.data[i] = rgb.data[i * 3];
        return g;
      };
      // The anchor: exactly 0/255 from its mask.
      const Image m0 = s.mask(0), a = softOf(tmp.filePath("soft"), 1, 0);
      for (size_t i = 0; i < a.data.size(); ++i) QCOMPARE(int(a.data[i]), m0.data[i] == 1 ? 255 : 0);
      // Frame 3: soft values (not only 0 and 255), whose argmax — background = 255 − their sum —
      // is the mask at all but rounding ties.
      const Image m3 = s.mask(3);
      std::vector<Image> soft3;
      for (int id = 1; id <= objects; ++id) soft3.push_back(softOf(tmp.filePath("soft"), id, 3));
      int64_t between = 0, disagree = 0;
      for (size_t i = 0; i < m3.data.size(); ++i) {
        int sum = 0, bestValue = 0;
        for (int o = 0; o < objects; ++o) {
          const int v = soft3[o].data[i];
          sum += v;
          between += v > 0 && v < 255;
          bestValue = std::max(bestValue, v);
        }
        const int background = 255 - sum;
        const int want = m3.data[i];
        const int wantValue = want == 0 ? background : soft3[want - 1].data[i];
        disagree += std::max(background, bestValue) - wantValue > 2;
      }
      QVERIFY2(between > 100, qPrintable(QString("%1 soft values").arg(between)));
      QVERIFY2(disagree * 1000 < int64_t(m3.data.size()), qPrintable(QString("%1 pixels disagree").arg(disagree)));
      // Equal to the engine's soft masks for the same clip and settings (what `propagate --soft` writes).
      {
        auto features = feature_extractor_open(model.spec, model.device, model.precision);
        auto source = frame_source_open(clip.toStdString());
        LabelPropagator engine(*features, model.config);
        std::vector<Image> engine3;
        engine.set_soft_sink([&](int64_t k, const std::vector<Image>& o) { if (k == 3) engine3 = o; });
        engine.run(*source, {Anchor{0, mask_read(kMask.toStdString())}}, [](int64_t, const Image&, const Image&) {});
        QCOMPARE(int(engine3.size()), objects);
        for (int o = 0; o < objects; ++o) QVERIFY(engine3[o] == soft3[o]);
      }
      // An edit of frame 3 drops its soft masks: exported from the edited mask.
      s.paintStroke(3, {QPointF(40, 40)}, 8, 1);
      QVERIFY(!s.hasSoftMasks(3));
      s.exportSoftMasks(tmp.filePath("soft2"));
      const Image e3 = s.mask(3), b = softOf(tmp.filePath("soft2"), 1, 3);
      for (size_t i = 0; i < b.data.size(); ++i) QCOMPARE(int(b.data[i]), e3.data[i] == 1 ? 255 : 0);
      s.undo();   // the mask comes back, its soft masks do not
      QVERIFY(!s.hasSoftMasks(3));
    }
    MainWindow again;
    QVERIFY(again.openVideo(clip, ws));
    QVERIFY(again.session().hasSoftMasks(2));
    QVERIFY(!again.session().hasSoftMasks(3));
    QVERIFY(!again.session().hasSoftMasks(0));
    // Save as: the kept soft masks move with the workspace.
    again.session().saveWorkspaceAs(tmp.filePath("ws2"));
    QVERIFY(QFileInfo::exists(tmp.filePath("ws2/soft/object_1/0002.png")));
    QVERIFY(again.session().hasSoftMasks(2));
  }

  // Adapting the model to the video before propagating: the rate line says so while it trains,
  // Cancel stops it (between training steps), nothing is propagated and the line is cleared.
  void adaptationCancels() {
    MainWindow w;   // the bundled model
    QVERIFY(w.openVideo(kVideo));
    QVERIFY(w.importMask(kMask));
    auto* adapt = w.findChild<QSpinBox*>("adaptSeconds");
    QVERIFY(adapt);
    adapt->setValue(600);
    QCOMPARE(w.modelChoice().adaptSeconds, 600.0);
    QVERIFY(w.propagate(true));
    auto* rate = w.findChild<QLabel*>("propagationRate");
    QVERIFY(rate);
    QVERIFY(waitUntil([&] { return rate->text().startsWith("adapting"); }, 180000));
    QElapsedTimer clock;
    clock.start();
    w.cancelPropagation();
    QVERIFY(waitUntil([&] { return !w.propagationRunning(); }, 60000));
    QCoreApplication::processEvents();
    qInfo("adaptation stopped %lld ms after Cancel", clock.elapsed());
    QVERIFY(!w.session().hasMask(1));
    QCOMPARE(rate->text(), QString());
  }

  // Cancelling keeps the masks already delivered (a contiguous run after the anchor) and the
  // event loop keeps answering within 100 ms while the worker propagates.
  void cancelKeepsFramesAndUiResponsive() {
    MainWindow w;
    w.useBaseline("random");  // the slower features, so that the job is still running when cancelled
    w.show();
    QVERIFY(w.openVideo(kVideo));
    QVERIFY(w.importMask(kMask));
    QElapsedTimer clock;
    qint64 last = 0, worst = 0;
    QTimer tick;
    QObject::connect(&tick, &QTimer::timeout, [&] {
      const qint64 now = clock.elapsed();
      worst = std::max(worst, now - last);
      last = now;
    });
    QVERIFY(w.propagate(true));
    clock.start();
    tick.start(10);
    QVERIFY(waitUntil([&] { return w.session().hasMask(3); }, 120000));
    QVERIFY(w.propagationRunning());
    w.cancelPropagation();
    QVERIFY(waitUntil([&] { return !w.propagationRunning(); }, 60000));
    tick.stop();
    QCoreApplication::processEvents();
    qInfo("event-loop latency during propagation: worst gap %lld ms between 10 ms ticks over %lld ms", worst, clock.elapsed());
    QVERIFY2(worst < 100, qPrintable(QString("worst event-loop gap %1 ms").arg(worst)));
    int done = 0;
    while (w.session().hasMask(done + 1)) ++done;
    QVERIFY(done >= 3);
    QVERIFY(done < w.session().frameCount() - 1);
    for (int64_t k = done + 1; k < w.session().frameCount(); ++k) QVERIFY(!w.session().hasMask(k));
    QVERIFY(w.lastMessage().contains("cancelled"));
    // The progress bar and the fps/ETA line reset after Cancel.
    auto* bar = w.findChild<QProgressBar*>("propagationProgress");
    auto* rate = w.findChild<QLabel*>("propagationRate");
    QVERIFY(bar && rate);
    QCOMPARE(bar->value(), 0);
    QVERIFY2(rate->text().isEmpty(), qPrintable(rate->text()));
  }

  // Clicking a pixel gives a similarity map whose maximum on the same frame is at that pixel.
  void similarityMaximumAtClick() {
    MainWindow w;
    w.useBaseline("random");
    QVERIFY(w.openVideo(kVideo));
    for (const QPointF p : {QPointF(200, 120), QPointF(37, 150)}) {
      w.inspectAt(p);
      QVERIFY(waitUntil([&] { return w.similarityCurrent().defined() && !w.featureJob().running(); }, 60000));
      QCoreApplication::processEvents();
      const auto& map = w.similarityCurrent();
      QCOMPARE(map.size(0), int64_t(w.session().height()));
      QCOMPARE(map.size(1), int64_t(w.session().width()));
      const float at = map[int64_t(p.y())][int64_t(p.x())].item<float>();
      QVERIFY(std::abs(at - 1.0f) < 1e-4);  // a unit feature with itself
      QVERIFY(at >= map.max().item<float>() - 1e-6f);
      QVERIFY(w.similarityOther().defined());
    }
    // Both views carry a colour bar; the five best matches' numbers on the other frame overlap
    // neither each other nor the crosses (they are close together on this clip).
    w.show();
    QVERIFY(QTest::qWaitForWindowExposed(&w));
    QVERIFY(w.view().colourBarShown());
    ui::FrameView* other = nullptr;
    for (auto* v : w.findChildren<ui::FrameView*>()) other = v != &w.view() ? v : other;
    QVERIFY(other && other->colourBarShown());
    other->grab();   // paints: places the labels
    const auto& labels = other->markerLabels();
    QCOMPARE(int(labels.size()), 5);
    for (size_t i = 0; i < labels.size(); ++i)
      for (size_t j = i + 1; j < labels.size(); ++j) QVERIFY2(!labels[i].intersects(labels[j]), qPrintable(QString("%1 %2").arg(i).arg(j)));
    // Back in the masks view: no colour bar, and the Inspect dock shows no unrelated frame.
    w.setViewMode(ui::ViewMode::Masks);
    QVERIFY(!w.view().colourBarShown());
    QVERIFY(!other->hasImage());
    QVERIFY(!other->colourBarShown());
  }

  // Masks and anchors are saved into the workspace as they change; reopening resumes them.
  void workspaceResumes() {
    QTemporaryDir tmp;
    {
      MainWindow w;
      QVERIFY(w.openVideo(kVideo, tmp.filePath("ws")));
      w.setCurrentFrame(4);
      w.session().paintStroke(4, {QPointF(50, 50)}, 10, 2);
    }
    // An object found in a mask but missing from the stored list is still offered.
    {
      const std::string file = tmp.filePath("ws/workspace.json").toStdString();
      std::ifstream in(file);
      auto j = nlohmann::json::parse(in);
      in.close();
      j["objects"] = {1};
      std::ofstream(file) << j.dump();
    }
    MainWindow again;
    QVERIFY(again.openVideo(kVideo, tmp.filePath("ws")));
    QVERIFY(again.session().isAnchor(4));
    QCOMPARE(int(*again.session().mask(4).px(50, 50)), 2);
    QVERIFY(std::find(again.session().objects().begin(), again.session().objects().end(), 2) != again.session().objects().end());
  }

  // Bad input: a message in the window, what was open stays open, nothing changes.
  void badInputIsReported() {
    QTemporaryDir tmp;
    MainWindow w;
    QVERIFY(w.openVideo(kVideo));
    QVERIFY(!w.openVideo(tmp.filePath("missing.mp4")));
    QVERIFY(w.lastMessage().contains("missing.mp4"));
    QCOMPARE(w.session().path(), kVideo);
    // A mask of another size.
    Image small(32, 24, 1, 1);
    mask_write(tmp.filePath("small.png").toStdString(), small);
    QVERIFY(!w.importMask(tmp.filePath("small.png")));
    QVERIFY(w.lastMessage().contains("32x24"));
    QVERIFY(!w.session().hasMask(0));
    // A checkpoint that does not load.
    QFile bad(tmp.filePath("bad.ckpt"));
    QVERIFY(bad.open(QIODevice::WriteOnly));
    bad.write("not a checkpoint");
    bad.close();
    QVERIFY(!w.useCheckpoint(tmp.filePath("bad.ckpt")));
    QVERIFY(w.lastMessage().contains("bad.ckpt"));
    QVERIFY(!w.lastMessage().contains('\n'));   // one line, no LibTorch backtrace
    QVERIFY(!w.propagate(true));  // frame 0 is not annotated
  }
};

QTEST_MAIN(StudioTest)
#include "test_studio.moc"
