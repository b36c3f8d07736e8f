#pragma once
// `luoshu bench zoo` (and `luoshu bench mlp`, its MLP alone): full training
// steps of model-zoo models in Luoshu next to the same models in PyTorch and
// TensorFlow (apps/bench/baselines/zoo_*.py), in one run on this machine.

#include <string>
#include <vector>

#include "graph/device.hpp"

namespace luoshu::bench {

struct zoo_bench_options {
  std::vector<std::string> models; ///< empty: every model (zoo_model_names())
  int64_t batch = 0;               ///< 0: each model's own batch
  int64_t steps = 0;               ///< timed steps per run; 0: each model's default
  int64_t warmup = -1;             ///< warm-up steps per run; -1: each model's default
  std::vector<int> threads;        ///< Luoshu intra-op thread counts to try (best kept); empty: 1 and all cores
  bool baselines = true;
  bool profile = false;            ///< also print Luoshu's per-op time for each model
  std::string python;              ///< interpreter with torch/tensorflow; default: the repo's .venv-bench
  std::string json_path;           ///< write the results here as JSON
  /// Internal: measure this one model in this process at threads[0] and
  /// print one JSON line (the parent runs each setting in a fresh process,
  /// so peak memory is per model and thread pools start clean).
  std::string worker;
};

/// Runs the benchmark, prints a table, returns the process exit code.
int run_zoo_bench(const zoo_bench_options& o);

/// The benchmark's models: mlp, cnn, lstm, dlrm.
const std::vector<std::string>& zoo_model_names();

/// One measured training run.
struct zoo_result {
  int threads = 0;
  int64_t batch = 0;
  double samples_per_sec = 0;
  double step_ms = 0;
  double final_loss = 0;
  std::string profile; ///< per-op table when asked for
};

/// Trains zoo model `model` (see zoo_bench.cpp for shapes and optimizers) on
/// 8 pre-made random host batches, cycled, on `dev`: `warmup` steps, then
/// times `steps` steps. batch 0 = the model's own. Throws luoshu_error.
zoo_result measure_zoo_model(const std::string& model, int64_t batch, int64_t steps, int64_t warmup, int threads,
                             device dev = device::cpu(), bool profile = false);

} // namespace luoshu::bench
