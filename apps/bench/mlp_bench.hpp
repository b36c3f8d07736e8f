#pragma once
// `luoshu bench mlp`: MLP 784-256-256-10 training throughput against
// PyTorch and TensorFlow on the same machine, in the same run.

#include <string>
#include <vector>

namespace luoshu::bench {

struct mlp_bench_options {
  int64_t batch = 128;
  int64_t steps = 300;
  int64_t warmup = 30;
  std::vector<int> threads;        ///< Luoshu intra-op thread counts to try (best kept); empty: 1 and all cores
  bool baselines = true;
  std::string python;              ///< interpreter with torch/tensorflow; default: the repo's .venv-bench
  std::string json_path;           ///< write the results here as JSON
};

/// Runs the benchmark, prints a table, returns the process exit code.
int run_mlp_bench(const mlp_bench_options& o);

} // namespace luoshu::bench
