#pragma once
// Builds a model from a train_config and trains it on the local executor:
// the engine behind `luoshu train`.

#include <memory>
#include <string>
#include <vector>

#include "apps/train/config.hpp"
#include "graph/data/dataset.hpp"
#include "graph/executor.hpp"
#include "graph/graph.hpp"

namespace luoshu::app {

/// The graph pieces of a built model.
struct model {
  expr x;        ///< features placeholder [?, input...]
  expr y;        ///< labels placeholder [?] (i64 for classification, else f32)
  expr ids;      ///< categorical ids placeholder [?, fields] (wide_deep only)
  expr logits;   ///< [?, classes] (or [?] for a single output)
  expr loss;     ///< mean loss over the batch
  expr accuracy; ///< fraction correct (classification only)
  bool classification = true;
};

/// Adds the model described by `cfg` to `g`. Throws luoshu_error naming the
/// layer on a bad configuration (shape mismatch etc.).
model build_model(graph& g, const model_config& cfg, uint64_t seed);

/// Loads the training and (optional) test sets the config names.
struct datasets {
  std::shared_ptr<const data::dataset> train;
  std::shared_ptr<const data::dataset> test; ///< null when the config has none
};
result<datasets> load_datasets(const train_config& cfg);

struct epoch_stats {
  int64_t epoch = 0;
  double train_loss = 0;   ///< mean over the epoch's batches
  double test_loss = -1;   ///< -1 without a test set
  double test_accuracy = -1;
  double test_auc = -1;    ///< binary models only
  double test_log_loss = -1; ///< binary models only (metrics::log_loss)
  double samples_per_sec = 0;
  double seconds = 0;
};

struct train_summary {
  std::vector<epoch_stats> epochs;
  int64_t steps = 0;
  double train_loss = 0;
  double test_loss = -1;
  double test_accuracy = -1;
  double test_auc = -1;
  double test_log_loss = -1;
  double samples_per_sec = 0;     ///< training throughput (excluding evaluation)
  double wall_seconds = 0;        ///< the whole run, data loading included
  size_t peak_memory_bytes = 0;   ///< executor pool + variables
  size_t max_rss_bytes = 0;       ///< the process's peak resident set
  int threads = 0;
  std::string device = "cpu";
};

/// Receives progress while training runs.
class progress_sink {
public:
  virtual ~progress_sink() = default;
  virtual void on_start(const train_config& cfg, int64_t train_examples, int64_t steps_per_epoch) = 0;
  virtual void on_step(int64_t epoch, int64_t step_in_epoch, int64_t steps_per_epoch, double loss,
                       double samples_per_sec) = 0;
  virtual void on_epoch(const epoch_stats& e) = 0;
};

/// Trains as configured. Errors (missing data, bad shapes, a kernel error)
/// come back as values naming the problem.
/// Runs training steps somewhere other than the local trainer: luoshu train
/// --strategy ps hands train() one that goes through parameter-server
/// shards, or all-reduce among replicas (apps/luoshu/dist_train.cpp). Each worker process runs train() on
/// the same data in the same order and feeds its share of every batch.
class step_strategy {
public:
  virtual ~step_strategy() = default;
  /// The model is built and its variables initialised; `resume_step` is the
  /// step a resumed run continues from (0 otherwise).
  virtual status attach(graph& g, const model& m, executor& ex, variable_store& vars, const optimizer_config& opt,
                        int64_t resume_step) = 0;
  /// One step on this worker's rows of the global batch; returns their loss.
  virtual result<double> step(const feed_map& share) = 0;
  /// Makes the local store current (before evaluating).
  virtual status sync() = 0;
  /// Saves the job's state (after `steps` steps) to the checkpoint directory.
  virtual status save(const std::string& dir, int64_t steps) = 0;
  /// Reads the step count a checkpoint directory was saved at.
  virtual result<int64_t> saved_step(const std::string& dir) = 0;
  virtual int worker() const = 0;
  virtual int workers() const = 0;
};

result<train_summary> train(const train_config& cfg, progress_sink* progress = nullptr,
                            step_strategy* strategy = nullptr);

/// The summary as a JSON object (for --summary-json).
std::string summary_json(const train_config& cfg, const train_summary& s);

} // namespace luoshu::app
