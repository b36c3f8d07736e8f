#pragma once
// `luoshu bench allreduce`: all-reduce bus bandwidth (2(n-1)/n * bytes /
// time) of Luoshu's all-reduce (actors/collective.hpp: the ring, or halving
// and doubling where the communicator picks it) at 1, 16 and 128 MiB for 2
// and 4 ranks, each rank its own process on this machine, and in the same
// run OpenMPI's MPI_Allreduce (over TCP and over shared memory) and
// torch.distributed's gloo backend, and the floor of a TCP ring on this
// machine (mpi_allreduce.c --ring raw-tcp: a ring on raw loopback sockets
// that copies nothing beyond the kernel and the sum), with the same methodology
// (apps/bench/baselines/mpi_allreduce.c, gloo_allreduce.py): f32 sum in
// place; per size a correctness check, warm-up, then timed iterations each
// after a barrier, an iteration's time being the slowest rank's; the median
// counts. Every implementation is measured `rounds` times, the rounds
// interleaved (round 1 of each, then round 2 of each, ...), and the median
// round counts: this machine's speed drifts between runs, and a ratio of two
// numbers measured minutes apart would mostly measure the drift. Then the
// same job's gradient exchange in training: how long workers wait for
// reductions after backward, with and without overlap.

#include <string>
#include <vector>

namespace luoshu::bench {

struct allreduce_bench_options {
  std::vector<std::string> sizes{"1M", "16M", "128M"};
  std::vector<int> ranks{2, 4};
  int warmup = 3;
  int iters = 0;           ///< 0: 100 below 4 MiB, 20 from there, 10 from 64 MiB
  int rounds = 3;          ///< interleaved repetitions of every measurement; the median counts
  size_t chunk_bytes = 0;  ///< 0: the communicator's default
  int shm_slots = -1;      ///< shared-memory slots per ring edge (-1: the communicator's default; 0: TCP only)
  /// All-reduces up to this many bytes by halving and doubling (power-of-two
  /// rank counts from 4; -1: the communicator's default; 0: the ring only).
  long long hd_max_bytes = -1;
  std::string json_path;
  std::string python;      ///< for gloo (default: .venv-bench)
  bool baselines = true;
  /// Pin each rank to its share of the cores (luoshu launch --bind-cores),
  /// as mpirun binds its ranks to cores by default up to 2 ranks.
  bool bind_cores = true;
  /// Gradient overlap: Wide&Deep with two 1024-wide hidden layers trained
  /// by 2 all-reduce workers on this many generated Criteo rows, buckets
  /// reduced during backward vs after it (0: skip).
  int64_t overlap_rows = 40000;
  // Internal: one rank of the measured job (started through `luoshu launch`).
  bool worker = false;
  std::string out;         ///< worker: rank 0 appends its JSON lines here
  int die_rank = -1;       ///< worker (tests): this rank kills itself before the first timed iteration
};

int run_allreduce_bench(const allreduce_bench_options& o);

} // namespace luoshu::bench
