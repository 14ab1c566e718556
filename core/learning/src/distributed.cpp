// Data-parallel helpers (distributed.h) that do not depend on the process group's kind: the
// configuration from flags and environment, the single-process group, autograd-aware
// collectives, gradient averaging, broadcast, synchronised BatchNorm, and the local launcher.
#include "corrtrack/distributed.h"

#include "corrtrack/train.h"

#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <thread>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

namespace corrtrack {

// ---------------------------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------------------------

namespace {

const char* env_first(std::initializer_list<const char*> names) {
  for (const char* n : names) {
    const char* v = std::getenv(n);
    if (v && *v) return v;
  }
  return nullptr;
}

int env_int(const char* value, const char* name) {
  char* end = nullptr;
  errno = 0;
  const long v = std::strtol(value, &end, 10);
  if (errno || end == value || *end || v < INT32_MIN || v > INT32_MAX) {
    throw Error(std::string("the environment variable ") + name + " is not an integer: '" + value + "'");
  }
  return int(v);
}

bool given(const std::vector<std::string>& flags, const char* field) {
  return std::find(flags.begin(), flags.end(), field) != flags.end();
}

// Sets `target` from the first variable of `names` that is set, unless the flag was given.
void from_env(int& target, const std::vector<std::string>& flags, const char* field, std::initializer_list<const char*> names) {
  if (given(flags, field)) return;
  for (const char* n : names) {
    if (const char* v = env_first({n})) {
      target = env_int(v, n);
      return;
    }
  }
}

}  // namespace

DistConfig dist_config_from_env(DistConfig c, const std::vector<std::string>& flags) {
  from_env(c.rank, flags, "rank", {"RANK", "SLURM_PROCID"});
  from_env(c.world_size, flags, "world_size", {"WORLD_SIZE", "SLURM_NTASKS"});
  from_env(c.local_rank, flags, "local_rank", {"LOCAL_RANK", "SLURM_LOCALID"});
  from_env(c.master_port, flags, "master_port", {"MASTER_PORT"});
  if (!given(flags, "master_addr")) {
    if (const char* a = env_first({"MASTER_ADDR"})) c.master_addr = a;
  }
  return c;
}

void dist_config_validate(const DistConfig& c) {
  if (c.world_size < 1) throw SettingError("world-size", "must be at least 1");
  if (c.rank < 0 || c.rank >= c.world_size) {
    throw SettingError("rank", "must be in [0, " + std::to_string(c.world_size) + ") for a world size of " + std::to_string(c.world_size));
  }
  if (c.local_rank < 0) throw SettingError("local-rank", "must be >= 0");
  if (c.master_port < 1 || c.master_port > 65535) throw SettingError("master-port", "must be in [1, 65535]");
  if (c.master_addr.empty()) throw SettingError("master-addr", "must name the machine of rank 0");
  if (c.backend != "auto" && c.backend != "gloo" && c.backend != "nccl") throw SettingError("backend", "must be gloo, nccl or auto");
  if (c.backend == "nccl") throw SettingError("backend", "nccl needs a CUDA build of LibTorch with NCCL; this build trains across processes with gloo");
  if (!(c.timeout_s > 0.0)) throw SettingError("dist-timeout", "must be > 0 seconds");
}

// ---------------------------------------------------------------------------------------------
// Rank generators, the single-process group
// ---------------------------------------------------------------------------------------------

torch::Generator Distributed::rank_generator(torch::Generator& step_gen) const {
  if (world_size() == 1) return step_gen;
  uint64_t draw = 0;
  {
    std::lock_guard<std::mutex> lock(step_gen.mutex());
    draw = step_gen.get<at::CPUGeneratorImpl>()->random64();
  }
  return at::make_generator<at::CPUGeneratorImpl>(seed_for_step(draw, rank()));
}

namespace {

class SingleProcess : public Distributed {
 public:
  int rank() const override { return 0; }
  int world_size() const override { return 1; }
  void all_reduce_sum(std::vector<torch::Tensor>&) override {}
  torch::Tensor all_gather(const torch::Tensor& x) override { return x; }
  void broadcast(std::vector<torch::Tensor>&, int) override {}
  void barrier() override {}
  std::string backend() const override { return "single"; }
};

}  // namespace

std::shared_ptr<Distributed> dist_single() { return std::make_shared<SingleProcess>(); }

// ---------------------------------------------------------------------------------------------
// Autograd-aware collectives
// ---------------------------------------------------------------------------------------------

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

Distributed* group_of(AutogradContext* ctx) {
  return reinterpret_cast<Distributed*>(static_cast<intptr_t>(ctx->saved_data["group"].toInt()));
}

torch::Tensor summed(Distributed& d, const torch::Tensor& x) {
  std::vector<torch::Tensor> t{x.contiguous().clone()};
  d.all_reduce_sum(t);
  return t[0];
}

struct AllGatherFn : public torch::autograd::Function<AllGatherFn> {
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x, Distributed* d) {
    ctx->saved_data["group"] = static_cast<int64_t>(reinterpret_cast<intptr_t>(d));
    ctx->saved_data["rows"] = x.size(0);
    return d->all_gather(x.contiguous());
  }
  static variable_list backward(AutogradContext* ctx, variable_list grad) {
    Distributed* d = group_of(ctx);
    const int64_t rows = ctx->saved_data["rows"].toInt();
    return {summed(*d, grad[0]).narrow(0, d->rank() * rows, rows), torch::Tensor()};
  }
};

struct AllReduceFn : public torch::autograd::Function<AllReduceFn> {
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x, Distributed* d) {
    ctx->saved_data["group"] = static_cast<int64_t>(reinterpret_cast<intptr_t>(d));
    return summed(*d, x);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grad) { return {summed(*group_of(ctx), grad[0]), torch::Tensor()}; }
};

}  // namespace

torch::Tensor all_gather_grad(Distributed& d, const torch::Tensor& x) {
  if (d.world_size() == 1) return x;
  return AllGatherFn::apply(x, &d);
}

torch::Tensor all_reduce_sum_grad(Distributed& d, const torch::Tensor& x) {
  if (d.world_size() == 1) return x;
  return AllReduceFn::apply(x, &d);
}

// ---------------------------------------------------------------------------------------------
// Gradients, parameters, BatchNorm
// ---------------------------------------------------------------------------------------------

namespace {

// All-reduces the gradients of params[first, last) as one flat tensor and divides by the world.
void bucket_average(Distributed& d, const std::vector<torch::Tensor>& params, size_t first, size_t last) {
  std::vector<torch::Tensor> flat;
  for (size_t i = first; i < last; ++i) {
    const auto& p = params[i];
    flat.push_back(p.grad().defined() ? p.grad().reshape({-1}) : torch::zeros({p.numel()}, p.options()));
  }
  std::vector<torch::Tensor> bucket{torch::cat(flat)};
  d.all_reduce_sum(bucket);
  bucket[0].div_(double(d.world_size()));
  int64_t offset = 0;
  for (size_t i = first; i < last; ++i) {
    const auto& p = params[i];
    if (p.grad().defined()) p.mutable_grad().copy_(bucket[0].narrow(0, offset, p.numel()).view_as(p));
    offset += p.numel();
  }
}

}  // namespace

void gradients_average(Distributed& d, const std::vector<torch::Tensor>& params, int64_t bucket_bytes) {
  if (d.world_size() == 1) return;
  torch::NoGradGuard ng;
  size_t first = 0;
  int64_t bytes = 0;
  for (size_t i = 0; i < params.size(); ++i) {
    const bool other_kind = i > first && (params[i].scalar_type() != params[first].scalar_type() || params[i].device() != params[first].device());
    const int64_t b = params[i].numel() * int64_t(params[i].element_size());
    if (i > first && (other_kind || bytes + b > bucket_bytes)) {
      bucket_average(d, params, first, i);
      first = i;
      bytes = 0;
    }
    bytes += b;
  }
  if (first < params.size()) bucket_average(d, params, first, params.size());
}

void module_broadcast(Distributed& d, torch::nn::Module& m) {
  if (d.world_size() == 1) return;
  torch::NoGradGuard ng;
  std::vector<torch::Tensor> all = m.parameters();
  for (auto& b : m.buffers()) all.push_back(b);
  for (auto& t : all) {
    std::vector<torch::Tensor> one{t.is_contiguous() ? t : t.contiguous()};
    d.broadcast(one, 0);
    if (!one[0].is_same(t)) t.copy_(one[0]);
  }
}

void batch_norm_synchronise(torch::nn::Module& m, const std::shared_ptr<Distributed>& d) {
  if (!d || d->world_size() == 1) {
    batch_norm_set_reducer(m, nullptr);
    return;
  }
  Distributed* group = d.get();
  batch_norm_set_reducer(m, [group](const torch::Tensor& x) { return all_reduce_sum_grad(*group, x); });
}

// ---------------------------------------------------------------------------------------------
// Local launcher
// ---------------------------------------------------------------------------------------------

int free_tcp_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) throw Error(std::string("cannot open a socket to find a free port: ") + std::strerror(errno));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof(a);
  const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0 &&
                  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0;
  ::close(fd);
  if (!ok) throw Error(std::string("cannot find a free TCP port: ") + std::strerror(errno));
  return ntohs(a.sin_port);
}

namespace {

std::string exit_description(int status) {
  if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    const int s = WTERMSIG(status);
    return "was killed by signal " + std::to_string(s) + " (" + strsignal(s) + ")";
  }
  return "ended abnormally";
}

// The environment of one worker: ours with the rendezvous variables replaced.
std::vector<std::string> worker_environment(int rank, int nproc, int port) {
  const std::map<std::string, std::string> set = {
      {"RANK", std::to_string(rank)},       {"LOCAL_RANK", std::to_string(rank)}, {"WORLD_SIZE", std::to_string(nproc)},
      {"LOCAL_WORLD_SIZE", std::to_string(nproc)}, {"MASTER_ADDR", "127.0.0.1"}, {"MASTER_PORT", std::to_string(port)}};
  std::vector<std::string> env;
  for (char** e = environ; *e; ++e) {
    const std::string kv(*e);
    if (!set.count(kv.substr(0, kv.find('=')))) env.push_back(kv);
  }
  for (const auto& [k, v] : set) env.push_back(k + "=" + v);
  return env;
}

std::vector<char*> c_strings(std::vector<std::string>& v) {
  std::vector<char*> out;
  for (auto& s : v) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

void stop_all(std::map<pid_t, int>& running, double grace_s) {
  for (auto& [pid, rank] : running) ::kill(pid, SIGTERM);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(grace_s);
  while (!running.empty() && std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    const pid_t pid = ::waitpid(-1, &status, WNOHANG);
    if (pid > 0) running.erase(pid);
    else std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  for (auto& [pid, rank] : running) ::kill(pid, SIGKILL);
  for (auto& [pid, rank] : running) ::waitpid(pid, nullptr, 0);
  running.clear();
}

}  // namespace

void dist_launch_local(const std::vector<std::string>& argv, int nproc, int master_port, double grace_s) {
  if (nproc < 1) throw SettingError("nproc", "must be at least 1");
  if (argv.empty()) throw Error("dist_launch_local: no command");
  std::map<pid_t, int> running;
  for (int rank = 0; rank < nproc; ++rank) {
    std::vector<std::string> args = argv, env = worker_environment(rank, nproc, master_port);
    auto cargs = c_strings(args), cenv = c_strings(env);
    const pid_t pid = ::fork();
    if (pid < 0) {
      stop_all(running, grace_s);
      throw Error(std::string("cannot start worker processes: ") + std::strerror(errno));
    }
    if (pid == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGTERM);   // a launcher that dies takes its workers with it
      ::execve(cargs[0], cargs.data(), cenv.data());
      _exit(127);
    }
    running[pid] = rank;
  }
  while (!running.empty()) {
    int status = 0;
    const pid_t pid = ::waitpid(-1, &status, 0);
    if (pid < 0) {
      if (errno == EINTR) continue;
      break;
    }
    const auto it = running.find(pid);
    if (it == running.end()) continue;
    const int rank = it->second;
    running.erase(it);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) continue;
    const bool others = !running.empty();
    stop_all(running, grace_s);
    throw Error("rank " + std::to_string(rank) + " of " + std::to_string(nproc) + " " + exit_description(status) +
                (others ? "; the other ranks were stopped" : ""));
  }
}

}  // namespace corrtrack
