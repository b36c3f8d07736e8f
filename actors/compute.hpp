#pragma once
// Compute actors: one per partition of a partitioned program (graph/
// partition.hpp), bound to one device. Each step, a compute actor runs its
// units as their inputs arrive — feeds from its process, values from its
// own earlier units (a reference hand-off), and tensor messages from other
// partitions' actors (Cap'n Proto encoded, over CAF) — and sends what it
// produces on. Steps run strictly in order: a partition starts step t+1
// only when step t is complete, so every step sees exactly the parameters
// the single-process run would.

#include <caf/fwd.hpp>

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "actors/node.hpp"
#include "graph/partition.hpp"
#include "graph/trace.hpp"

namespace luoshu::actors {

/// One process's share of a partitioned program running as a job: its
/// compute actor (partition = the node's rank), registered with the
/// coordinator and connected to its peers.
class distributed_program {
public:
  /// `plans` share variable names (e.g. a training and an evaluation plan of
  /// one graph); every plan needs as many partitions as the job has nodes.
  /// Variables start from `seed`, as a variable_store(seed) would. With
  /// LUOSHU_TRACE=FILE set, the actor's timeline (units, ops, messages,
  /// waits) is written to FILE when the program ends.
  static result<std::unique_ptr<distributed_program>> start(node& n,
                                                            std::vector<std::shared_ptr<const partition_plan>> plans,
                                                            uint64_t seed);
  ~distributed_program();
  distributed_program(const distributed_program&) = delete;
  distributed_program& operator=(const distributed_program&) = delete;

  /// Runs step `step` of plan `plan` with this process's feeds (by
  /// placeholder name; every process feeds the placeholders its units
  /// read). Returns the plan's fetches where this partition computes them
  /// (undefined tensors elsewhere). Fails with the reason when any
  /// partition fails or nothing arrives within `timeout`.
  result<std::vector<tensor>> run(size_t plan, int64_t step, const std::map<std::string, tensor>& feeds,
                                  bool training = true, std::chrono::milliseconds timeout = std::chrono::minutes(5));

  int partition() const { return partition_; }

private:
  distributed_program() = default;
  node* node_ = nullptr;
  int partition_ = 0;
  std::unique_ptr<caf::actor> actor_;
  std::unique_ptr<trace_recorder> trace_;
  std::string trace_path_;
};

} // namespace luoshu::actors
