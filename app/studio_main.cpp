// corrtrack-studio: the Qt6 desktop application. Argument parsing only; the window lives in ui/.
//   corrtrack-studio [VIDEO|FOLDER] [--mask PNG] [--workspace DIR | --no-autosave] [--checkpoint CKPT | --features F]
//   Offscreen rendering for READMEs and tests:
//   corrtrack-studio VIDEO --mask PNG --propagate 10 --frame 8 --inspect 300,200 --screenshot out.png
#include <torch/torch.h>

#include "corrtrack/ui/main_window.h"

#include <QApplication>
#include <QCommandLineParser>
#include <QElapsedTimer>
#include <QEventLoop>
#include <QThread>
#include <QTimer>

#include <algorithm>
#include <cstdio>
#include <vector>

#include <nlohmann/json.hpp>

namespace {

// Runs the event loop until `done` returns true or `seconds` pass; false on timeout. Between
// checks the loop sleeps in exec() (processEvents alone returns at once when nothing is queued,
// and polling it would keep a core busy that the worker needs).
bool waitUntil(const std::function<bool()>& done, double seconds) {
  QElapsedTimer t;
  t.start();
  while (!done()) {
    if (t.elapsed() > seconds * 1000) return false;
    QEventLoop pause;
    QTimer::singleShot(20, &pause, &QEventLoop::quit);
    pause.exec();
  }
  return true;
}

int fail(const QString& message) {
  std::fprintf(stderr, "corrtrack-studio: error: %s\n", message.toLocal8Bit().constData());
  return 1;
}

// Steps n frames forward, then n back, each step drawn (the window's refresh included); JSON,
// with the time openVideo took (`openMs`).
int benchSteps(corrtrack::ui::MainWindow& w, int n, double openMs) {
  if (!w.session().isOpen()) return fail("--bench-steps needs a video");
  w.show();
  QCoreApplication::processEvents();
  auto run = [&](int dir) {
    std::vector<double> ms;
    for (int i = 0; i < n; ++i) {
      const int64_t next = w.currentFrame() + dir;
      if (next < 0 || next >= w.session().frameCount()) break;
      QElapsedTimer t;
      t.start();
      w.setCurrentFrame(next);
      QCoreApplication::processEvents();
      ms.push_back(double(t.nsecsElapsed()) / 1e6);
    }
    std::sort(ms.begin(), ms.end());
    double sum = 0;
    for (double v : ms) sum += v;
    return nlohmann::json{{"steps", ms.size()}, {"mean_ms", ms.empty() ? 0.0 : sum / double(ms.size())},
                          {"median_ms", ms.empty() ? 0.0 : ms[ms.size() / 2]}, {"max_ms", ms.empty() ? 0.0 : ms.back()}};
  };
  const auto forward = run(1);
  const auto backward = run(-1);
  const auto& s = w.session();
  nlohmann::json j = {{"video", s.path().toStdString()}, {"frames", s.frameCount()}, {"width", s.width()}, {"height", s.height()},
                      {"open_ms", openMs},
                      {"step_forward", forward}, {"step_backward", backward}, {"masks", s.maskCount()},
                      {"mask_bytes", s.maskBytes()}, {"raw_mask_bytes", int64_t(s.maskCount()) * s.width() * s.height()},
                      {"peak_rss_mb", double(corrtrack::peak_rss_bytes()) / (1 << 20)}};
  std::printf("%s\n", j.dump(2).c_str());
  return 0;
}


}  // namespace

int main(int argc, char** argv) {
  corrtrack::openmp_passive_wait_ensure(argv);
  QApplication app(argc, argv);
  QApplication::setApplicationName("CorrTrack Studio");
  QApplication::setApplicationVersion(CORRTRACK_VERSION);
  // One core stays free for the window while a propagation or feature job runs.
  torch::set_num_threads(std::max(1, QThread::idealThreadCount() - 1));
  QCommandLineParser p;
  p.setApplicationDescription("CorrTrack Studio: paint a mask, propagate it through the video, inspect features.");
  p.addHelpOption();
  p.addVersionOption();
  p.addPositionalArgument("video", "Video file or frame folder to open");
  const QCommandLineOption mask("mask", "Mask PNG for the first frame (or --frame)", "png");
  const QCommandLineOption workspace("workspace", "Workspace folder: masks are saved there as you go (default: the video's own, VIDEO.corrtrack/)", "dir");
  const QCommandLineOption noAutosave("no-autosave", "Without --workspace, save nothing until File > Save workspace as (a scratch session)");
  const QCommandLineOption checkpoint("checkpoint", "Encoder checkpoint for features", "ckpt");
  const QCommandLineOption features("features", "default | pixels | random", "name", "default");
  const QCommandLineOption screenshot("screenshot", "Render the window offscreen into this PNG and exit", "png");
  const QCommandLineOption propagateN("propagate", "Before the screenshot: propagate the mask this many frames", "n");
  const QCommandLineOption frame("frame", "Frame to show; --mask is imported on it", "k", "0");
  const QCommandLineOption show("show", "Frame to show at the end (default: --frame)", "k");
  const QCommandLineOption inspect("inspect", "Before the screenshot: similarity of pixel X,Y", "x,y");
  const QCommandLineOption other("other", "The other frame of the similarity view", "k");
  const QCommandLineOption view("view", "masks | similarity | pca", "mode", "masks");
  const QCommandLineOption size("size", "Window size WxH", "wxh", "1400x860");
  const QCommandLineOption bench("bench-steps", "After the other options: step N frames forward from --show/--frame, then N back, "
                                 "and print JSON (latency per step, masks' memory, peak RSS)", "n");
  for (const auto& o : {mask, workspace, noAutosave, checkpoint, features, screenshot, propagateN, frame, show, bench, inspect, other, view, size}) p.addOption(o);
  p.process(app);

  const bool shot = p.isSet(screenshot) || p.isSet(bench);
  // An offscreen render neither restores the last layout nor writes a workspace: the same
  // arguments give the same picture, and rendering leaves no files behind.
  corrtrack::ui::MainWindow w(nullptr, !shot);
  w.setAutosave(!shot && !p.isSet(noAutosave));
  const QStringList wh = p.value(size).split('x');
  if (wh.size() == 2) w.resize(wh[0].toInt(), wh[1].toInt());
  if (p.isSet(checkpoint)) {
    if (!w.useCheckpoint(p.value(checkpoint)) && shot) return fail(w.lastMessage());
  } else if (p.value(features) != "default") {
    const QString f = p.value(features);
    if (f != "pixels" && f != "random") return fail("--features must be default, pixels or random, got '" + f + "'");
    w.useBaseline(f);
  }
  const auto args = p.positionalArguments();
  QElapsedTimer opening;
  opening.start();
  if (!args.isEmpty() && !w.openVideo(args[0], p.value(workspace)) && shot) return fail(w.lastMessage());
  const double openMs = double(opening.nsecsElapsed()) / 1e6;   // the frame index is built here
  if (p.isSet(mask)) {
    w.setCurrentFrame(p.value(frame).toLongLong());   // the mask belongs to --frame (0 unless given)
    if (!w.importMask(p.value(mask)) && shot) return fail(w.lastMessage());
  }
  if (p.isSet(propagateN)) {
    // Propagates from the annotated frame over the next N frames (the whole video if N exceeds it).
    const int n = p.value(propagateN).toInt();
    if (!w.propagate(true)) return fail(w.lastMessage());
    const qint64 stop = w.currentFrame() + n;
    waitUntil([&] { return !w.propagationRunning() || w.session().hasMask(stop); }, 1800);
    w.cancelPropagation();
    w.propagationJob().wait();
    QCoreApplication::processEvents();
  }
  if (p.isSet(other)) w.setOtherFrame(p.value(other).toLongLong());
  w.setCurrentFrame(p.value(p.isSet(show) ? show : frame).toLongLong());
  if (p.value(view) == "pca") {
    w.setViewMode(corrtrack::ui::ViewMode::Pca);
    waitUntil([&] { return !w.featureJob().running(); }, 600);
    QCoreApplication::processEvents();
  }
  if (p.isSet(inspect)) {
    const QStringList xy = p.value(inspect).split(',');
    if (xy.size() != 2) return fail("--inspect must look like 300,200");
    w.inspectAt(QPointF(xy[0].toDouble(), xy[1].toDouble()));
    waitUntil([&] { return w.similarityCurrent().defined(); }, 600);
  }
  if (p.isSet(bench)) return benchSteps(w, p.value(bench).toInt(), openMs);
  if (shot) {
    w.show();
    QCoreApplication::processEvents();
    // A local loop: QCoreApplication::quit would close the window, which asks about unsaved edits.
    QEventLoop settle;
    QTimer::singleShot(200, &settle, &QEventLoop::quit);
    settle.exec();
    if (!w.grab().save(p.value(screenshot))) return fail("cannot write " + p.value(screenshot));
    std::printf("%s\n", p.value(screenshot).toLocal8Bit().constData());
    return 0;
  }
  w.show();
  return app.exec();
}
