#pragma once
// Collectives between CUDA devices through NCCL: one communicator object per
// rank, each on its own device, driven by its own thread or process. No
// CUDA or NCCL type appears here, so CPU-only code may include it; in a
// build without CUDA every call returns an error saying so.
//
// Typical use (rank 0 makes the id; the caller carries it to the others,
// e.g. over a CPU collective or, within one process, by value):
//
//   nccl_id id = *nccl_make_id();                       // rank 0
//   auto comm = nccl_communicator::create(id, rank, size, device::cuda(gpu));
//   if (!comm) return comm.err();
//   tensor g = grad.to(stream);                         // on cuda:gpu
//   if (auto s = (*comm)->allreduce(g, g, reduce_op::mean, stream); !s) return s.err();
//   stream.synchronize();                               // the sum is in g
//
// Every collective is collective: each rank calls it, in the same order,
// with the same dtype and counts. Calls only queue work on the caller's
// stream; the result is there after stream.synchronize() (or for later work
// queued on the same stream).

#include <array>
#include <memory>

#include "graph/device.hpp"
#include "graph/error.hpp"
#include "graph/reduce_op.hpp"

namespace luoshu {

class device_stream;
class tensor;

/// ncclUniqueId's 128 bytes, opaque: rank 0 makes one and every rank gets a
/// copy (the caller carries it, e.g. over a CPU collective).
struct nccl_id {
  std::array<char, 128> bytes{};
};

/// Whether this build has NCCL (it is built with CUDA).
bool nccl_built();

/// A fresh id (rank 0 calls this, once per communicator). Error: the build
/// has no NCCL, or NCCL's message.
result<nccl_id> nccl_make_id();

/// One rank's membership in an NCCL communicator on one CUDA device.
/// Resource type: not copyable or movable. One owner thread at a time,
/// except abort() and check_async(), which a watchdog thread may call while
/// the owner waits on its stream.
///
/// Tensors passed to the collectives must be defined, contiguous device
/// tensors on this communicator's device (checked, including that the
/// memory really is CUDA memory of that device), of dtype f32, f64, i32 or
/// i64, in and out of the same dtype; only element counts are checked, not
/// shapes. `stream` must be a stream of the CUDA backend on the same device.
/// Empty tensors queue nothing (every rank has the same counts, so every
/// rank skips alike).
class nccl_communicator {
public:
  /// Joins communicator `id` as `rank` of `size` on device `dev`
  /// (ncclCommInitRank). Collective: every rank must call it, each from its
  /// own thread or process; it returns once all have joined. Errors name the
  /// rank, the device and NCCL's message; nothing crashes. Error without
  /// NCCL in the build.
  static result<std::unique_ptr<nccl_communicator>> create(const nccl_id& id, int rank, int size, device dev);

  /// ncclCommDestroy, or ncclCommAbort if a call failed (a destroy could
  /// wait forever for a dead peer); nothing if abort() already ran.
  ~nccl_communicator();
  nccl_communicator(const nccl_communicator&) = delete;
  nccl_communicator& operator=(const nccl_communicator&) = delete;

  int rank() const { return rank_; }
  int size() const { return size_; }
  luoshu::device device() const { return dev_; }

  /// Every rank's `in` combined by `op` into every rank's `out` (same numel).
  /// In place when in and out share their first byte (`allreduce(g, g, ...)`).
  /// mean: ncclAvg for f32/f64 (a plain copy with one rank); for i32/i64
  /// NCCL's sum followed by a small kernel dividing by size() on the same
  /// stream (C++ integer division, rounding towards zero).
  status allreduce(const tensor& in, tensor& out, reduce_op op, device_stream& stream);
  /// Rank `root`'s `in` into every rank's `out` (same numel on every rank;
  /// `in` is read on the root only). In place when in and out share their
  /// first byte.
  status broadcast(const tensor& in, tensor& out, int root, device_stream& stream);
  /// Every rank's `in`, concatenated in rank order, into every rank's `out`:
  /// out.numel() == size() * in.numel(). In place when `in` is rank()'s slice
  /// of `out` (NCCL's rule).
  status allgather(const tensor& in, tensor& out, device_stream& stream);
  /// Every rank's `in` combined by `op`; rank r gets slice r of the result:
  /// in.numel() == size() * out.numel(). In place when `out` is rank()'s
  /// slice of `in` (NCCL's rule). mean as for allreduce.
  status reduce_scatter(const tensor& in, tensor& out, reduce_op op, device_stream& stream);

  /// Asks NCCL, without blocking, whether an asynchronous error (a dead peer,
  /// a network failure) has hit this communicator; such an error needs
  /// abort(). Also an error after abort().
  status check_async() const;

  /// Aborts pending work (a peer died: the owner's stream would otherwise
  /// wait forever) and frees the communicator (ncclCommAbort); every later
  /// call returns an error. A watchdog thread may call it while the owner
  /// waits on its stream, but not while the owner is inside another call of
  /// this object.
  void abort();

  /// A communicator that never joined: every call returns an error (a
  /// placeholder, and for tests). create() is the way to a working one.
  nccl_communicator(int rank, int size, luoshu::device dev);

private:
  struct impl; // the NCCL state, defined by the build's implementation
  int rank_;
  int size_;
  luoshu::device dev_;
  std::unique_ptr<impl> impl_;
};

} // namespace luoshu
