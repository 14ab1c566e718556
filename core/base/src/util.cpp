// Logging, progress, resource measurement and atomic file writes used by every module.
#include "corrtrack/core.h"

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>
#include <csignal>
#include <unistd.h>

namespace fs = std::filesystem;

namespace corrtrack {

namespace {
// More compute threads than this per core only thrash (and thousands of threads exhaust memory).
constexpr int kMaxThreadsPerCore = 4;
}  // namespace

namespace {
std::mutex g_log_mutex;
std::atomic<int> g_verbosity{1};

spdlog::level::level_enum level_for(int verbosity) {
  if (verbosity <= 0) return spdlog::level::err;
  if (verbosity == 1) return spdlog::level::info;
  return spdlog::level::debug;
}

int64_t read_status_kb(const char* key) {
  std::ifstream f("/proc/self/status");
  std::string line;
  const size_t n = std::strlen(key);
  while (std::getline(f, line)) {
    if (line.compare(0, n, key) == 0) {
      return std::stoll(line.substr(n + 1)) * 1024;
    }
  }
  return 0;
}
}  // namespace

std::shared_ptr<spdlog::logger> log_get(const std::string& module) {
  std::lock_guard<std::mutex> lock(g_log_mutex);
  auto logger = spdlog::get(module);
  if (!logger) {
    // Logs go to stderr so that JSON printed on stdout stays machine-readable.
    logger = spdlog::stderr_color_mt(module);
    logger->set_pattern("[%H:%M:%S] [%n] %^%l%$: %v");
    logger->set_level(level_for(g_verbosity));
  }
  return logger;
}

void log_set_verbosity(int verbosity) {
  g_verbosity = verbosity;
  spdlog::apply_all([&](const std::shared_ptr<spdlog::logger>& l) { l->set_level(level_for(verbosity)); });
}

int log_verbosity() { return g_verbosity; }

int64_t peak_rss_bytes() { return read_status_kb("VmHWM:"); }
int64_t current_rss_bytes() { return read_status_kb("VmRSS:"); }

bool peak_rss_reset() {
  std::ofstream f("/proc/self/clear_refs");
  if (!f) return false;
  f << "5";
  return static_cast<bool>(f);
}

void openmp_passive_wait_ensure(char** argv) {
  if (std::getenv("OMP_WAIT_POLICY") != nullptr) return;
  if (::setenv("OMP_WAIT_POLICY", "PASSIVE", 1) != 0) return;
  ::execv("/proc/self/exe", argv);
  // No /proc (or exec refused): go on with the default policy, and say so (benchmarks report the
  // variable, which this process's OpenMP never read).
  ::unsetenv("OMP_WAIT_POLICY");
}

std::string omp_wait_policy() {
  const char* v = std::getenv("OMP_WAIT_POLICY");
  return v ? v : "default";
}

void threads_set(int n) {
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  if (n > kMaxThreadsPerCore * cores) {
    throw SettingError("threads", "must be at most " + std::to_string(kMaxThreadsPerCore * cores) + " on this machine (" +
                                      std::to_string(cores) + " cores), got " + std::to_string(n));
  }
  if (n < 0) throw SettingError("threads", "must be >= 0 (0 = all cores), got " + std::to_string(n));
  if (n == 0) n = cores;
  torch::set_num_threads(n);
  // Denormal products (near-zero features) are very slow on x86; flushing them changes nothing visible.
  at::globalContext().setFlushDenormal(true);
}

double time_now_s() {
  using clock = std::chrono::steady_clock;
  return std::chrono::duration<double>(clock::now().time_since_epoch()).count();
}

void StageTimer::add(const std::string& stage, double seconds) {
  for (auto& s : m_stages) {
    if (s.first == stage) { s.second += seconds; return; }
  }
  m_stages.emplace_back(stage, seconds);
}

double StageTimer::get(const std::string& stage) const {
  for (const auto& s : m_stages) if (s.first == stage) return s.second;
  return 0.0;
}

ProgressMeter::ProgressMeter(int64_t total, std::string unit, ProgressCallback cb)
    : m_total(total), m_unit(std::move(unit)), m_cb(std::move(cb)), m_t0(time_now_s()) {}

ProgressInfo ProgressMeter::info() const {
  ProgressInfo p;
  p.done = m_done;
  p.total = m_total;
  p.unit = m_unit;
  const double dt = time_now_s() - m_t0;
  p.rate = dt > 0 ? m_done / dt : 0.0;
  p.eta_s = (m_total > 0 && p.rate > 0) ? (m_total - m_done) / p.rate : 0.0;
  return p;
}

void ProgressMeter::step(int64_t n) {
  m_done += n;
  const ProgressInfo p = info();
  if (m_cb) { m_cb(p); return; }
  const double now = time_now_s();
  if (now - m_last_log >= 1.0 || (m_total > 0 && m_done >= m_total)) {
    m_last_log = now;
    if (m_total > 0) {
      log_get("core")->info("{}/{} {} ({:.2f} {}/s, ETA {:.0f} s)", p.done, p.total, p.unit, p.rate, p.unit, p.eta_s);
    } else {
      log_get("core")->info("{} {} ({:.2f} {}/s)", p.done, p.unit, p.rate, p.unit);
    }
  }
}

namespace {

// Removes the temporaries `<dir>/<prefix>[...]<marker><PID>` of processes that no longer exist
// (a killed run leaves them; the next write there cleans them). Those of live processes stay.
void stale_temps_remove(const fs::path& dir, const std::string& prefix, const std::string& marker) {
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir.empty() ? fs::path(".") : dir, ec)) {
    const std::string name = e.path().filename().string();
    const size_t at = name.rfind(marker);
    if (name.compare(0, prefix.size(), prefix) != 0 || at == std::string::npos || at < prefix.size()) continue;
    const std::string pid = name.substr(at + marker.size());
    if (pid.empty() || pid.find_first_not_of("0123456789") != std::string::npos || pid.size() > 10) continue;
    const long long id = std::stoll(pid);
    if (id <= 0 || id > std::numeric_limits<pid_t>::max()) continue;
    if (::kill(static_cast<pid_t>(id), 0) == -1 && errno == ESRCH) fs::remove_all(e.path(), ec);
  }
}

// The `.NAME.tmp-PID` files of dead processes in `dir`, removed once per folder and process: an
// atomic write happens per mask, and scanning a folder of thousands of masks each time would
// make writing them quadratic.
void stale_temp_files_remove_once(const fs::path& dir) {
  static std::mutex mutex;
  static std::set<std::string> done;
  std::lock_guard<std::mutex> lock(mutex);
  if (!done.insert(dir.string()).second) return;
  stale_temps_remove(dir, ".", ".tmp-");
}

}  // namespace

std::string file_replace_target(const std::string& path) {
  fs::path p(path);
  std::error_code ec;
  // A symlink is kept: the file it points to is replaced (a dangling link's target is created).
  for (int hops = 0; fs::is_symlink(fs::symlink_status(p, ec)); ++hops) {
    if (hops >= 40) throw Error("cannot write '" + path + "': too many levels of symbolic links");
    const fs::path target = fs::read_symlink(p, ec);
    if (ec) throw Error("cannot write '" + path + "': unreadable symbolic link");
    p = target.is_absolute() ? target : p.parent_path() / target;
  }
  const auto st = fs::status(p, ec);
  if (fs::exists(st) && !fs::is_regular_file(st)) {
    throw Error("cannot write '" + path + "': it is not a regular file (a device, pipe, socket or folder); give a file path");
  }
  return p.string();
}

std::string file_temp_sibling(const std::string& path) {
  fs::path p(file_replace_target(path));
  stale_temp_files_remove_once(p.parent_path());
  std::ostringstream name;
  name << "." << p.filename().string() << ".tmp-" << ::getpid();
  return (p.parent_path() / name.str()).string();
}

void file_commit(const std::string& tmp, const std::string& path) {
  std::error_code ec;
  std::string target;
  try {
    target = file_replace_target(path);  // checked again: the path may have changed meanwhile
  } catch (const Error&) {
    fs::remove(tmp, ec);
    throw;
  }
  fs::rename(tmp, target, ec);
  if (ec) {
    fs::remove(tmp, ec);
    throw Error("cannot write '" + path + "': rename from temporary file failed");
  }
}

void file_write_atomic(const std::string& path, const std::string& bytes) {
  const std::string tmp = file_temp_sibling(path);
  auto fail = [&](const std::string& why) {
    std::error_code ec;
    fs::remove(tmp, ec);
    throw Error("cannot write '" + path + "': " + why);
  };
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    if (!f) fail(std::strerror(errno));
    f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    f.flush();
    if (!f) fail("write failed (disk full?)");
    f.close();
    if (f.fail()) fail("write failed (disk full?)");
  }
  file_commit(tmp, path);
}

void dir_ensure_writable(const std::string& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec || !fs::is_directory(dir)) {
    throw Error("cannot create output folder '" + dir + "': " + (ec ? ec.message() : "not a folder"));
  }
  if (::access(dir.c_str(), W_OK) != 0) {
    throw Error("output folder '" + dir + "' is not writable");
  }
}

StagedFolder::StagedFolder(const std::string& final_dir) : m_final(final_dir) {
  m_created_final = !fs::exists(final_dir);
  dir_ensure_writable(final_dir);
  fs::path f = fs::absolute(final_dir).lexically_normal();
  if (f.filename().empty()) f = f.parent_path();
  const std::string name = "." + f.filename().string();
  stale_temps_remove(f.parent_path(), name, ".partial-");
  m_stage = (f.parent_path() / (name + ".partial-" + std::to_string(::getpid()))).string();
  std::error_code ec;
  fs::remove_all(m_stage, ec);
  fs::create_directories(m_stage, ec);
  if (ec) throw Error("cannot create staging folder '" + m_stage + "' next to '" + final_dir + "': " + ec.message());
}

StagedFolder::~StagedFolder() {
  if (!m_committed) {
    std::error_code ec;
    fs::remove_all(m_stage, ec);
    if (m_created_final && fs::is_empty(m_final, ec) && !ec) fs::remove(m_final, ec);
  }
}

void StagedFolder::commit() {
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(m_stage, ec)) {
    fs::rename(e.path(), fs::path(m_final) / e.path().filename(), ec);
    if (ec) throw Error("cannot move results into '" + m_final + "': " + ec.message());
  }
  fs::remove_all(m_stage, ec);
  m_committed = true;
}

torch::Device device_parse(const std::string& name) {
  if (name == "cpu") return torch::kCPU;
  if (name == "cuda") {
    if (!torch::cuda::is_available()) throw Error("device cuda: no CUDA device is available to this build");
    at::globalContext().setBenchmarkCuDNN(true);  // fixed sizes: let cuDNN pick the fastest kernels
    return torch::kCUDA;
  }
  if (name == "auto") return device_parse(torch::cuda::is_available() ? "cuda" : "cpu");
  throw Error("unknown device '" + name + "': use cpu, cuda or auto");
}

std::string error_message(const std::exception& e) {
  std::string m;
  if (const auto* c10e = dynamic_cast<const c10::Error*>(&e)) m = c10e->what_without_backtrace();
  else if (dynamic_cast<const std::bad_alloc*>(&e)) m = "out of memory: the input or the settings ask for more than this machine has";
  else m = e.what();
  while (!m.empty() && (m.back() == '\n' || m.back() == ' ')) m.pop_back();
  for (auto& c : m) if (c == '\n' || c == '\r') c = ' ';
  return m;
}

}  // namespace corrtrack
