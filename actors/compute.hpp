#pragma once
// Compute actors: one per partition of a partitioned program (graph/
// partition.hpp), bound to one device. Each step, a compute actor runs its
// units as their inputs arrive — feeds from its process, values from its
// own earlier units (a reference hand-off), and tensor messages from other
// partitions' actors (Cap'n Proto encoded, over CAF) — and sends what it
// produces on. Steps run strictly in order: a partition starts step t+1
// only when step t is complete, so every step sees exactly the parameters
// the single-process run would.
//
// Between processes a tensor takes one of two paths: typed actor messages
// (BASP, Cap'n Proto encoded) when it is smaller than the node's
// bulk_threshold (LUOSHU_BULK_THRESHOLD, default 1 MiB), else the bulk
// tensor lane (transport/bulk): every process listens on one lane (an
// OS-chosen port, found through its compute actor) and connects to a peer's
// lane the first time it sends it a large tensor, then reuses that
// connection. Either way the receiver files the tensor under (step, key),
// whatever order it arrives in relative to the control messages.
//
// The pipeline's three data-flow messages: a tensor is "ready" (it arrives),
// a consumer "releases" a producer's buffers of a step once the step is
// done, and "end of data" (finish()) tells every peer how many steps this
// partition ran, so a peer that asks for more gets an error, not a hang.

#include <caf/fwd.hpp>

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "actors/node.hpp"
#include "graph/partition.hpp"
#include "graph/trace.hpp"

namespace luoshu::actors {

/// Tensors one process's compute actor exchanged with other processes, by
/// path (a snapshot).
struct transfer_counts {
  uint64_t lane_sent = 0, lane_sent_bytes = 0, lane_received = 0, lane_received_bytes = 0;
  uint64_t basp_sent = 0, basp_sent_bytes = 0, basp_received = 0, basp_received_bytes = 0;
};

/// The live counters behind transfer_counts (written by the compute actor).
struct transfer_counters {
  std::atomic<uint64_t> lane_sent{0}, lane_sent_bytes{0}, lane_received{0}, lane_received_bytes{0};
  std::atomic<uint64_t> basp_sent{0}, basp_sent_bytes{0}, basp_received{0}, basp_received_bytes{0};
  transfer_counts snapshot() const;
};

struct program_lane;

/// One process's share of a partitioned program running as a job: its
/// compute actor (partition = the node's rank), registered with the
/// coordinator and connected to its peers.
class distributed_program {
public:
  /// `plans` share variable names (e.g. a training and an evaluation plan of
  /// one graph); every plan needs as many partitions as the job has nodes.
  /// Variables start from `seed`, as a variable_store(seed) would. With
  /// LUOSHU_TRACE=FILE set, the actor's timeline (units, ops, messages,
  /// waits) is written to FILE when the program ends. The node's options
  /// give the bulk lane's threshold and address.
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
  /// partition fails or nothing arrives within `timeout`. After finish(),
  /// or once a peer ended its data before `step`, it fails saying so.
  result<std::vector<tensor>> run(size_t plan, int64_t step, const std::map<std::string, tensor>& feeds,
                                  bool training = true, std::chrono::milliseconds timeout = std::chrono::minutes(5));

  /// End of data: no more steps come from this process. The compute actor
  /// finishes its step in flight, tells its peers how many steps it ran,
  /// waits until every peer ended its data too (so every buffer it sent was
  /// released), and stops; finish() returns once it is gone. An error names
  /// the peer that failed or did not end within `timeout`. Idempotent.
  status finish(std::chrono::milliseconds timeout = std::chrono::minutes(5));
  /// Whether finish() was called.
  bool finished() const { return finished_; }

  int partition() const { return partition_; }
  /// Tensors sent and received so far over the bulk lane and over BASP.
  transfer_counts transfers() const;
  /// The port of this process's bulk lane listener.
  uint16_t lane_port() const;

private:
  distributed_program() = default;
  node* node_ = nullptr;
  int partition_ = 0;
  std::unique_ptr<caf::actor> actor_;
  std::unique_ptr<trace_recorder> trace_;
  std::string trace_path_;
  std::shared_ptr<transfer_counters> counters_;
  std::unique_ptr<program_lane> lane_; ///< the bulk lane listener
  bool finished_ = false;
  status finish_status_;
};

} // namespace luoshu::actors
