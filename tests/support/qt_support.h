// Helpers for the Qt tests.
#pragma once

#include <QCoreApplication>
#include <QElapsedTimer>
#include <QEventLoop>
#include <QTimer>

#include <functional>

namespace corrtrack::test {

// Runs the event loop until `done()` holds or `ms` milliseconds pass; false on time-out.
inline bool waitUntil(const std::function<bool()>& done, int ms) {
  QElapsedTimer t;
  t.start();
  while (!done()) {
    if (t.elapsed() > ms) return false;
    // Sleep in the event loop between checks: polling processEvents would keep a core busy
    // that the worker under test needs.
    QEventLoop pause;
    QTimer::singleShot(10, &pause, &QEventLoop::quit);
    pause.exec();
  }
  return true;
}

}  // namespace corrtrack::test
