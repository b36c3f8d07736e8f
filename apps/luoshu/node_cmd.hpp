#pragma once
// `luoshu node` and `luoshu coordinator`: one node of a job (settings from
// the environment) and a standalone coordinator (for Kubernetes, Slurm or
// hand-started jobs).

#include <string>

namespace luoshu::app {

struct node_cmd_options {
  int barriers = 1;     ///< barriers to pass before leaving
  int sleep_ms = 0;     ///< pause between barriers
};
int run_node(const node_cmd_options& o);

struct coordinator_cmd_options {
  int world = 1;
  std::string host = "0.0.0.0";
  int port = 0;
  std::string token;
  std::string token_file;
  std::string port_file;       ///< written (atomically) once listening
  double heartbeat_timeout_s = 10;
  double join_timeout_s = 300;
};
int run_coordinator(const coordinator_cmd_options& o);

} // namespace luoshu::app
