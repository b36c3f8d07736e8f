#pragma once
// `luoshu train CONFIG --strategy ps --servers S --workers W --consistency C`:
// data-parallel training through parameter-server shards. Outside a job it
// launches one on this machine (S server processes, then W workers, each
// running the same command); inside a job (luoshu launch CLUSTER.yaml --
// luoshu train ...) a server node hosts one shard and a worker node trains
// its share of every batch (apps/train's step_strategy), worker 0
// evaluating and writing the summary.

#include <string>
#include <vector>

#include "apps/train/train.hpp"

namespace luoshu::app {

struct ps_train_options {
  int servers = 1;
  int workers = 2;
  std::string consistency = "bsp";
  std::vector<std::string> argv; ///< this process's command line (to start the job's nodes)
  double timeout_s = 0;          ///< whole-job limit when launching locally (0: none)
};

/// Runs the strategy; `train_one` runs app::train with the given strategy
/// and prints/writes the result like a local run (worker 0 only).
int run_ps_train(const train_config& cfg, const ps_train_options& o,
                 int (*train_one)(const train_config&, step_strategy*, bool report));

} // namespace luoshu::app
