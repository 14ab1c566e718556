// dist_connect on c10d: a TCP store hosted by rank 0 for the rendezvous and a Gloo process group
// for the collectives. Built where LibTorch has c10d and the Gloo headers are installed
// (Debian: libgloo-dev); otherwise process_group_none.cpp says so.
#include "corrtrack/distributed.h"

#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <algorithm>

#ifdef CORRTRACK_QUIET_GLOG
#include <glog/logging.h>
#endif

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

namespace corrtrack {

namespace {

using Millis = std::chrono::milliseconds;

Millis millis(double s) { return Millis(int64_t(s * 1000.0)); }

// Rank 0's store listens on every interface at the port: refuse a port in use before c10d
// tries (its own message is a multi-line backtrace).
void port_check_free(int port) {
  const int fd = ::socket(AF_INET6, SOCK_STREAM, 0);
  const int fd4 = fd < 0 ? ::socket(AF_INET, SOCK_STREAM, 0) : -1;
  int err = 0;
  if (fd >= 0) {
    sockaddr_in6 a{};
    a.sin6_family = AF_INET6;
    a.sin6_addr = in6addr_any;
    a.sin6_port = htons(uint16_t(port));
    if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) err = errno;
    ::close(fd);
  } else if (fd4 >= 0) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_ANY);
    a.sin_port = htons(uint16_t(port));
    if (::bind(fd4, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) err = errno;
    ::close(fd4);
  }
  if (err == EADDRINUSE) {
    throw SettingError("master-port", std::to_string(port) + " is in use on this machine (another run?); choose another port");
  }
}

std::string first_line(const std::string& s) { return s.substr(0, s.find('\n')); }

bool loopback(const std::string& addr) { return addr == "localhost" || addr.rfind("127.", 0) == 0 || addr == "::1"; }

class GlooGroup : public Distributed {
 public:
  explicit GlooGroup(const DistConfig& c) : m_rank(c.rank), m_world(c.world_size), m_timeout(millis(c.timeout_s)) {
#ifdef CORRTRACK_QUIET_GLOG
    FLAGS_minloglevel = std::max(FLAGS_minloglevel, 3);   // c10d's own lines: every failure below is reported in one
#endif
    if (c.rank == 0) port_check_free(c.master_port);
    c10d::TCPStoreOptions so;
    so.port = uint16_t(c.master_port);
    so.isServer = c.rank == 0;
    so.numWorkers = size_t(c.world_size);
    so.waitWorkers = true;
    so.timeout = m_timeout;
    const std::string where = c.master_addr + ":" + std::to_string(c.master_port);
    try {
      m_store = c10::make_intrusive<c10d::TCPStore>(c.master_addr, so);
    } catch (const std::exception& e) {
      if (c.rank == 0) {
        throw Error("rank 0: not all " + std::to_string(c.world_size) + " ranks joined at " + where + " within " +
                    std::to_string(int(c.timeout_s)) + " s (--dist-timeout): " + first_line(e.what()));
      }
      throw Error("rank " + std::to_string(c.rank) + ": cannot reach the master at " + where + " within " +
                  std::to_string(int(c.timeout_s)) + " s (--master-addr, --master-port; is rank 0 running?): " + first_line(e.what()));
    }
    auto opts = c10d::ProcessGroupGloo::Options::create(m_timeout);
    const char* iface = std::getenv("GLOO_SOCKET_IFNAME");
    if (iface && *iface) opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(iface));
    else if (loopback(c.master_addr)) opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
    else opts->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
    opts->threads = 2;
    try {
      m_group = c10::make_intrusive<c10d::ProcessGroupGloo>(c10::make_intrusive<c10d::PrefixStore>("corrtrack", m_store), c.rank,
                                                             c.world_size, opts);
    } catch (const std::exception& e) {
      throw Error("rank " + std::to_string(c.rank) + ": the Gloo process group did not form: " + first_line(e.what()));
    }
  }
  int rank() const override { return m_rank; }
  int world_size() const override { return m_world; }
  std::string backend() const override { return "gloo"; }

  // Gloo works on host memory: tensors elsewhere (CUDA) go through a host copy.
  void all_reduce_sum(std::vector<torch::Tensor>& t) override {
    for (auto& x : t) {
      std::vector<torch::Tensor> one{host(x)};
      wait(m_group->allreduce(one), "all-reduce");
      if (!one[0].is_same(x)) x.copy_(one[0]);
    }
  }
  torch::Tensor all_gather(const torch::Tensor& x) override {
    std::vector<torch::Tensor> in{host(x.contiguous())};
    std::vector<std::vector<torch::Tensor>> out(1);
    for (int r = 0; r < m_world; ++r) out[0].push_back(torch::empty_like(in[0]));
    wait(m_group->allgather(out, in), "all-gather");
    return torch::cat(out[0], 0).to(x.device());
  }
  void broadcast(std::vector<torch::Tensor>& t, int root) override {
    c10d::BroadcastOptions o;
    o.rootRank = root;
    for (auto& x : t) {
      std::vector<torch::Tensor> one{host(x)};
      wait(m_group->broadcast(one, o), "broadcast");
      if (!one[0].is_same(x)) x.copy_(one[0]);
    }
  }
  void barrier() override { wait(m_group->barrier(), "barrier"); }

 private:
  // A rank that died or hangs surfaces here: Gloo reports the closed connection or the timeout.
  void wait(const c10::intrusive_ptr<c10d::Work>& work, const char* what) {
    try {
      work->wait(m_timeout);
    } catch (const std::exception& e) {
      throw Error("rank " + std::to_string(m_rank) + ": " + what + " across " + std::to_string(m_world) +
                  " ranks failed (another rank died, or hung longer than --dist-timeout): " + first_line(e.what()));
    }
  }

  static torch::Tensor host(const torch::Tensor& x) { return x.is_cpu() ? x : x.to(torch::kCPU); }

  int m_rank, m_world;
  Millis m_timeout;
  c10::intrusive_ptr<c10d::Store> m_store;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> m_group;
};

}  // namespace

bool dist_available() { return true; }

std::shared_ptr<Distributed> dist_connect(const DistConfig& c) {
  dist_config_validate(c);
  if (c.world_size == 1) return dist_single();
  return std::make_shared<GlooGroup>(c);
}

}  // namespace corrtrack
