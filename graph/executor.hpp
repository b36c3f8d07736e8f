#pragma once
// The local executor: runs a graph on one device in topological order,
// reusing intermediate buffers by liveness.

#include <array>
#include <map>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "graph/graph.hpp"
#include "graph/trace.hpp"
#include "graph/variables.hpp"
#include "ops/kernel.hpp"

namespace luoshu {

/// Values for placeholders, by expression.
using feed_map = std::vector<std::pair<expr, tensor>>;

/// Kernel time per op kind, summed over runs by an executor whose options
/// point at it (`luoshu bench zoo --profile`): where a model's time goes.
struct op_profile {
  std::array<int64_t, op_count> calls{};
  std::array<int64_t, op_count> ns{};
  /// The op kinds by time, largest first: one line each with total ms per
  /// run (`runs` runs were profiled), share of the kernel time and calls.
  std::string table(int64_t runs, size_t top = 12) const;
};

struct executor_options {
  /// Reuse intermediate buffers once their last reader ran (off: every
  /// value gets its own buffer; for debugging and tests).
  bool reuse_buffers = true;
  /// Debug mode: fill a buffer with 0xFF bytes (NaN) the moment it is freed,
  /// and check before every kernel that each input buffer still belongs to
  /// that input; a violation is an error naming both nodes.
  bool poison_freed = false;
  /// Where the graph runs: cpu, or cuda:N (with the CUDA kernels registered).
  /// On a device, feeds may be host or device tensors, variables move to the
  /// device on first use and stay there (the store then holds device
  /// tensors), and fetched values come back as host tensors.
  luoshu::device device = luoshu::device::cpu();
  /// The stream to queue device work on (null: the executor makes its own).
  /// A compute actor passes its own, so its kernels never wait for another's.
  device_stream* stream = nullptr;
  /// Record every kernel as a span on track `trace_track` (null: off).
  trace_recorder* trace = nullptr;
  int trace_track = 0;
  /// Add every kernel call's host time to this profile (null: off; on a
  /// device that is the time to queue the kernel).
  op_profile* profile = nullptr;
  /// CPU: keep f32 images channel-blocked between the kernels that accept
  /// it (convolutions, 2 x 2 max pooling, activations) instead of
  /// reordering to and from NCHW around each (see ops/kernel.hpp,
  /// layout_caps). Off: every value is plain, as on a device.
  bool blocked_layouts = true;
};

struct run_options {
  bool training = true; ///< false: inference mode (dropout is identity)
  int64_t step = 0;     ///< seeds per-step randomness (dropout)
  /// Called during the run, on the running thread, as soon as fetch `index`
  /// is computed (before the rest of the graph runs), with its value: valid
  /// only during the call (copy what you keep). Data-parallel training
  /// starts reducing gradients this way while backward goes on. Host runs
  /// only; on a device each fetch is reported at the end of the run.
  std::function<void(size_t index, const tensor& value)> on_fetch = nullptr;
};

struct memory_stats {
  size_t pool_bytes = 0;      ///< bytes held by the reusable buffer pool
  size_t peak_live_bytes = 0; ///< most intermediate bytes live at once (last plan)
  size_t variable_bytes = 0;  ///< bytes of variables (incl. optimizer slots)
  size_t unshared_bytes = 0;  ///< what the last plan would need without reuse
  size_t peak_bytes() const { return pool_bytes + variable_bytes; }
};

class executor {
public:
  /// `g`, `vars` and `kernels` must outlive the executor.
  executor(const graph& g, variable_store& vars, const kernel_registry& kernels,
           executor_options opts = {});
  ~executor();
  executor(const executor&) = delete;
  executor& operator=(const executor&) = delete;

  /// Computes `fetches` (returned in order) and runs `targets` (e.g.
  /// optimizer updates, run after every other node) from `feeds`. Missing
  /// variables are initialised first. Any failure (a missing or misshapen
  /// feed, a kernel error) is an error naming the node.
  result<std::vector<tensor>> run(const feed_map& feeds, const std::vector<expr>& fetches,
                                  const std::vector<expr>& targets = {}, const run_options& ro = {});

  const memory_stats& stats() const { return stats_; }
  /// The stream device work is queued on (null on the CPU or when the
  /// device could not be opened).
  device_stream* stream() const { return stream_; }

  /// For tests: the last plan's (node, slot, first position, last position)
  /// for every pooled value; two entries on one slot must not overlap.
  struct lifetime {
    node_id node;
    int slot;
    int begin;
    int end;
  };
  std::vector<lifetime> last_lifetimes() const;
  /// For tests: the nodes whose values the last plan keeps channel-blocked.
  std::vector<node_id> last_blocked() const;

private:
  struct plan;
  result<std::vector<tensor>> run_impl(const feed_map& feeds, const std::vector<expr>& fetches,
                                       const std::vector<expr>& targets, const run_options& ro);
  result<plan*> plan_for(const feed_map& feeds, const std::vector<expr>& fetches,
                         const std::vector<expr>& targets);
  void assign_layouts(plan& p) const;

  const graph& g_;
  variable_store& vars_;
  const kernel_registry& kernels_;
  executor_options opts_;
  memory_stats stats_;
  std::map<std::string, std::unique_ptr<plan>> plans_;
  plan* last_ = nullptr;
  size_t initialized_upto_ = 0; ///< graph size when variables were last initialised
  std::vector<std::shared_ptr<storage>> slots_;
  std::unique_ptr<device_stream> own_stream_;
  device_stream* stream_ = nullptr;
  std::string device_error_; ///< why the device cannot be used (empty: fine)
  std::map<node_id, tensor> device_constants_;
};

} // namespace luoshu
