#pragma once
// Data-parallel `luoshu train` strategies that run as a job of several
// processes:
//   --strategy ps --servers S --workers W --consistency C
//       parameter-server shards (S server nodes) and W workers;
//   --strategy allreduce --workers W
//       W replicas averaging their gradients with ring all-reduce (fusion
//       buckets reduced while backward runs);
//   --strategy hybrid --servers S --workers W
//       embedding tables through the parameter server (sparse rows), every
//       dense layer through all-reduce among the workers (Hetu's Hybrid).
// Outside a job it launches one on this machine (servers first, then the
// workers, each running the same command); inside a job (luoshu launch
// CLUSTER.yaml -- luoshu train ...) a server node hosts one shard and a
// worker node trains its share of every batch (apps/train's step_strategy),
// worker 0 evaluating and writing the summary.

#include <string>
#include <vector>

#include "apps/train/train.hpp"

namespace luoshu::app {

struct dist_train_options {
  std::string strategy = "ps"; ///< ps, allreduce or hybrid
  int servers = 1;             ///< ps, hybrid
  int workers = 2;
  std::string consistency = "bsp"; ///< ps, hybrid (the embedding tables)
  size_t fusion_bytes = size_t{4} << 20; ///< allreduce, hybrid: gradient bucket size
  bool overlap = true;         ///< allreduce, hybrid: reduce buckets during backward
  std::vector<std::string> argv; ///< this process's command line (to start the job's nodes)
  double timeout_s = 0;          ///< whole-job limit when launching locally (0: none)
};

/// Runs the strategy; `train_one` runs app::train with the given strategy
/// and prints/writes the result like a local run (worker 0 only).
int run_dist_train(const train_config& cfg, const dist_train_options& o,
                   int (*train_one)(const train_config&, step_strategy*, bool report));

} // namespace luoshu::app
