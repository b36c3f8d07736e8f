#pragma once
// Data-parallel training through ring all-reduce (actors/collective.hpp):
// every replica runs forward and backward on its share of the batch, the
// gradients are averaged over the replicas, and each replica applies the
// same update to its own copy of the parameters, so W replicas on equal
// shares of a global batch train like one process on the whole batch (up to
// float summation order).
//
// Fusion and overlap (as Horovod and PyTorch DDP do): dense gradients are
// packed into fusion buckets of about `fusion_bytes`, filled in reverse
// parameter order (the order backward produces them), and a bucket's
// all-reduce starts the moment its last gradient is computed
// (run_options::on_fetch), while backward goes on with the layers before
// it. Sparse (embedding) gradients are all-gathered (rows and ids) instead
// of densified. The optimizer runs locally; its slots stay in step because
// every replica applies the same averaged gradients.
//
// The pieces are public so that other schedulers can run the pass
// themselves: luoshu train --strategy hybrid runs the ps_trainer's pass
// with this trainer's gradient fetches (sparse embeddings through the
// parameter server, dense layers through all-reduce).

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "actors/collective.hpp"
#include "graph/autodiff.hpp"
#include "graph/executor.hpp"
#include "graph/optimizer.hpp"
#include "graph/trace.hpp"

namespace luoshu::schedulers {

struct allreduce_trainer_options {
  /// Dense gradients are reduced in buckets of about this many bytes
  /// (a gradient larger than this is a bucket of its own).
  size_t fusion_bytes = size_t{4} << 20;
  /// Start each bucket's all-reduce as soon as backward produced it; false:
  /// after the whole backward pass (for comparison).
  bool overlap = true;
  /// Records one span per bucket (from its launch until the step has it) on
  /// track `trace_track`, next to the executor's op spans.
  trace_recorder* trace = nullptr;
  int trace_track = 1;
};

/// Time spent on gradient exchange (cumulative).
struct allreduce_stats {
  int64_t steps = 0;
  int64_t buckets = 0;
  double backward_seconds = 0; ///< forward + backward pass, reductions overlapping it
  double exposed_seconds = 0;  ///< after the pass until every reduction is in (sparse gathers included)
};

class allreduce_trainer {
public:
  /// `params`: the variables to train (default: every trainable one).
  allreduce_trainer(graph& g, expr loss, const optimizer_config& cfg, executor& ex, variable_store& vars,
                    actors::communicator& comm, allreduce_trainer_options o = {}, std::vector<expr> params = {});
  ~allreduce_trainer();

  /// Makes every replica start from rank 0's parameters (a broadcast).
  status init();
  /// One step on this replica's share; returns its loss.
  result<double> step(const feed_map& feeds);
  int64_t steps_done() const { return step_; }
  void set_steps_done(int64_t s) { step_ = s; }
  const allreduce_stats& stats() const { return stats_; }

  // --- for schedulers that run the pass themselves --------------------------
  /// The gradient expressions to fetch (in this order).
  const std::vector<expr>& grad_fetches() const { return fetches_; }
  /// Before the pass.
  void begin_step();
  /// During the pass: gradient fetch `index` was computed (run_options::on_fetch).
  void on_grad(size_t index, const tensor& value);
  /// After the pass: waits for the reductions and applies the update.
  status finish_step(const std::vector<tensor>& grads);

private:
  struct bucket;
  struct param;
  status apply(const feed_map& grads);

  graph& g_;
  expr loss_;
  optimizer_config cfg_;
  executor& ex_;
  variable_store& vars_;
  actors::communicator& comm_;
  allreduce_trainer_options opt_;
  std::vector<param> params_;
  std::vector<bucket> buckets_;
  std::vector<expr> fetches_;
  std::vector<int> bucket_of_fetch_; ///< -1: a sparse part
  train_ops ops_;
  int64_t step_ = 0;
  allreduce_stats stats_;
  std::chrono::steady_clock::time_point pass_start_;
  status config_error_;
};

} // namespace luoshu::schedulers
