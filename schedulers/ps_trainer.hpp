#pragma once
// Data-parallel training through the parameter server: each worker runs
// the model's forward and backward pass locally and leaves the optimizer to
// the shards (actors/ps.hpp). One step of worker w:
//   1. pull its parameters: dense variables whole; an embedding table whose
//      ids placeholder is named in `ids_of` only the rows this batch reads
//      (the rest of the local copy is not read this step);
//   2. run loss and gradients on its share of the batch;
//   3. push the gradients (an embedding's sparse gradient: touched rows);
//   4. tell the shards it finished the step (clock).
// Under BSP the shards apply the average of the workers' gradients once
// per step, so W workers on equal shares of a global batch train like one
// process on the whole batch (up to float rounding).
//
// Each trainable variable becomes one table: rank >= 2 -> rows = dim 0,
// width = the rest; rank <= 1 -> one row. Server-side optimizers: sgd,
// momentum, adagrad, adam (constant learning rate, optional L2 weight
// decay); schedules, clipping, nesterov and adamw are refused by name.

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "actors/ps.hpp"
#include "graph/autodiff.hpp"
#include "graph/executor.hpp"
#include "graph/optimizer.hpp"

namespace luoshu::schedulers {

struct ps_trainer_options {
  int worker = 0;
  /// Embedding tables (variable name) whose rows this placeholder's ids
  /// select: only those rows are pulled each step.
  std::map<std::string, expr> ids_of;
  /// Table ids start here (several models can share shards).
  uint32_t first_table = 0;
};

/// More for the same pass (luoshu train --strategy hybrid: the dense
/// gradients that go through all-reduce).
struct ps_step_extras {
  std::vector<expr> fetches;
  /// run_options::on_fetch for them (index into `fetches`).
  std::function<void(size_t, const tensor&)> on_fetch;
  /// Their values, after the step.
  std::vector<tensor> values;
};

class ps_trainer {
public:
  /// `params`: the variables to train (default: every trainable one).
  ps_trainer(graph& g, expr loss, const optimizer_config& cfg, executor& ex, variable_store& vars,
             actors::ps_client& client, ps_trainer_options o = {}, std::vector<expr> params = {});

  /// Creates the tables; with `assign_initial`, writes this worker's initial
  /// values into them (one worker does this before any worker's first step).
  status init(bool assign_initial);
  /// One step; returns the loss of this worker's share. `extra` fetches more
  /// in the same forward/backward pass.
  result<double> step(const feed_map& feeds, ps_step_extras* extra = nullptr);
  int64_t steps_done() const { return step_; }
  /// Copies the current parameters from the shards into the local store
  /// (e.g. before evaluating or saving).
  status fetch_parameters();

private:
  struct param {
    expr var;
    std::string name;
    actors::ps_table_spec spec;
    gradient grad;
    expr ids; ///< the placeholder whose ids select the rows to pull (invalid: all rows)
  };
  status pull_into_store(const feed_map* feeds);

  graph& g_;
  expr loss_;
  executor& ex_;
  variable_store& vars_;
  actors::ps_client& client_;
  ps_trainer_options opt_;
  std::vector<param> params_;
  std::vector<expr> fetches_;
  status config_error_;
  int64_t step_ = 0;
};

} // namespace luoshu::schedulers
