#pragma once
// Collectives among the ranks of a ring: all-reduce, all-gather (also with a
// different count per rank), reduce-scatter and broadcast, for f32, f64,
// i32 and i64 host tensors.
//
// Each rank is one `collective peer` actor (detached: it has a thread of its
// own) that receives from its left neighbour (rank - 1) and sends to its
// right (rank + 1) over the bulk lane (transport/bulk): every message is a
// Cap'n Proto collective message (transport/schemas/collective.capnp) in a
// lane message frame, and a chunk's elements are that frame's payload, which
// the kernel writes straight into a pooled buffer.
//
// Between two ranks on one host a chunk's elements skip TCP: the sender
// offers shared-memory slots (transport/bulk/shm_slots.hpp, `shm_slots` of
// `chunk_bytes` each) in its hello when its right neighbour advertises the
// same host; the receiver maps them if it can (same /dev/shm, checked by a
// nonce) and answers through the coordinator before create() returns, and
// from then on a chunk's message names the slot that holds its elements
// instead of carrying them (a reduce-scatter step combines straight from the left's slot into
// the right's). The messages still travel over the lane, in order; a chunk
// whose next slot is still in use goes inline, so neither side ever waits
// for the other's memory. Ranks on different hosts use TCP only.
//
// All-reduce is a ring reduce-scatter followed by a ring all-gather over n
// segments of the buffer (any element count: segment sizes differ by at most
// one). Each segment is cut into chunks of `chunk_bytes` (or halves of a
// smaller segment, see collective_options), and every chunk
// moves on as soon as it has arrived and been combined, so the steps of the
// ring overlap: with a buffer of B bytes each rank sends and receives about
// 2(n-1)/n * B bytes. Reduce-scatter and all-gather are the two halves;
// broadcast pipelines the chunks along the ring from the root.
//
// Over a power-of-two number of ranks (4 or more), an all-reduce of at most
// `halving_doubling_max_bytes` runs as recursive halving and doubling
// instead (Rabenseifner's algorithm, which MPI libraries pick for such
// sizes): log2(n) reduce-scatters between pairs of ranks, each halving the
// part a rank holds (first with rank ^ 1, then rank ^ 2, ...), then the
// all-gathers back in reverse order. It moves as many bytes as the ring
// but in 2 log2(n) steps instead of 2(n-1), which wins where the steps,
// not the bytes, cost the time: small buffers, many ranks, more ranks than
// cores. Each pair is a two-rank ring of its own, `group`/pair-A-B (same
// lanes and chunking, failures reported the same way, naming ranks by their
// rank in the job, and shared-memory slots for one step's half);
// create() connects them. Calls keep their order across the two kinds, and
// the ring still carries every call: for one that runs on the pairs, each
// rank sends its right neighbour a message without elements, so that a
// rank running something else is a mismatch at once (as on the ring), not
// a timeout. A failure of any of the rings fails them all.
//
// Semantics are NCCL's: every rank issues the same collectives in the same
// order (a mismatch in kind, type, operation or size is an error naming both
// sides); in place when `in` and `out` are the same tensor (for all-gather:
// `in` is out's slice at rank * count; for reduce-scatter: `out` is in's
// slice at rank * count); calls return a future at once and run in call
// order, so a caller can overlap them with its own work. The buffers must
// stay alive and unchanged until the future is ready.
//
// Failure: a rank whose process dies or whose connection drops is named to
// every survivor (through the job's coordinator, or by watching the other
// ranks' peer actors when they share a process), a rank
// that gives up tells the ring (an abort message), and a collective that
// makes no progress for `timeout` fails naming the rank it waits for. After
// a failure every pending and later collective of the communicator fails
// with the same error; nothing waits forever.

#include <caf/fwd.hpp>

#include <chrono>
#include <cstdint>
#include <future>
#include <memory>
#include <string>
#include <vector>

#include "graph/error.hpp"
#include "graph/reduce_op.hpp"
#include "graph/tensor.hpp"

namespace luoshu {
class nccl_communicator;
} // namespace luoshu

namespace luoshu::actors {

class node;

struct collective_options {
  /// The communicator's name: rings of different names are independent.
  std::string group = "default";
  /// Pipelining granularity: segments move in chunks of at most this many
  /// bytes. A segment of up to 2 * chunk_bytes is cut into two halves
  /// instead, down to chunks of split_floor_bytes (a collective of 1 MiB over
  /// 2 ranks: two 256 KiB chunks per segment, not one of 512 KiB), so that
  /// small collectives pipeline too. Every rank derives the chunking from
  /// the call's largest segment and these two options, which must be the
  /// same on every rank.
  size_t chunk_bytes = size_t{512} << 10;
  /// The smallest chunk that halving a segment makes (above: chunks that
  /// small cost more in per-chunk overhead than pipelining wins back).
  size_t split_floor_bytes = size_t{256} << 10;
  /// A collective that receives nothing for this long fails.
  std::chrono::milliseconds timeout{std::chrono::seconds(60)};
  /// How long create() waits for the other ranks.
  std::chrono::milliseconds connect_timeout{std::chrono::seconds(60)};
  /// Shared-memory slots of chunk_bytes each offered to the right neighbour
  /// for payloads (used when it is on the same host; see the top of this
  /// file). 0: every payload goes over TCP.
  uint32_t shm_slots = 16;
  /// The address this rank's lane listens on and advertises; empty: the
  /// node's bulk_host (node::create) or 127.0.0.1 (create_local).
  std::string host;
  /// All-reduces of at most this many bytes run as recursive halving and
  /// doubling when the ring has a power-of-two number of ranks, 4 or more
  /// (see the top of this file); 0: always the ring (and no pair rings are
  /// connected). Must be the same on every rank.
  size_t halving_doubling_max_bytes = size_t{1} << 20;
  /// How errors name the ranks: rank k as rank_names[k] (e.g. its rank in
  /// the job, for a ring among some of its ranks); empty: by rank here.
  std::vector<int> rank_names;
};

/// The outcome of one collective: wait with get() (once), or poll ready().
class collective_future {
public:
  collective_future() = default;
  explicit collective_future(std::future<status> f) : f_(std::move(f)) {}
  status get() { return f_.valid() ? f_.get() : status(error{"collective_future: no value (get() was called)"}); }
  bool ready() const { return f_.valid() && f_.wait_for(std::chrono::seconds(0)) == std::future_status::ready; }

private:
  std::future<status> f_;
};

/// Counters of one communicator (a snapshot).
struct collective_stats {
  uint64_t ops = 0;            ///< collectives completed
  uint64_t bytes_sent = 0;     ///< payload bytes sent (to the right neighbour, and to halving-doubling partners)
  uint64_t bytes_received = 0; ///< payload bytes received (from the left, and from partners)
  uint64_t bytes_sent_shm = 0; ///< of bytes_sent, those that went through shared memory
  uint64_t chunks_sent = 0;    ///< chunks (messages carrying payload) sent to the right
  uint64_t ops_halving_doubling = 0; ///< of ops, all-reduces done by halving and doubling
};

/// One rank's membership in a ring. Calls are safe from one thread at a time.
class communicator {
public:
  /// Joins ring `o.group` of `size` ranks as `rank`, finding its neighbours
  /// through the job's coordinator (node::publish / fetch). Every rank of
  /// the ring calls it; it returns once this rank is connected to its right
  /// neighbour, its left neighbour is connected to it, and their shared
  /// memory is settled (both within `o.connect_timeout`). `n` must outlive
  /// the communicator (a failure the coordinator reports ends the
  /// collectives in progress).
  static result<std::unique_ptr<communicator>> create(node& n, int rank, int size, collective_options o = {});
  /// `size` ranks in one actor system (tests, benchmarks, one process with
  /// several devices).
  static result<std::vector<std::unique_ptr<communicator>>> create_local(caf::actor_system& sys, int size,
                                                                         collective_options o = {});
  ~communicator();
  communicator(const communicator&) = delete;
  communicator& operator=(const communicator&) = delete;

  int rank() const { return rank_; }
  int size() const { return size_; }
  const std::string& group() const { return group_; }

  /// out = op over every rank's `in` (same dtype and element count; any shape).
  collective_future allreduce(const tensor& in, tensor& out, reduce_op op);
  /// out = the ranks' `in` concatenated in rank order (out.numel() == size * in.numel()).
  collective_future allgather(const tensor& in, tensor& out);
  /// As allgather with rank k contributing counts[k] elements (counts agree on every rank).
  collective_future allgatherv(const tensor& in, tensor& out, std::vector<int64_t> counts);
  /// out = this rank's slice of op over every rank's `in` (in.numel() == size * out.numel()).
  collective_future reduce_scatter(const tensor& in, tensor& out, reduce_op op);
  /// out = root's `in` (on the root, `in` is read; elsewhere only `out` matters).
  collective_future broadcast(const tensor& in, tensor& out, int root);

  /// Stops this rank abruptly, as if its process died (tests of failure
  /// handling): its peer actor is killed and its connections drop.
  void kill_for_testing();

  /// The error that ended the communicator, if any.
  std::string failure() const;
  collective_stats stats() const;
  /// Whether payloads to the right neighbour go through shared memory (it
  /// mapped the slots this rank offered; settled when create returns).
  bool shared_memory() const;
  /// Whether all-reduces up to halving_doubling_max_bytes run as halving
  /// and doubling (a power-of-two ring of 4 or more ranks, the option > 0).
  bool halving_doubling() const;

  struct impl;

private:
  communicator() = default;
  collective_future submit(std::shared_ptr<struct collective_call> call, bool halving_doubling = false);

  std::shared_ptr<impl> impl_;
  int rank_ = 0;
  int size_ = 1;
  std::string group_;
};

/// An NCCL communicator among the ranks of `ring`, this rank on CUDA device
/// `dev` (one device per rank): rank 0 makes NCCL's unique id and the ring
/// broadcasts it. Collective over the ring; errors name the cause (a build
/// without CUDA, a CPU device, NCCL's own message).
result<std::unique_ptr<nccl_communicator>> make_nccl_communicator(communicator& ring, device dev);

} // namespace luoshu::actors
