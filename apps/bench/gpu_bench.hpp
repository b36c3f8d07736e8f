#pragma once
// `luoshu bench gpu`: on one CUDA device, in one run,
//   - f32 matrix products through Luoshu's matmul op (executor, stream,
//     caching allocator) against cuBLAS's sgemm called directly, in TFLOP/s;
//   - MLP 784-256-256-10 training samples/s on the GPU against PyTorch on
//     the same GPU (same model, optimizer, batch; each step feeds a host
//     batch and reads the loss back, in both).

#include <string>
#include <vector>

namespace luoshu::bench {

struct gpu_bench_options {
  int device = 0;
  std::vector<int64_t> sizes = {1024, 4096, 8192}; ///< square matmul sizes
  std::vector<int64_t> batches = {128, 1024};      ///< MLP batch sizes
  int64_t steps = 300;
  int64_t warmup = 30;
  bool baselines = true;
  std::string python;    ///< interpreter with torch (default: $LUOSHU_BENCH_PYTHON or .venv-bench)
  std::string json_path; ///< write the results here as JSON
};

/// Runs the benchmark, prints a table, returns the process exit code (1
/// when there is no usable CUDA device).
int run_gpu_bench(const gpu_bench_options& o);

} // namespace luoshu::bench
