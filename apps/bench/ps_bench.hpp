#pragma once
// `luoshu bench ps`: the parameter server between two processes on
// loopback. A peer process (`luoshu bench ps --peer`, hidden) hosts S
// ps_shard actors (ASP, one worker) published over CAF's middleman; this
// process reaches them with a ps_client. For each S: dense push+pull GB/s
// (4 MiB and 16 MiB f32 tables, every row pushed and pulled back in one
// push_pull) and sparse pull / push keys/s (embedding dim 16 and 64, batches
// of uniform random ids out of 10^6), next to raw loopback TCP between the
// same two processes measured in the same run.

#include <string>
#include <vector>

namespace luoshu::bench {

struct ps_bench_options {
  /// Seconds per measurement (split into interleaved rounds, the best counts).
  double seconds = 1.0;
  /// Shard counts to measure.
  std::vector<int> shards{1, 2, 4};
  /// Write every number to this JSON file.
  std::string json_path;
  /// Wide&Deep training samples/s, one local process vs 2 servers + 2
  /// workers, on this many generated Criteo rows (0: skip).
  int64_t wide_deep_rows = 40000;
  /// Internal: run as the peer (control on stdin/stdout).
  bool peer = false;
};

/// Runs the benchmark (or the peer), prints a table, returns the exit code.
int run_ps_bench(const ps_bench_options& o);

} // namespace luoshu::bench
