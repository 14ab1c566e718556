// Helpers for the Qt tests.
#pragma once

#include <QCoreApplication>
#include <QElapsedTimer>

#include <functional>

namespace corrtrack::test {

// Runs the event loop until `done()` holds or `ms` milliseconds pass; false on time-out.
inline bool waitUntil(const std::function<bool()>& done, int ms) {
  QElapsedTimer t;
  t.start();
  while (!done()) {
    if (t.elapsed() > ms) return false;
    QCoreApplication::processEvents(QEventLoop::AllEvents, 20);
  }
  return true;
}

}  // namespace corrtrack::test
