#pragma once
// Minibatches over an in-memory dataset, optionally shuffled and prepared
// ahead of time by a background thread.

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "graph/data/dataset.hpp"
#include "graph/tensor.hpp"

namespace luoshu::data {

/// A small deterministic generator for shuffling: xoshiro256** seeded
/// through SplitMix64, so the same seed gives the same stream on every
/// platform and standard library (std::shuffle and the std distributions
/// are implementation-defined).
class shuffle_rng {
public:
  /// Seeds the four state words with successive SplitMix64 outputs.
  explicit shuffle_rng(uint64_t seed);

  /// The next 64 random bits.
  uint64_t next();
  /// Uniform in [0, bound), bound > 0, without modulo bias (rejection).
  uint64_t below(uint64_t bound);

  /// One SplitMix64 step: advances `state` and returns its output.
  static uint64_t splitmix64(uint64_t& state);

private:
  uint64_t s_[4];
};

/// The order of examples 0..n-1 in `epoch`: a Fisher-Yates shuffle driven
/// by a shuffle_rng seeded from splitmix64-of-`seed` xor `epoch`. A pure
/// function of its arguments.
std::vector<int64_t> epoch_permutation(int64_t n, uint64_t seed, int64_t epoch);

/// How a loader batches a dataset.
struct loader_options {
  int64_t batch_size = 128;
  /// Visit examples in a fresh random order each epoch.
  bool shuffle = true;
  /// With the epoch number, determines the order.
  uint64_t seed = 0;
  /// Drop the last batch when it would be smaller than batch_size.
  bool drop_last = false;
  /// Batches prepared ahead by a background thread; 0 = synchronous.
  int prefetch = 2;
};

/// One minibatch: features [b, ...] (the dataset's per-example shape),
/// labels [b, ...], the batch's position in its epoch, and ids [b, ...]
/// when the dataset has ids (undefined otherwise).
struct batch {
  tensor features;
  tensor labels;
  int64_t index = 0;
  tensor ids;
};

/// Cuts a dataset into minibatches, epoch by epoch. Used from one thread
/// (the consumer); the optional producer thread only reads the dataset and
/// the epoch's order and hands finished batches over through a bounded
/// queue. Resource type: not copyable or movable.
class loader {
public:
  /// Throws luoshu_error on a null or empty dataset, features and labels
  /// (or ids) with different example counts, a non-host dataset, batch_size <= 0,
  /// prefetch < 0, or drop_last with batch_size above the dataset size.
  loader(std::shared_ptr<const dataset> d, loader_options o);
  /// Stops and joins the producer, wherever the epoch is.
  ~loader();
  loader(const loader&) = delete;
  loader& operator=(const loader&) = delete;

  /// Begins `epoch`: stops any running producer (even mid-epoch), computes
  /// the order (epoch_permutation(n, seed, epoch), or 0..n-1 without
  /// shuffle) and, with prefetch > 0, starts a new producer.
  void start_epoch(int64_t epoch);
  /// The epoch's next batch; nullopt once the epoch is over. Before the
  /// first start_epoch it starts epoch 0. Rethrows an exception raised
  /// while the producer built a batch.
  std::optional<batch> next();
  /// Batches in one epoch: ceil(n / batch_size), or floor with drop_last.
  int64_t batches_per_epoch() const { return batches_; }
  const loader_options& options() const { return options_; }

private:
  batch make_batch(int64_t index) const;
  void produce();
  void stop_producer();

  std::shared_ptr<const dataset> data_;
  loader_options options_;
  int64_t batches_ = 0;
  // Written by start_epoch only while no producer runs; read by both.
  std::vector<int64_t> order_;
  // Consumer-only state.
  bool started_ = false;
  int64_t next_index_ = 0;
  // Producer hand-over, guarded by mu_.
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<batch> ready_;
  bool stop_ = false;
  bool done_ = false;
  std::exception_ptr failure_;
  std::thread producer_;
};

} // namespace luoshu::data
