#pragma once
// The graph partitioner: given a placement of nodes onto partitions (e.g.
// layers onto processes), cuts the graph — forward, backward and updates —
// into units, each a self-contained graph that one compute actor runs once
// per step when all its inputs have arrived. Every edge between units is a
// send/recv pair keyed by the producing node's name: a reference hand-off
// inside a process, a tensor message across processes.
//
// A unit is (partition, wave): a node's wave is the largest number of
// partition crossings on any path from a source to it, so units form a DAG
// and a partition runs its units in wave order (for a two-layer split:
// forward on 0, forward + backward on 1, backward + update on 0).
// Placeholders and constants are copied into every unit that reads them,
// and a partition's variables into each of its units that reads them (the
// partition's one variable store holds their values).

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "graph/executor.hpp"
#include "graph/graph.hpp"

namespace luoshu {

/// Placement from variables: `owner` maps a variable name (or a prefix
/// ending at '/', as in "dense1/") to a partition; optimizer slots follow
/// their variable ("w1/velocity" goes with "w1"); a compute node goes with
/// the variable it reads, else with its first computed input; gradient
/// nodes go with the forward node they differentiate, updates with their
/// variable. Anything else lands on `fallback`.
std::vector<int> place_by_variables(const graph& g, const std::map<std::string, int>& owner, int fallback = 0);

struct unit {
  int partition = 0;
  int wave = 0;
  std::unique_ptr<graph> g;
  /// Placeholders of the original graph copied here: fed by the caller.
  std::vector<std::pair<std::string, expr>> feeds;
  /// Values arriving from other units: (key, placeholder here).
  std::vector<std::pair<std::string, expr>> recvs;
  /// Values this unit produces for other units: (key, expression here, consumer units).
  struct send {
    std::string key;
    expr value;
    std::vector<int> to;
  };
  std::vector<send> sends;
  /// The caller's fetches computed here: (index in the fetch list, expression here).
  std::vector<std::pair<size_t, expr>> fetches;
  /// Updates (and other targets) run here.
  std::vector<expr> targets;
};

/// A partitioned program: units in an order that respects their
/// dependencies (by wave, then partition).
struct partition_plan {
  int partitions = 0;
  std::vector<unit> units;
  /// Units of partition p, in the order they run.
  std::vector<int> units_of(int p) const;
};

/// Cuts the part of `g` that `fetches` and `targets` need. `placement`
/// gives every node's partition (see place_by_variables). Throws
/// luoshu_error naming the node when a variable would be read from another
/// partition, or the placement is malformed.
partition_plan partition_graph(const graph& g, const std::vector<int>& placement, const std::vector<expr>& fetches,
                               const std::vector<expr>& targets);

} // namespace luoshu

namespace luoshu {

/// What one unit produced in one step.
struct unit_outputs {
  std::vector<std::pair<std::string, tensor>> sends;   ///< key, value (consumers: the unit's sends)
  std::vector<std::pair<size_t, tensor>> fetches;      ///< fetch index, value
};

/// Runs the units of one partition of a plan: one executor per unit, all
/// sharing the partition's variable store. The same code serves a compute
/// actor (one partition per process) and the in-process runner below.
class partition_runner {
public:
  /// `trace` (optional) records every kernel, one track per unit. With a
  /// `stream`, every unit runs on its device, queued on that one stream (a
  /// compute actor's own); values between units and processes are host
  /// tensors.
  partition_runner(const partition_plan& plan, int partition, variable_store& vars, const kernel_registry& kernels,
                   trace_recorder* trace = nullptr, device_stream* stream = nullptr);
  ~partition_runner();
  partition_runner(const partition_runner&) = delete;
  partition_runner& operator=(const partition_runner&) = delete;

  /// This partition's units, in the order they run.
  const std::vector<int>& units() const { return units_; }
  /// Whether `values` (feeds by placeholder name, received values by key)
  /// hold everything unit `ui` reads.
  bool ready(int ui, const std::map<std::string, tensor>& values) const;
  /// Runs unit `ui`; an error names the unit and what went wrong.
  result<unit_outputs> run(int ui, const std::map<std::string, tensor>& values, const run_options& ro);

private:
  const partition_plan& plan_;
  std::vector<int> units_;
  std::map<int, std::unique_ptr<executor>> executors_;
};

/// Runs a whole plan in this process, unit after unit, each partition with
/// its own variable store (stores[p]); returns the fetches in order. For
/// tests and for checking a placement before launching a job.
result<std::vector<tensor>> run_plan_locally(const partition_plan& plan, const std::vector<variable_store*>& stores,
                                             const kernel_registry& kernels,
                                             const std::map<std::string, tensor>& feeds, size_t fetch_count,
                                             const run_options& ro = {});

} // namespace luoshu
