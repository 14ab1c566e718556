// Decoding ahead and writing behind, each on a thread of its own, so that the propagation's compute
// thread neither waits for a frame to be decoded nor for a mask to be written (on a GPU the
// compute of a frame takes about as long as decoding and writing it).
//
// Usage (the engine, with LabelPropagator::set_pipelined):
//   FrameReadAhead ahead(source, order, 4);     // order: every frame index the run will read
//   Image f = ahead.frame(order[0]);            // then order[1], ... in that order
//   SerialWorker writer(8);
//   writer.post([=] { sink(k, mask, rgb); });   // runs later, in posting order
//   writer.finish();                            // waits; rethrows a task's exception
#pragma once

#include "corrtrack/video.h"

#include <condition_variable>
#include <deque>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace corrtrack::detail {

// Reads `order` from `source` on its own thread, at most `depth` frames ahead of the reader. While
// it lives, nothing else may read `source`. A decoding error is rethrown by frame() for the frame
// it happened on.
class FrameReadAhead {
 public:
  FrameReadAhead(FrameSource& source, std::vector<int64_t> order, int depth);
  ~FrameReadAhead();
  FrameReadAhead(const FrameReadAhead&) = delete;
  FrameReadAhead& operator=(const FrameReadAhead&) = delete;
  // The next frame of the order, which must be `k` (throws std::logic_error otherwise).
  Image frame(int64_t k);

 private:
  void loop();
  FrameSource& m_source;
  const std::vector<int64_t> m_order;
  const size_t m_depth;
  size_t m_next = 0;                  // index into m_order of the next frame() call
  std::mutex m_mutex;
  std::condition_variable m_changed;
  std::deque<Image> m_ready;          // frames m_next, m_next + 1, ...
  std::exception_ptr m_error;         // of the frame after the ready ones
  bool m_stop = false;
  std::thread m_thread;
};

// Runs posted tasks one at a time, in order, on its own thread; post() blocks while `depth` tasks
// wait. After a task throws, later tasks are dropped and the exception is rethrown by the next
// post() or by finish(). The destructor drops what has not run and joins.
class SerialWorker {
 public:
  explicit SerialWorker(int depth);
  ~SerialWorker();
  SerialWorker(const SerialWorker&) = delete;
  SerialWorker& operator=(const SerialWorker&) = delete;
  void post(std::function<void()> task);
  // Waits until every posted task has run; rethrows the first exception a task threw.
  void finish();

 private:
  void loop();
  void rethrow_locked();
  const size_t m_depth;
  std::mutex m_mutex;
  std::condition_variable m_changed;
  std::deque<std::function<void()>> m_tasks;
  bool m_busy = false, m_stop = false;
  std::exception_ptr m_error;
  std::thread m_thread;
};

}  // namespace corrtrack::detail
