#pragma once
// `luoshu bench mlp`: MLP 784-256-256-10 training throughput against
// PyTorch and TensorFlow on the same machine, in the same run.

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "graph/device.hpp"

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

/// One measured MLP training run.
struct mlp_result {
  int threads = 0;
  double samples_per_sec = 0;
  double step_ms = 0;
  double final_loss = 0;
};
/// Trains MLP 784-256-256-10 (SGD momentum 0.9, lr 0.01) on 8 pre-made
/// random host batches, cycled (each step feeds a host batch, as a data
/// loader would), on `dev`; times `steps` steps after `warmup`. Throws
/// luoshu_error on failure.
mlp_result measure_mlp(int64_t batch, int64_t steps, int64_t warmup, int threads, device dev = device::cpu());

/// The interpreter with the baselines' frameworks: $LUOSHU_BENCH_PYTHON, else
/// the repo's .venv-bench.
std::string default_python();
/// Runs a shell command and returns its last stdout line that starts with
/// '{', parsed; on failure an object with "framework" and "error".
nlohmann::json run_json_command(const std::string& cmd, const std::string& framework);
/// Every JSON line `cmd` prints on stdout (stderr dropped); empty with
/// `error` set when it printed none or an unreadable one.
std::vector<nlohmann::json> run_json_lines(const std::string& cmd, std::string& error);

} // namespace luoshu::bench
