#pragma once
// `luoshu bench transport`: tensors between two processes on loopback, over
//  (a) typed CAF actor messages (BASP) carrying encoded tensor_message bytes,
//  (b) the bulk tensor lane (transport/bulk), and
//  (c) raw TCP between the same two processes with the lane's framing,
// all in the same run: one-way throughput per tensor size, and the round
// trip of a small tensor. The benchmark starts itself again as the peer
// process (`luoshu bench transport --peer`, hidden), talks to it over a
// pipe, and reaps it at the end.

#include <string>
#include <vector>

namespace luoshu::bench {

struct transport_bench_options {
  /// Tensor sizes: bytes, or with a binary suffix ("64K", "4MiB", "1G").
  /// Empty: 1 KiB to 256 MiB in powers of 4.
  std::vector<std::string> sizes;
  /// Seconds per path and size (split into interleaved rounds, the best
  /// counts), and per path for the round-trip test.
  double seconds = 1.2;
  /// Paths to measure: "raw", "lane", "basp" (ratios need "raw"). Empty: all.
  std::vector<std::string> paths;
  /// Write every number to this JSON file.
  std::string json_path;
  /// Internal: run as the peer (control on stdin/stdout).
  bool peer = false;

  bool wants(const std::string& path) const {
    if (paths.empty()) return true;
    for (const auto& p : paths)
      if (p == path) return true;
    return false;
  }
};

/// Runs the benchmark (or the peer), prints a table, returns the exit code.
int run_transport_bench(const transport_bench_options& o);

} // namespace luoshu::bench
