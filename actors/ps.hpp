#pragma once
// The parameter server: ps_shard actors (one store each, actors/ps_store.hpp)
// and the ps_client that workers use. Every request and reply is a Cap'n
// Proto ps message (transport/schemas/ps.capnp), in one process or across.
//
// Consistency, enforced by the shards with per-worker clocks. A worker
// runs step t as: pull(clock t) ... push(clock t) ... clock(t). A shard
// records for each worker how many steps it finished (clock(t) -> t + 1).
//   - BSP: a pull at clock t waits until every worker finished step t - 1.
//     Pushes of step t are held until every worker finished step t, then
//     summed in worker order, divided by the worker count and applied once:
//     W workers on equal shares of a global batch train exactly like one
//     process on the whole batch (up to float summation order).
//   - SSP(k): a pull at clock t waits until every worker finished step
//     t - 1 - k; pushes are applied as they come, divided by the worker
//     count.
//   - ASP: nothing waits; pushes are applied as they come.
// The staleness of a served pull (t minus the slowest worker's finished
// steps) comes back with it and never exceeds k (0 for BSP). A pull that
// waits longer than the shard's wait timeout fails naming the slowest worker.

#include <caf/actor.hpp>

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <future>
#include <memory>
#include <string>
#include <vector>

#include "actors/ps_store.hpp"
#include "graph/error.hpp"
#include "graph/tensor.hpp"

namespace luoshu::actors {

struct ps_consistency {
  enum class kind_t : uint8_t { bsp, ssp, asp };
  kind_t kind = kind_t::bsp;
  int64_t staleness = 0; ///< ssp's bound k
  /// "bsp", "ssp:K" (K >= 0), "asp"; an error names the text otherwise.
  static result<ps_consistency> parse(const std::string& s);
  std::string to_string() const;
};

struct ps_shard_options {
  int shard = 0;
  int shards = 1;
  int workers = 1;
  ps_consistency consistency;
  std::chrono::milliseconds wait_timeout{std::chrono::seconds(60)};
  /// Save the shard's checkpoint to `checkpoint_dir` every this many steps
  /// (0: only on request).
  int64_t checkpoint_every = 0;
  std::string checkpoint_dir;
};

/// Starts a shard actor in `sys`.
caf::actor spawn_ps_shard(caf::actor_system& sys, ps_shard_options o);

class node;
/// A job's shards across nodes: each server node serves its shard (under
/// "ps-shard-N"), and every worker connects to each shard directly (a
/// server never connects to a worker: its replies go back over the
/// worker's connection). An error names the shard.
status serve_ps_shard(node& n, int shard, const caf::actor& a);
result<std::vector<caf::actor>> connect_ps_shards(node& n, int shards,
                                                  std::chrono::milliseconds timeout = std::chrono::minutes(2));

/// A result that arrives later: wait with get() (once), or poll ready().
template <class T>
class ps_future {
public:
  ps_future() = default;
  explicit ps_future(std::future<result<T>> f) : f_(std::move(f)) {}
  result<T> get() { return f_.valid() ? f_.get() : result<T>(error{"ps_future: no value (get() was called)"}); }
  bool ready() const {
    return f_.valid() && f_.wait_for(std::chrono::seconds(0)) == std::future_status::ready;
  }

private:
  std::future<result<T>> f_;
};

/// A worker's view of the parameter server. Keys are grouped by shard and
/// deduplicated (a pull returns one row per requested key, in order;
/// duplicate keys of a push are summed first). Calls are safe from one
/// thread at a time.
class ps_client {
public:
  ps_client(caf::actor_system& sys, std::vector<caf::actor> shards, int worker,
            std::chrono::milliseconds timeout = std::chrono::seconds(120));
  ~ps_client();
  ps_client(const ps_client&) = delete;
  ps_client& operator=(const ps_client&) = delete;

  int worker() const { return worker_; }
  size_t shards() const { return shards_.size(); }
  /// A shard's part of a larger push or pull goes as requests of at most
  /// this many bytes of rows, all sent at once, so that the shard applies
  /// one while the next is still on its way (bench ps, one shard, dense
  /// push_pull: 4 MiB 1.0-1.2 -> 1.5-1.7 GB/s and 16 MiB 0.4-0.5 -> 1.4-1.8
  /// against one request; 128 and 256 KiB measured alike, 1 and 4 MiB worse).
  static constexpr size_t max_request_bytes = size_t{1} << 18;

  /// Waits until every shard answers, retrying a request that gets no
  /// answer (a fresh connection between two nodes can lose its first
  /// message); an error names the shard that stayed silent for `limit`.
  status connect(std::chrono::milliseconds limit = std::chrono::seconds(30));
  /// Creates the table on every shard (idempotent for the same spec).
  status create(const ps_table_spec& spec);
  /// Rows [keys, width] of `table` as of this worker's step `clock`.
  ps_future<tensor> pull(uint32_t table, const std::vector<uint64_t>& keys, int64_t clock);
  /// Pushes gradient rows [keys, width] of step `clock`.
  ps_future<bool> push(uint32_t table, const std::vector<uint64_t>& keys, const tensor& grads, int64_t clock);
  /// Pushes, then pulls the same rows (the pull waits as pull() does), in
  /// one request per shard.
  ps_future<tensor> push_pull(uint32_t table, const std::vector<uint64_t>& keys, const tensor& grads, int64_t clock);
  /// Callback forms: `done` runs on the client's actor thread.
  void pull(uint32_t table, const std::vector<uint64_t>& keys, int64_t clock, std::function<void(result<tensor>)> done);
  void push(uint32_t table, const std::vector<uint64_t>& keys, const tensor& grads, int64_t clock,
            std::function<void(result<bool>)> done);
  /// Sets rows (no optimizer): e.g. initial values from a local store.
  status assign(uint32_t table, const std::vector<uint64_t>& keys, const tensor& values);
  /// This worker finished step `clock` (every shard learns it).
  status clock(int64_t clock);
  /// A server-side function on every shard; the partials summed.
  result<std::vector<double>> call(const std::string& func, uint32_t table, const std::vector<double>& args = {});
  /// Every shard saves to / loads from `dir`.
  status save(const std::string& dir);
  status load(const std::string& dir);
  /// The largest staleness any pull of this client was served with.
  int64_t max_staleness() const { return max_staleness_->load(); }

private:
  struct impl;
  using replies = std::vector<result<std::vector<char>>>;
  /// `timeout` 0: the client's.
  void send(std::vector<std::pair<size_t, std::vector<char>>> msgs, std::function<void(replies)> done,
            std::chrono::milliseconds timeout = {});
  /// The requests of `op` to the shards that own some of `keys` (one or
  /// more per shard, in order).
  struct routed {
    std::vector<std::pair<size_t, std::vector<char>>> msgs;
    std::vector<size_t> shards;  ///< each message's shard
    std::vector<size_t> counts;  ///< rows asked by each message
    std::vector<size_t> slot_of; ///< key i's row in the concatenated replies (see split)
  };
  /// Requests of `op` for `keys`; with `rows` ([keys, width], duplicates
  /// summed) each carries its part of them.
  result<routed> route(transport::ps_op op, uint32_t table, const std::vector<uint64_t>& keys, const tensor* rows,
                       int64_t clock);
  /// push / assign: rows [keys, width] (duplicates summed) to their shards.
  void send_rows(transport::ps_op op, uint32_t table, const std::vector<uint64_t>& keys, const tensor& rows,
                 int64_t clock, std::function<void(result<bool>)> done);
  /// pull / push_pull: the rows [keys, width] the shards answer with.
  void exchange_rows(transport::ps_op op, uint32_t table, const std::vector<uint64_t>& keys, const tensor* rows,
                     int64_t clock, std::function<void(result<tensor>)> done);
  result<std::vector<std::pair<size_t, std::vector<uint64_t>>>> split(uint32_t table, const std::vector<uint64_t>& keys,
                                                                      std::vector<size_t>& slot_of) const;
  status everywhere(std::function<void(transport::ps_request&)> fill, const std::string& what,
                    std::chrono::milliseconds timeout = {});

  caf::actor_system& sys_;
  std::vector<caf::actor> shards_;
  int worker_;
  std::chrono::milliseconds timeout_;
  std::unique_ptr<impl> impl_;
  std::map<uint32_t, ps_table_spec> specs_;
  std::atomic<uint64_t> seq_{0};
  std::shared_ptr<std::atomic<int64_t>> max_staleness_ = std::make_shared<std::atomic<int64_t>>(0);
};

} // namespace luoshu::actors
