// NCCL collectives on CUDA tensors (graph/nccl.hpp). Every argument is
// checked before NCCL sees it, every NCCL and CUDA return code is turned
// into an error naming the rank, the device and the operation, and
// asynchronous failures (a dead peer) are polled with ncclCommGetAsyncError
// before each call.
//
// No call here needs ncclGroupStart/End: each public call issues one NCCL
// collective from the rank's own thread, and ranks in one process each have
// their own thread (ncclCommInitRank from a single thread for several ranks
// would need a group; create() joins one rank only).

#include <nccl.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <string>

#include "graph/nccl.hpp"
#include "ops/cuda/gpu.cuh"

namespace luoshu {

namespace cuda {
/// A communicator's NCCL state (nccl_communicator::impl is this).
struct nccl_state {
  ncclComm_t comm = nullptr;
  /// An NCCL call failed: the destructor aborts instead of destroying (a
  /// destroy flushes pending work, which may wait forever for a dead peer).
  std::atomic<bool> failed{false};
  /// abort() ran: comm is gone.
  std::atomic<bool> aborted{false};
};
} // namespace cuda

struct nccl_communicator::impl : cuda::nccl_state {};

namespace {

static_assert(sizeof(ncclUniqueId) == sizeof(nccl_id::bytes), "nccl_id must hold an ncclUniqueId exactly");

/// NCCL's name for `r` and, where it has one, its last detailed message.
std::string nccl_message(ncclResult_t r, ncclComm_t comm) {
  std::string m = ncclGetErrorString(r);
  const char* last = ncclGetLastError(comm);
  if (last && *last) m += " (" + std::string(last) + ")";
  return m;
}

bool nccl_type(dtype t, ncclDataType_t& out) {
  switch (t) {
    case dtype::f32: out = ncclFloat32; return true;
    case dtype::f64: out = ncclFloat64; return true;
    case dtype::i32: out = ncclInt32; return true;
    case dtype::i64: out = ncclInt64; return true;
    default: return false;
  }
}

/// The NCCL op for `op` on `t` among `ranks` ranks. Integer mean is a sum
/// here, divided afterwards by divide_in_place (ncclAvg is for floats).
/// The mean of one rank is its input, so it is a sum (a copy) too: NCCL
/// 2.28.9's one-rank ncclAvg left the last elements of an out-of-place
/// output unwritten (3 of 2^20 + 3 elements, in f32 and f64, on an H200;
/// tests/gpu/nccl_test.cpp checks sizes like that).
ncclRedOp_t nccl_op(reduce_op op, dtype t, int ranks) {
  switch (op) {
    case reduce_op::sum: return ncclSum;
    case reduce_op::mean: return is_float(t) && ranks > 1 ? ncclAvg : ncclSum;
    case reduce_op::max: return ncclMax;
    case reduce_op::min: return ncclMin;
  }
  return ncclSum;
}

template <class T>
__global__ void divide_kernel(T* p, int64_t n, T d) {
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step) p[i] /= d;
}

const char* role_name(bool is_in) { return is_in ? "the input" : "the output"; }

bool overlap(const tensor& a, const tensor& b) {
  auto pa = reinterpret_cast<uintptr_t>(a.raw()), pb = reinterpret_cast<uintptr_t>(b.raw());
  return pa < pb + b.nbytes() && pb < pa + a.nbytes();
}

/// One public call: where it runs (for messages) and the checks it shares.
class nccl_call {
public:
  nccl_call(const nccl_communicator& c, cuda::nccl_state* st, const char* what)
      : c_(c), st_(st), what_(what) {}

  error fail(const std::string& msg) const {
    return error{"NCCL " + std::string(what_) + " on rank " + std::to_string(c_.rank()) + " of " +
                 std::to_string(c_.size()) + " (" + c_.device().to_string() + "): " + msg};
  }

  /// The communicator is alive and has no pending asynchronous error.
  status alive() const {
    if (!st_ || !st_->comm) return fail("the communicator was never joined (use nccl_communicator::create)");
    if (st_->aborted) return fail("the communicator was aborted");
    ncclResult_t async = ncclSuccess;
    ncclResult_t r = ncclCommGetAsyncError(st_->comm, &async);
    if (r != ncclSuccess) {
      st_->failed = true;
      return fail("asking NCCL for asynchronous errors failed: " + nccl_message(r, st_->comm));
    }
    if (async != ncclSuccess && async != ncclInProgress) {
      st_->failed = true;
      return fail("an earlier operation failed asynchronously: " + nccl_message(async, st_->comm) +
                  "; abort() this communicator");
    }
    return {};
  }

  /// alive(), then the stream and the current device; sets stream_.
  status begin(device_stream& s) {
    if (auto a = alive(); !a) return a;
    if (s.device() != c_.device())
      return fail("the stream is on " + s.device().to_string() + ", not on the communicator's device");
    auto* native = static_cast<cuda::stream_state*>(s.native());
    if (!native || !native->stream) return fail("the stream has no CUDA stream (not a stream of the CUDA backend)");
    stream_ = native->stream;
    if (cudaError_t e = cudaSetDevice(c_.device().index); e != cudaSuccess) {
      cudaGetLastError();
      return fail(std::string("selecting the device failed: ") + cudaGetErrorString(e));
    }
    return {};
  }

  /// `t` is a usable operand: defined, in CUDA memory of this device, of a
  /// supported dtype.
  status operand(const tensor& t, bool is_in) const {
    std::string role = role_name(is_in);
    if (!t.defined()) return fail(role + " tensor is undefined");
    if (t.on_host())
      return fail(role + " tensor is on the cpu; NCCL needs it on " + c_.device().to_string() +
                  " (move it with tensor::to(stream))");
    if (t.device() != c_.device())
      return fail(role + " tensor is on " + t.device().to_string() + ", not on the communicator's device");
    ncclDataType_t nt;
    if (!nccl_type(t.type(), nt))
      return fail(role + " tensor has dtype " + std::string(name(t.type())) + "; NCCL collectives here take f32, f64, i32 or i64");
    if (t.numel() == 0) return {};
    cudaPointerAttributes a{};
    if (cudaError_t e = cudaPointerGetAttributes(&a, t.raw()); e != cudaSuccess) {
      cudaGetLastError();
      return fail(role + " tensor's memory is not CUDA memory (" + cudaGetErrorString(e) + ")");
    }
    if (a.type != cudaMemoryTypeDevice && a.type != cudaMemoryTypeManaged)
      return fail(role + " tensor is marked " + t.device().to_string() +
                  " but its memory is not CUDA device memory (a host emulation's tensor?)");
    if (a.device != c_.device().index)
      return fail(role + " tensor's memory is on cuda:" + std::to_string(a.device) + ", not on the communicator's device");
    return {};
  }

  /// Both operands usable and of one dtype.
  status operands(const tensor& in, const tensor& out) const {
    if (auto s = operand(in, true); !s) return s;
    if (auto s = operand(out, false); !s) return s;
    if (in.type() != out.type())
      return fail(std::string("the input is ") + name(in.type()) + " but the output is " + name(out.type()) +
                  " (they must have the same dtype)");
    return {};
  }

  /// Checks an NCCL return code; a failure marks the communicator failed.
  status nccl(ncclResult_t r) const {
    if (r == ncclSuccess) return {};
    st_->failed = true;
    return fail(nccl_message(r, st_->comm));
  }

  /// out[i] /= size() on the stream (integer mean after an NCCL sum).
  status divide_in_place(const tensor& out) const {
    const int64_t n = out.numel();
    constexpr int threads = 256;
    const auto blocks = static_cast<unsigned>(std::min<int64_t>((n + threads - 1) / threads, 65536));
    cudaGetLastError(); // a failure elsewhere on this thread must not be blamed on this launch
    if (out.type() == dtype::i32)
      divide_kernel<<<blocks, threads, 0, stream_>>>(out.device_data<int32_t>(), n, static_cast<int32_t>(c_.size()));
    else
      divide_kernel<<<blocks, threads, 0, stream_>>>(out.device_data<int64_t>(), n, static_cast<int64_t>(c_.size()));
    if (cudaError_t e = cudaGetLastError(); e != cudaSuccess)
      return fail(std::string("launching the integer mean's division failed: ") + cudaGetErrorString(e));
    return {};
  }

  cudaStream_t stream() const { return stream_; }
  ncclComm_t comm() const { return st_->comm; }
  ncclDataType_t type(const tensor& t) const {
    ncclDataType_t nt = ncclFloat32;
    nccl_type(t.type(), nt);
    return nt;
  }

private:
  const nccl_communicator& c_;
  cuda::nccl_state* st_;
  const char* what_;
  cudaStream_t stream_ = nullptr;
};

std::string count_text(int64_t n) { return std::to_string(n) + (n == 1 ? " element" : " elements"); }

} // namespace

bool nccl_built() { return true; }

result<nccl_id> nccl_make_id() {
  ncclUniqueId uid;
  if (ncclResult_t r = ncclGetUniqueId(&uid); r != ncclSuccess)
    return error{"NCCL: making a communicator id failed: " + nccl_message(r, nullptr)};
  nccl_id id;
  std::memcpy(id.bytes.data(), &uid, sizeof uid);
  return id;
}

nccl_communicator::nccl_communicator(int rank, int size, luoshu::device dev)
    : rank_(rank), size_(size), dev_(dev) {}

result<std::unique_ptr<nccl_communicator>> nccl_communicator::create(const nccl_id& id, int rank, int size,
                                                                      luoshu::device dev) {
  const std::string where = "NCCL: joining as rank " + std::to_string(rank) + " of " + std::to_string(size) +
                            " on " + dev.to_string();
  if (size < 1) return error{where + ": the size must be at least 1"};
  if (rank < 0 || rank >= size) return error{where + ": the rank must be in [0, " + std::to_string(size) + ")"};
  if (dev.kind != luoshu::device::kind_t::cuda) return error{where + ": NCCL needs a CUDA device"};
  bool empty = true;
  for (char b : id.bytes) empty = empty && b == 0;
  if (empty)
    return error{where + ": the id is empty (rank 0 makes one with nccl_make_id() and every rank gets a copy)"};
  int count = 0;
  if (cudaError_t e = cudaGetDeviceCount(&count); e != cudaSuccess) {
    cudaGetLastError();
    return error{where + ": no usable CUDA device (" + cudaGetErrorString(e) + ")"};
  }
  if (dev.index < 0 || dev.index >= count)
    return error{where + ": " + dev.to_string() + " does not exist (" + std::to_string(count) + " device(s) visible)"};
  if (cudaError_t e = cudaSetDevice(dev.index); e != cudaSuccess) {
    cudaGetLastError();
    return error{where + ": selecting the device failed: " + cudaGetErrorString(e)};
  }
  ncclUniqueId uid;
  std::memcpy(&uid, id.bytes.data(), sizeof uid);
  auto st = std::make_unique<impl>();
  if (ncclResult_t r = ncclCommInitRank(&st->comm, size, uid, rank); r != ncclSuccess) {
    std::string msg = nccl_message(r, st->comm);
    if (st->comm) ncclCommAbort(st->comm); // a half-made communicator: free it without waiting
    return error{where + ": " + msg};
  }
  auto c = std::make_unique<nccl_communicator>(rank, size, dev);
  c->impl_ = std::move(st);
  return result<std::unique_ptr<nccl_communicator>>(std::move(c));
}

nccl_communicator::~nccl_communicator() {
  if (!impl_ || !impl_->comm || impl_->aborted) return;
  cudaSetDevice(dev_.index);
  // Return codes are dropped: a destructor has no one to tell.
  if (impl_->failed)
    ncclCommAbort(impl_->comm);
  else
    ncclCommDestroy(impl_->comm);
}

status nccl_communicator::allreduce(const tensor& in, tensor& out, reduce_op op, device_stream& stream) {
  nccl_call c(*this, impl_.get(), "allreduce");
  if (auto s = c.begin(stream); !s) return s;
  if (auto s = c.operands(in, out); !s) return s;
  if (in.numel() != out.numel())
    return c.fail("the input has " + count_text(in.numel()) + ", the output " + count_text(out.numel()) +
                  " (they must be equal)");
  if (in.raw() != out.raw() && overlap(in, out))
    return c.fail("the input and the output overlap without starting at the same byte (in place needs the same memory)");
  if (in.numel() == 0) return {};
  if (auto s = c.nccl(ncclAllReduce(in.raw(), out.raw(), static_cast<size_t>(in.numel()), c.type(in),
                                    nccl_op(op, in.type(), size_), c.comm(), c.stream()));
      !s)
    return s;
  if (op == reduce_op::mean && is_integer(in.type())) return c.divide_in_place(out);
  return {};
}

status nccl_communicator::broadcast(const tensor& in, tensor& out, int root, device_stream& stream) {
  nccl_call c(*this, impl_.get(), "broadcast");
  if (auto s = c.begin(stream); !s) return s;
  if (root < 0 || root >= size_)
    return c.fail("the root " + std::to_string(root) + " is not a rank in [0, " + std::to_string(size_) + ")");
  if (auto s = c.operands(in, out); !s) return s;
  if (in.numel() != out.numel())
    return c.fail("the input has " + count_text(in.numel()) + ", the output " + count_text(out.numel()) +
                  " (they must be equal)");
  if (in.raw() != out.raw() && overlap(in, out))
    return c.fail("the input and the output overlap without starting at the same byte (in place needs the same memory)");
  if (in.numel() == 0) return {};
  return c.nccl(ncclBroadcast(in.raw(), out.raw(), static_cast<size_t>(in.numel()), c.type(in), root, c.comm(),
                              c.stream()));
}

status nccl_communicator::allgather(const tensor& in, tensor& out, device_stream& stream) {
  nccl_call c(*this, impl_.get(), "allgather");
  if (auto s = c.begin(stream); !s) return s;
  if (auto s = c.operands(in, out); !s) return s;
  if (out.numel() != size_ * in.numel())
    return c.fail("the output has " + count_text(out.numel()) + ", it must have size * input = " +
                  std::to_string(size_) + " * " + std::to_string(in.numel()));
  const bool in_place = static_cast<const char*>(in.raw()) == static_cast<const char*>(out.raw()) + rank_ * in.nbytes();
  if (!in_place && overlap(in, out))
    return c.fail("the input overlaps the output without being rank " + std::to_string(rank_) +
                  "'s slice of it (NCCL's in-place rule)");
  if (in.numel() == 0) return {};
  return c.nccl(ncclAllGather(in.raw(), out.raw(), static_cast<size_t>(in.numel()), c.type(in), c.comm(),
                              c.stream()));
}

status nccl_communicator::reduce_scatter(const tensor& in, tensor& out, reduce_op op, device_stream& stream) {
  nccl_call c(*this, impl_.get(), "reduce_scatter");
  if (auto s = c.begin(stream); !s) return s;
  if (auto s = c.operands(in, out); !s) return s;
  if (in.numel() != size_ * out.numel())
    return c.fail("the input has " + count_text(in.numel()) + ", it must have size * output = " +
                  std::to_string(size_) + " * " + std::to_string(out.numel()));
  const bool in_place = static_cast<const char*>(out.raw()) == static_cast<const char*>(in.raw()) + rank_ * out.nbytes();
  if (!in_place && overlap(in, out))
    return c.fail("the output overlaps the input without being rank " + std::to_string(rank_) +
                  "'s slice of it (NCCL's in-place rule)");
  if (out.numel() == 0) return {};
  if (auto s = c.nccl(ncclReduceScatter(in.raw(), out.raw(), static_cast<size_t>(out.numel()), c.type(in),
                                        nccl_op(op, in.type(), size_), c.comm(), c.stream()));
      !s)
    return s;
  if (op == reduce_op::mean && is_integer(in.type())) return c.divide_in_place(out);
  return {};
}

status nccl_communicator::check_async() const {
  return nccl_call(*this, impl_.get(), "check_async").alive();
}

void nccl_communicator::abort() {
  if (!impl_ || !impl_->comm || impl_->aborted.exchange(true)) return;
  cudaSetDevice(dev_.index);
  ncclCommAbort(impl_->comm);
}

} // namespace luoshu
