#include "apps/luoshu/launch.hpp"

#include <fcntl.h>
#include <sched.h>
#include <poll.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <chrono>
#include <cstring>
#include <fstream>
#include <random>
#include <thread>

#include "actors/coordinator.hpp"
#include "graph/trace.hpp"

namespace luoshu::app {

namespace {

volatile sig_atomic_t g_interrupted = 0;
void on_signal(int) { g_interrupted = 1; }

bool is_local(const std::string& host) {
  if (host == "localhost" || host == "127.0.0.1" || host == "::1" || host.empty()) return true;
  char hn[256] = {};
  gethostname(hn, sizeof hn - 1);
  return host == hn;
}

std::string make_token() {
  std::random_device rd; // /dev/urandom
  static const char* hex = "0123456789abcdef";
  std::string t;
  for (int i = 0; i < 32; ++i) t += hex[rd() % 16];
  return t;
}

std::string shell_quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

struct child {
  int rank = 0;
  std::string name;
  pid_t pid = -1;
  int out_fd = -1;      ///< the child's stdout+stderr
  std::string partial;  ///< an unfinished output line
  bool running = false;
  int status = 0;
};

void forward_output(child& c, bool flush) {
  char buf[4096];
  for (;;) {
    ssize_t n = read(c.out_fd, buf, sizeof buf);
    if (n <= 0) break;
    c.partial.append(buf, static_cast<size_t>(n));
  }
  size_t pos;
  while ((pos = c.partial.find('\n')) != std::string::npos) {
    std::fprintf(stdout, "[%s] %s\n", c.name.c_str(), c.partial.substr(0, pos).c_str());
    c.partial.erase(0, pos + 1);
  }
  if (flush && !c.partial.empty()) {
    std::fprintf(stdout, "[%s] %s\n", c.name.c_str(), c.partial.c_str());
    c.partial.clear();
  }
  std::fflush(stdout);
}

std::string exit_text(int status) {
  if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return std::string("was killed by signal ") + strsignal(WTERMSIG(status));
  return "ended";
}

/// The CPUs this process may run on (all online ones if that is unknown).
std::vector<int> allowed_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  std::vector<int> out;
  if (sched_getaffinity(0, sizeof set, &set) == 0)
    for (int c = 0; c < CPU_SETSIZE; ++c)
      if (CPU_ISSET(c, &set)) out.push_back(c);
  if (out.empty())
    for (long c = 0; c < sysconf(_SC_NPROCESSORS_ONLN); ++c) out.push_back(static_cast<int>(c));
  return out;
}

/// Starts one node process; its output comes back through a pipe.
result<child> spawn_node(const launch_plan& plan, size_t rank, const std::string& coord, const std::string& token) {
  const launch_node& n = plan.nodes[rank];
  child c;
  c.rank = static_cast<int>(rank);
  c.name = n.role + "-" + std::to_string(rank);
  std::vector<std::pair<std::string, std::string>> env{
      {"LUOSHU_COORDINATOR", coord},       {"LUOSHU_TOKEN", token},
      {"LUOSHU_RANK", std::to_string(rank)}, {"LUOSHU_WORLD_SIZE", std::to_string(plan.nodes.size())},
      {"LUOSHU_ROLE", n.role},             {"LUOSHU_NODE_NAME", c.name},
      {"LUOSHU_DEVICE", n.device}};
  if (!plan.trace.empty()) env.emplace_back("LUOSHU_TRACE", plan.trace + ".rank" + std::to_string(rank));
  // Nodes on one host share the CPUs the launcher may use: each gets its
  // share as OpenMP threads (unless the user chose), else each would start
  // a thread per core and the pools would fight; --bind-cores also pins it
  // to those CPUs.
  std::vector<int> cpus;
  if (is_local(n.host)) {
    size_t index = 0, count = 0;
    for (size_t r = 0; r < plan.nodes.size(); ++r)
      if (is_local(plan.nodes[r].host)) {
        if (r < rank) ++index;
        ++count;
      }
    std::vector<int> share = core_share(allowed_cpus(), index, count);
    if (!std::getenv("OMP_NUM_THREADS"))
      env.emplace_back("OMP_NUM_THREADS", std::to_string(std::max<size_t>(1, share.size())));
    if (plan.bind_cores) cpus = std::move(share);
  }
  std::vector<std::string> argv;
  if (is_local(n.host)) {
    argv = plan.command;
  } else {
    // ssh HOST env VAR=... APP ARGS (one quoted remote command line)
    std::string remote = "exec env";
    for (auto& [k, v] : env) remote += " " + k + "=" + shell_quote(v);
    for (auto& a : plan.command) remote += " " + shell_quote(a);
    std::string sshcmd = n.ssh.empty() ? "ssh" : n.ssh;
    argv = {"/bin/sh", "-c", sshcmd + " " + shell_quote(n.host) + " " + shell_quote(remote)};
  }
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return error{std::string("pipe: ") + std::strerror(errno)};
  pid_t pid = fork();
  if (pid < 0) return error{std::string("fork: ") + std::strerror(errno)};
  if (pid == 0) {
    // Child: own process group (the launcher forwards signals to it), dies
    // with the launcher, output into the pipe.
    setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() == 1) _exit(127);
    dup2(fds[1], STDOUT_FILENO);
    dup2(fds[1], STDERR_FILENO);
    if (is_local(n.host))
      for (auto& [k, v] : env) setenv(k.c_str(), v.c_str(), 1);
    if (!cpus.empty()) {
      cpu_set_t set;
      CPU_ZERO(&set);
      for (int cpu : cpus) CPU_SET(cpu, &set);
      if (sched_setaffinity(0, sizeof set, &set) != 0)
        std::fprintf(stderr, "warning: cannot bind to CPUs: %s\n", std::strerror(errno));
    }
    std::vector<char*> args;
    for (auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execvp(args[0], args.data());
    std::fprintf(stderr, "cannot run %s: %s\n", args[0], std::strerror(errno));
    _exit(127);
  }
  close(fds[1]);
  fcntl(fds[0], F_SETFL, O_NONBLOCK);
  setpgid(pid, pid);
  c.pid = pid;
  c.out_fd = fds[0];
  c.running = true;
  return c;
}

/// SIGTERM to every running node, SIGKILL after a grace period; reaps all.
void stop_all(std::vector<child>& kids) {
  for (auto& c : kids)
    if (c.running) kill(-c.pid, SIGTERM);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  for (;;) {
    bool any = false;
    for (auto& c : kids) {
      if (!c.running) continue;
      if (waitpid(c.pid, &c.status, WNOHANG) == c.pid) {
        c.running = false;
        forward_output(c, true);
      } else {
        any = true;
      }
    }
    if (!any) break;
    if (std::chrono::steady_clock::now() > deadline) {
      for (auto& c : kids)
        if (c.running) kill(-c.pid, SIGKILL);
      for (auto& c : kids)
        if (c.running) {
          waitpid(c.pid, &c.status, 0);
          c.running = false;
          forward_output(c, true);
        }
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  for (auto& c : kids)
    if (c.out_fd >= 0) {
      close(c.out_fd);
      c.out_fd = -1;
    }
}

} // namespace

launch_plan local_plan(int n) {
  launch_plan p;
  p.nodes.resize(static_cast<size_t>(n));
  return p;
}

std::vector<int> core_share(const std::vector<int>& allowed, size_t index, size_t count) {
  if (allowed.empty() || count == 0) return {};
  const size_t k = std::max<size_t>(1, allowed.size() / count);
  std::vector<int> out;
  for (size_t j = 0; j < k; ++j) out.push_back(allowed[(index * k + j) % allowed.size()]);
  return out;
}

result<launch_plan> load_cluster(const std::string& path) {
  launch_plan p;
  try {
    YAML::Node root = YAML::LoadFile(path);
    if (!root.IsMap()) return error{path + ": a cluster file is a YAML mapping"};
    for (auto it = root.begin(); it != root.end(); ++it) {
      auto k = it->first.as<std::string>();
      if (k != "coordinator" && k != "nodes" && k != "timeout" && k != "heartbeat_timeout" && k != "join_timeout" &&
          k != "bind_cores")
        return error{path + ": " + k +
                     ": is not a known key (coordinator, nodes, timeout, heartbeat_timeout, join_timeout, bind_cores)"};
    }
    if (auto c = root["coordinator"]) {
      if (c["host"]) p.coordinator_host = c["host"].as<std::string>();
      if (c["bind"]) p.bind_host = c["bind"].as<std::string>();
      if (c["port"]) {
        int port = c["port"].as<int>();
        if (port < 0 || port > 65535) return error{path + ": coordinator.port must be 0..65535"};
        p.coordinator_port = static_cast<uint16_t>(port);
      }
    }
    if (root["timeout"]) p.timeout_s = root["timeout"].as<double>();
    if (root["heartbeat_timeout"]) p.heartbeat_timeout_s = root["heartbeat_timeout"].as<double>();
    if (root["join_timeout"]) p.join_timeout_s = root["join_timeout"].as<double>();
    if (root["bind_cores"]) p.bind_cores = root["bind_cores"].as<bool>();
    YAML::Node nodes = root["nodes"];
    if (!nodes || !nodes.IsSequence() || nodes.size() == 0)
      return error{path + ": nodes: must be a non-empty list of {host, role, device, count, ssh}"};
    for (size_t i = 0; i < nodes.size(); ++i) {
      std::string where = path + ": nodes[" + std::to_string(i) + "]";
      if (!nodes[i].IsMap()) return error{where + ": must be a mapping"};
      launch_node n;
      int count = 1;
      for (auto it = nodes[i].begin(); it != nodes[i].end(); ++it) {
        auto k = it->first.as<std::string>();
        if (k == "host") n.host = it->second.as<std::string>();
        else if (k == "role") n.role = it->second.as<std::string>();
        else if (k == "device") n.device = it->second.as<std::string>();
        else if (k == "ssh") n.ssh = it->second.as<std::string>();
        else if (k == "count") count = it->second.as<int>();
        else return error{where + "." + k + ": is not a known key (host, role, device, count, ssh)"};
      }
      if (n.role != "worker" && n.role != "server" && n.role != "coordinator")
        return error{where + ".role: '" + n.role + "' is not worker, server or coordinator"};
      if (count < 1 || count > 4096) return error{where + ".count: must be 1..4096"};
      for (int c = 0; c < count; ++c) p.nodes.push_back(n);
    }
  } catch (const YAML::BadFile&) {
    return error{path + ": cannot open the cluster file"};
  } catch (const YAML::Exception& e) {
    return error{path + ": invalid YAML at line " + std::to_string(e.mark.line + 1) + ": " + e.msg};
  }
  return p;
}

int launch(const launch_plan& plan) {
  if (plan.command.empty()) {
    spdlog::error("launch: no application given (luoshu launch ... -- APP [ARGS])");
    return 2;
  }
  if (plan.nodes.empty()) {
    spdlog::error("launch: the job has no nodes");
    return 2;
  }
  actors::coordinator_config cfg;
  cfg.token = make_token();
  cfg.world_size = static_cast<int32_t>(plan.nodes.size());
  cfg.heartbeat_timeout = std::chrono::milliseconds(static_cast<int64_t>(plan.heartbeat_timeout_s * 1000));
  cfg.heartbeat_interval = std::min(std::chrono::milliseconds(500), cfg.heartbeat_timeout / 4);
  cfg.join_timeout = std::chrono::milliseconds(static_cast<int64_t>(plan.join_timeout_s * 1000));
  std::string bind = plan.bind_host.empty() ? plan.coordinator_host : plan.bind_host;
  auto svc = actors::coordinator_service::start(cfg, bind, plan.coordinator_port);
  if (!svc) {
    spdlog::error("launch: {}", svc.err().message);
    return 1;
  }
  std::string coord = plan.coordinator_host + ":" + std::to_string((*svc)->port());
  spdlog::info("launch: coordinator at {}, starting {} node(s): {}", coord, plan.nodes.size(), plan.command[0]);

  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);

  std::vector<child> kids;
  for (size_t r = 0; r < plan.nodes.size(); ++r) {
    auto c = spawn_node(plan, r, coord, cfg.token);
    if (!c) {
      spdlog::error("launch: starting node {}: {}", r, c.err().message);
      stop_all(kids);
      return 1;
    }
    kids.push_back(std::move(*c));
  }

  auto start = std::chrono::steady_clock::now();
  int code = 0;
  std::string why;
  for (;;) {
    std::vector<pollfd> fds;
    for (auto& c : kids)
      if (c.running && c.out_fd >= 0) fds.push_back({c.out_fd, POLLIN, 0});
    poll(fds.data(), fds.size(), 20);
    bool all_done = true;
    for (auto& c : kids) {
      if (!c.running) continue;
      forward_output(c, false);
      if (waitpid(c.pid, &c.status, WNOHANG) == c.pid) {
        c.running = false;
        forward_output(c, true);
        if (!(WIFEXITED(c.status) && WEXITSTATUS(c.status) == 0) && code == 0) {
          code = 1;
          // A node often exits because another one failed first: prefer the
          // coordinator's account when it has one.
          if ((*svc)->wait(std::chrono::milliseconds(300)) == actors::coordinator_service::outcome::failed)
            why = (*svc)->failure();
          else
            why = "node " + c.name + " (rank " + std::to_string(c.rank) + ", pid " + std::to_string(c.pid) + ") " +
                  exit_text(c.status);
        }
      } else {
        all_done = false;
      }
    }
    if (code != 0 || all_done) break;
    if (g_interrupted) {
      code = 130;
      why = "interrupted: stopping every node";
      break;
    }
    if (plan.timeout_s > 0 &&
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() > plan.timeout_s) {
      code = 124;
      why = "the job exceeded its time limit of " + std::to_string(static_cast<int>(plan.timeout_s)) + " s";
      break;
    }
    if ((*svc)->wait(std::chrono::milliseconds(0)) == actors::coordinator_service::outcome::failed) {
      code = 1;
      why = (*svc)->failure();
      break;
    }
  }
  if (code != 0) {
    spdlog::error("launch: {}", why);
    stop_all(kids);
  } else {
    stop_all(kids); // closes pipes
  }
  if (!plan.trace.empty()) {
    // One timeline for the whole job from the nodes' own trace files.
    std::vector<std::string> parts;
    for (size_t r = 0; r < kids.size(); ++r) {
      std::string part = plan.trace + ".rank" + std::to_string(r);
      if (access(part.c_str(), R_OK) == 0) parts.push_back(part);
    }
    if (status st = trace_recorder::merge(parts, plan.trace); !st) {
      spdlog::error("launch: {}", st.err().message);
    } else {
      for (auto& part : parts) unlink(part.c_str());
      spdlog::info("launch: timeline of {} node(s) written to {}", parts.size(), plan.trace);
    }
  }
  if (code != 0) {
    spdlog::error("launch: job stopped (exit code {})", code);
    return code;
  }
  spdlog::info("launch: all {} node(s) finished", kids.size());
  return 0;
}

} // namespace luoshu::app
