// The read-ahead and write-behind threads of a pipelined propagation.
#include "frame_pipeline.h"

#include <algorithm>
#include <stdexcept>
#include <string>

namespace corrtrack::detail {

FrameReadAhead::FrameReadAhead(FrameSource& source, std::vector<int64_t> order, int depth)
    : m_source(source), m_order(std::move(order)), m_depth(size_t(std::max(1, depth))) {
  m_thread = std::thread([this] { loop(); });
}

FrameReadAhead::~FrameReadAhead() {
  {
    std::lock_guard<std::mutex> lock(m_mutex);
    m_stop = true;
  }
  m_changed.notify_all();
  m_thread.join();
}

void FrameReadAhead::loop() {
  for (size_t i = 0; i < m_order.size(); ++i) {
    {
      std::unique_lock<std::mutex> lock(m_mutex);
      m_changed.wait(lock, [&] { return m_stop || m_ready.size() < m_depth; });
      if (m_stop) return;
    }
    Image frame;
    std::exception_ptr error;
    try {
      frame = m_source.frame(m_order[i]);
    } catch (...) {
      error = std::current_exception();
    }
    {
      std::lock_guard<std::mutex> lock(m_mutex);
      if (error) m_error = error;
      else m_ready.push_back(std::move(frame));
    }
    m_changed.notify_all();
    if (error) return;   // the reader gets the error at this frame; nothing after it is read
  }
}

Image FrameReadAhead::frame(int64_t k) {
  std::unique_lock<std::mutex> lock(m_mutex);
  if (m_next >= m_order.size() || m_order[m_next] != k) {
    throw std::logic_error("frame read ahead out of order: asked for " + std::to_string(k));
  }
  m_changed.wait(lock, [&] { return !m_ready.empty() || m_error; });
  if (m_ready.empty()) std::rethrow_exception(m_error);
  Image f = std::move(m_ready.front());
  m_ready.pop_front();
  ++m_next;
  lock.unlock();
  m_changed.notify_all();
  return f;
}

SerialWorker::SerialWorker(int depth) : m_depth(size_t(std::max(1, depth))) {
  m_thread = std::thread([this] { loop(); });
}

SerialWorker::~SerialWorker() {
  {
    std::lock_guard<std::mutex> lock(m_mutex);
    m_stop = true;
    m_tasks.clear();
  }
  m_changed.notify_all();
  m_thread.join();
}

void SerialWorker::loop() {
  std::unique_lock<std::mutex> lock(m_mutex);
  for (;;) {
    m_changed.wait(lock, [&] { return m_stop || !m_tasks.empty(); });
    if (m_tasks.empty()) return;   // stopping with nothing left
    auto task = std::move(m_tasks.front());
    m_tasks.pop_front();
    m_busy = true;
    lock.unlock();
    m_changed.notify_all();
    std::exception_ptr error;
    try {
      task();
    } catch (...) {
      error = std::current_exception();
    }
    lock.lock();
    m_busy = false;
    if (error && !m_error) {
      m_error = error;
      m_tasks.clear();
    }
    m_changed.notify_all();
  }
}

void SerialWorker::rethrow_locked() {
  if (m_error) {
    auto e = m_error;
    m_error = nullptr;
    std::rethrow_exception(e);
  }
}

void SerialWorker::post(std::function<void()> task) {
  std::unique_lock<std::mutex> lock(m_mutex);
  m_changed.wait(lock, [&] { return m_error || m_tasks.size() < m_depth; });
  rethrow_locked();
  m_tasks.push_back(std::move(task));
  lock.unlock();
  m_changed.notify_all();
}

void SerialWorker::finish() {
  std::unique_lock<std::mutex> lock(m_mutex);
  m_changed.wait(lock, [&] { return m_error || (m_tasks.empty() && !m_busy); });
  rethrow_locked();
}

}  // namespace corrtrack::detail
