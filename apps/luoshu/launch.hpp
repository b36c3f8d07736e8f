#pragma once
// `luoshu launch`: starts a whole job — a coordinator in this process and
// one process per node (local ones with fork/exec, remote ones through
// ssh) — and stops all of it when any node fails, on Ctrl-C, or on timeout.

#include <string>
#include <vector>

#include "graph/error.hpp"

namespace luoshu::app {

struct launch_node {
  std::string host = "localhost"; ///< localhost / 127.0.0.1 / this host: a local process; else ssh
  std::string role = "worker";
  std::string device = "cpu";
  std::string ssh = "ssh";        ///< command used for remote hosts
};

struct launch_plan {
  std::vector<launch_node> nodes;       ///< rank = position
  std::string coordinator_host = "127.0.0.1"; ///< address nodes use to reach the coordinator
  std::string bind_host;                ///< address the coordinator listens on (default: coordinator_host)
  uint16_t coordinator_port = 0;        ///< 0: the OS picks
  std::vector<std::string> command;     ///< the application and its arguments
  double timeout_s = 0;                 ///< whole-job limit; 0 = none
  double heartbeat_timeout_s = 10;
  double join_timeout_s = 120;
  std::string trace;                    ///< merged Chrome/Perfetto timeline of every node (empty: off)
  /// Pin each local node to its share of this host's CPUs (as mpirun's
  /// --bind-to core): with L local nodes on C allowed CPUs, node i gets
  /// CPUs [i k, i k + k), k = max(1, C / L), wrapping when L > C.
  bool bind_cores = false;
};

/// The CPUs local node `index` of `count` gets under bind_cores, out of
/// `allowed` (the launcher's own affinity, in order).
std::vector<int> core_share(const std::vector<int>& allowed, size_t index, size_t count);

/// Reads a cluster YAML file (see README "Launching a job").
result<launch_plan> load_cluster(const std::string& path);
/// N local workers.
launch_plan local_plan(int n);

/// Runs the job; returns the process exit code (0 when every node exited 0).
int launch(const launch_plan& plan);

} // namespace luoshu::app
