#pragma once
// Shared by the CUDA kernels (ops/cuda/*.cu): index-space launches, dtype
// dispatch, broadcasting and permutation views, device-side error reports,
// scratch memory and GEMM.
//
// Every kernel is written as a functor over an index space run by
// parallel_for, with `LUOSHU_HD` (__host__ __device__) lambdas or structs.
// The same sources therefore build two ways:
//   - with nvcc (namespace luoshu::cuda): real kernels on the stream of the
//     call's device_stream;
//   - with a host compiler and LUOSHU_CUDA_EMULATE (namespace
//     luoshu::cuda_emu): the functors run in a host loop over "device"
//     memory that is host memory marked cuda. The gpu-emu test suite uses
//     it to check the kernels' indexing and the executor's device path on
//     machines without a GPU; it is never a user-visible backend.
//
// Rules for kernel code (nvcc's extended lambdas): lambdas passed to
// parallel_for capture by value ([=]) only plain values and pointers, are
// defined in a named function (not inside another lambda; so no generic
// lambdas for dtype dispatch: use dispatch_*<K>, which calls
// K::template run<T>(call)), and call only LUOSHU_HD functions.

#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "graph/device_backend.hpp"
#include "graph/error.hpp"
#include "graph/tensor.hpp"
#include "ops/kernel.hpp"
#include "ops/op.hpp"

#ifdef LUOSHU_CUDA_EMULATE
#include <cmath>
#define LUOSHU_HD
#define LUOSHU_GPU_NS cuda_emu
#else
#include <cublas_v2.h>
#include <cuda_runtime.h>
#define LUOSHU_HD __host__ __device__
#define LUOSHU_GPU_NS cuda
#endif

namespace luoshu::LUOSHU_GPU_NS {

// --- device-side errors -------------------------------------------------------

/// The first error a kernel found on a stream (code 0: none). Kernels cannot
/// throw; they record here and skip the bad element, and the stream turns
/// the record into a luoshu_error naming the node at synchronize().
struct device_error {
  int32_t code = 0; ///< an error_code
  int32_t tag = 0;  ///< which launch (the stream maps it to a node)
  int64_t value = 0;
  int64_t bound = 0;
};
enum error_code : int32_t {
  no_error = 0,
  index_out_of_range = 1, ///< value not in [0, bound)
  integer_division_by_zero = 2,
  label_out_of_range = 3, ///< a class label not in [0, bound)
};

LUOSHU_HD inline void report(device_error* e, int32_t tag, int32_t code, int64_t value, int64_t bound) {
#if defined(__CUDA_ARCH__)
  if (atomicCAS(&e->code, 0, code) == 0) {
    e->tag = tag;
    e->value = value;
    e->bound = bound;
  }
#else
  if (e->code == 0) {
    e->code = code;
    e->tag = tag;
    e->value = value;
    e->bound = bound;
  }
#endif
}

/// Where kernels report: the record and the current launch's tag.
struct error_sink {
  device_error* rec;
  int32_t tag;
  LUOSHU_HD void out_of_range(int64_t value, int64_t bound) const {
    report(rec, tag, index_out_of_range, value, bound);
  }
  LUOSHU_HD void division_by_zero() const { report(rec, tag, integer_division_by_zero, 0, 0); }
  LUOSHU_HD void bad_label(int64_t value, int64_t bound) const {
    report(rec, tag, label_out_of_range, value, bound);
  }
};

// --- the stream's native state -----------------------------------------------

/// What device_stream::native() returns for this backend.
struct stream_state {
#ifndef LUOSHU_CUDA_EMULATE
  cudaStream_t stream = nullptr;
  cublasHandle_t blas = nullptr;
#endif
  int device = 0;
  device_error* errors = nullptr; ///< device memory
  int32_t tag = 0;                ///< current launch's tag (set_current_node)
};

inline stream_state& state(const kernel_call& c) {
  if (!c.ctx.stream) throw luoshu_error(std::string("op '") + name(c.n.op) + "': a device kernel ran without a stream");
  return *static_cast<stream_state*>(c.ctx.stream->native());
}

inline error_sink errors(const kernel_call& c) {
  auto& s = state(c);
  return {s.errors, s.tag};
}

/// Throws a luoshu_error naming the node if the last launch failed.
void check_launch(const kernel_call& c);

/// The launch tags of one stream between two synchronize() calls, and the
/// message for an error record (shared by both builds' streams).
class launch_tags {
public:
  /// A new tag for the next kernels of node `node_name`.
  int32_t next(const std::string& node_name, const char* op_name);
  /// "node 'x' (op gather): index 12 is out of range [0, 10)".
  std::string message(const device_error& e) const;
  void clear();

private:
  std::vector<std::string> names_; ///< tag - 1 -> "node 'x' (op y)"
};

// --- launches -------------------------------------------------------------------

#ifdef LUOSHU_CUDA_EMULATE
/// Runs f(i) for every i in [0, n) on the call's stream.
template <class F>
void parallel_for(const kernel_call&, int64_t n, F f) {
  for (int64_t i = 0; i < n; ++i) f(i);
}
#else
template <class F>
__global__ void for_each_index(int64_t n, F f) {
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step) f(i);
}

/// Runs f(i) for every i in [0, n) on the call's stream.
template <class F>
void parallel_for(const kernel_call& c, int64_t n, F f) {
  if (n <= 0) return;
  constexpr int threads = 256;
  int64_t blocks = (n + threads - 1) / threads;
  if (blocks > 65536) blocks = 65536; // grid-stride beyond this
  for_each_index<<<static_cast<unsigned>(blocks), threads, 0, state(c).stream>>>(n, f);
  check_launch(c);
}
#endif

// --- element pointers -------------------------------------------------------------

template <class T>
T* ptr(const tensor& t) {
  return t.device_data<T>();
}

// --- dtype dispatch ------------------------------------------------------------------

[[noreturn]] void unsupported(const kernel_call& c, dtype t);

/// K::template run<T>(c) for a float dtype.
template <class K>
void dispatch_float(const kernel_call& c, dtype t) {
  switch (t) {
    case dtype::f32: K::template run<float>(c); return;
    case dtype::f64: K::template run<double>(c); return;
    default: unsupported(c, t);
  }
}

/// K::template run<T>(c) for f32, f64, i32, i64.
template <class K>
void dispatch_arith(const kernel_call& c, dtype t) {
  switch (t) {
    case dtype::f32: K::template run<float>(c); return;
    case dtype::f64: K::template run<double>(c); return;
    case dtype::i32: K::template run<int32_t>(c); return;
    case dtype::i64: K::template run<int64_t>(c); return;
    default: unsupported(c, t);
  }
}

/// K::template run<T>(c) for every numeric dtype including u8.
template <class K>
void dispatch_all(const kernel_call& c, dtype t) {
  switch (t) {
    case dtype::f32: K::template run<float>(c); return;
    case dtype::f64: K::template run<double>(c); return;
    case dtype::i32: K::template run<int32_t>(c); return;
    case dtype::i64: K::template run<int64_t>(c); return;
    case dtype::u8: K::template run<uint8_t>(c); return;
    default: unsupported(c, t);
  }
}

/// K::template run<U>(c, a...) with U the unsigned integer of the dtype's
/// element size: for kernels that only move elements (any dtype).
template <class K, class... A>
void dispatch_bytes(const kernel_call& c, dtype t, const A&... a) {
  switch (size_of(t)) {
    case 1: K::template run<uint8_t>(c, a...); return;
    case 2: K::template run<uint16_t>(c, a...); return;
    case 4: K::template run<uint32_t>(c, a...); return;
    case 8: K::template run<uint64_t>(c, a...); return;
    default: unsupported(c, t);
  }
}

/// An i32/i64 index tensor read on the device.
struct index_view {
  const void* p;
  bool wide; ///< i64 (else i32)
  LUOSHU_HD int64_t operator[](int64_t i) const {
    return wide ? static_cast<const int64_t*>(p)[i] : static_cast<const int32_t*>(p)[i];
  }
};
/// Throws naming the node unless `t` is i32 or i64.
index_view indices(const kernel_call& c, const tensor& t);

// --- strided views ---------------------------------------------------------------------

inline constexpr int max_rank = 8;

/// Maps a flat row-major index over `dims` to an element offset by
/// `strides` (0 where an operand is broadcast). Plain value: capture it.
struct strided {
  int rank = 0;
  int64_t dims[max_rank] = {};
  int64_t strides[max_rank] = {};
  LUOSHU_HD int64_t operator()(int64_t i) const {
    int64_t off = 0;
    for (int d = rank - 1; d >= 0; --d) {
      int64_t q = i % dims[d];
      i /= dims[d];
      off += q * strides[d];
    }
    return off;
  }
};

/// How an operand of shape `in`, broadcast (right-aligned) to `out`, is read
/// at each flat index of `out`. Throws for rank > max_rank.
strided broadcast_view(const kernel_call& c, const shape& out, const shape& in);
/// Reading `in` at flat index i of its transpose by `perm` (out dim d is in
/// dim perm[d]).
strided transpose_view(const kernel_call& c, const shape& in, const std::vector<int64_t>& perm);

/// v(i) with the common ranks 0 and 1 (after simplified()) free of divisions.
LUOSHU_HD inline int64_t view_at(const strided& v, int64_t i) {
  if (v.rank == 0) return 0;
  if (v.rank == 1) return i * v.strides[0];
  return v(i);
}

/// Appends a dim to `r`, dropping size-1 dims and merging it into the last
/// one where that one's stride is dim * stride (same mapping, fewer
/// divisions). False when `r` already holds max_rank dims.
inline bool push_dim(strided& r, int64_t dim, int64_t stride) {
  if (dim == 1) return true;
  if (r.rank > 0 && r.strides[r.rank - 1] == stride * dim) {
    r.dims[r.rank - 1] *= dim;
    r.strides[r.rank - 1] = stride;
    return true;
  }
  if (r.rank == max_rank) return false;
  r.dims[r.rank] = dim;
  r.strides[r.rank] = stride;
  ++r.rank;
  return true;
}

/// `v` with its dims pushed through push_dim.
inline strided simplified(const strided& v) {
  strided r;
  for (int d = 0; d < v.rank; ++d) push_dim(r, v.dims[d], v.strides[d]);
  return r;
}

/// Row-major element strides of `s`.
inline std::vector<int64_t> contiguous_strides(const shape& s) {
  std::vector<int64_t> st(static_cast<size_t>(s.rank()));
  int64_t a = 1;
  for (int d = s.rank() - 1; d >= 0; --d) {
    st[static_cast<size_t>(d)] = a;
    a *= s[d];
  }
  return st;
}

/// A simplified view over any `dims` with element `strides`; throws naming
/// the op when more than max_rank dims remain.
inline strided make_view(const kernel_call& c, const std::vector<int64_t>& dims, const std::vector<int64_t>& strides) {
  strided r;
  for (size_t d = 0; d < dims.size(); ++d)
    if (!push_dim(r, dims[d], strides[d]))
      throw luoshu_error(std::string("op '") + name(c.n.op) + "': more than " + std::to_string(max_rank) +
                         " dims in a CUDA kernel's view");
  return r;
}

/// The view of a contiguous run of n elements (view_at(v, i) == i).
inline strided contiguous_view(int64_t n) {
  strided r;
  push_dim(r, n, 1);
  return r;
}

// --- scratch memory -------------------------------------------------------------------

/// A temporary device tensor from the stream's cache; it may be dropped as
/// soon as the kernels using it are queued (reuse is stream-ordered).
tensor scratch(const kernel_call& c, dtype t, int64_t n);

// --- math usable in kernels -------------------------------------------------------------

LUOSHU_HD inline float g_exp(float x) { return expf(x); }
LUOSHU_HD inline double g_exp(double x) { return ::exp(x); }
LUOSHU_HD inline float g_log(float x) { return logf(x); }
LUOSHU_HD inline double g_log(double x) { return ::log(x); }
LUOSHU_HD inline float g_log1p(float x) { return log1pf(x); }
LUOSHU_HD inline double g_log1p(double x) { return ::log1p(x); }
LUOSHU_HD inline float g_expm1(float x) { return expm1f(x); }
LUOSHU_HD inline double g_expm1(double x) { return ::expm1(x); }
LUOSHU_HD inline float g_sqrt(float x) { return sqrtf(x); }
LUOSHU_HD inline double g_sqrt(double x) { return ::sqrt(x); }
LUOSHU_HD inline float g_tanh(float x) { return tanhf(x); }
LUOSHU_HD inline double g_tanh(double x) { return ::tanh(x); }
LUOSHU_HD inline float g_erf(float x) { return erff(x); }
LUOSHU_HD inline double g_erf(double x) { return ::erf(x); }
LUOSHU_HD inline float g_pow(float x, float y) { return powf(x, y); }
LUOSHU_HD inline double g_pow(double x, double y) { return ::pow(x, y); }
LUOSHU_HD inline float g_abs(float x) { return fabsf(x); }
LUOSHU_HD inline double g_abs(double x) { return ::fabs(x); }
LUOSHU_HD inline int32_t g_abs(int32_t x) { return x < 0 ? -x : x; }
LUOSHU_HD inline int64_t g_abs(int64_t x) { return x < 0 ? -x : x; }
LUOSHU_HD inline float g_floor(float x) { return floorf(x); }
LUOSHU_HD inline double g_floor(double x) { return ::floor(x); }
template <class T>
LUOSHU_HD inline T g_max(T a, T b) { return a < b ? b : a; }
template <class T>
LUOSHU_HD inline T g_min(T a, T b) { return b < a ? b : a; }

/// atomicAdd on the device; a plain add in the emulation (serial).
template <class T>
LUOSHU_HD inline void g_atomic_add(T* p, T v) {
#if defined(__CUDA_ARCH__)
  atomicAdd(p, v);
#else
  *p += v;
#endif
}

/// int64_t has no atomicAdd of its own: the unsigned one adds the same bits.
LUOSHU_HD inline void g_atomic_add(int64_t* p, int64_t v) {
#if defined(__CUDA_ARCH__)
  atomicAdd(reinterpret_cast<unsigned long long*>(p), static_cast<unsigned long long>(v));
#else
  *p += v;
#endif
}

// --- GEMM ----------------------------------------------------------------------------

/// Row-major out[b] = op(A[b]) * op(B[b]) (+ beta * out[b]) for b < batch,
/// op = transpose when ta/tb; A is m x k after op, B k x n, out m x n; lda,
/// ldb, ldc are row strides; stride_* the element distance between batches.
/// cuBLAS on the device (no TF32: full f32), a plain loop in the emulation.
template <class T>
void gemm(const kernel_call& c, bool ta, bool tb, int64_t m, int64_t n, int64_t k, const T* a, int64_t lda,
          const T* b, int64_t ldb, T* out, int64_t ldc, T beta, int64_t batch = 1, int64_t stride_a = 0,
          int64_t stride_b = 0, int64_t stride_c = 0);

// --- sorting ----------------------------------------------------------------------

/// Sorts positions 0..n-1 by keys[position], stably (equal keys keep their
/// order): sorted_keys[i] = keys[pos[i]]. All three arrays are device memory
/// of n elements. CUB's radix sort on the device, std::stable_sort in the
/// emulation.
void sort_positions(const kernel_call& c, const int64_t* keys, int64_t* sorted_keys, int64_t* pos, int64_t n);

// --- registration ---------------------------------------------------------------------

void register_elementwise(kernel_registry& r);
void register_activation(kernel_registry& r);
void register_matmul(kernel_registry& r);
/// conv2d and the 2-d pools (ops/cuda/conv.cu).
void register_conv(kernel_registry& r);
/// lstm, gru and their backward helpers (ops/cuda/rnn.cu).
void register_rnn(kernel_registry& r);
/// batch normalization (ops/cuda/norm.cu).
void register_norm(kernel_registry& r);
/// layer_norm and its gradients (ops/cuda/layer_norm.cu).
void register_layer_norm(kernel_registry& r);
/// attention_probs (ops/cuda/attention.cu).
void register_attention(kernel_registry& r);
void register_reduce(kernel_registry& r);
void register_shape(kernel_registry& r);
void register_embedding(kernel_registry& r);
void register_loss(kernel_registry& r);
void register_optimizer(kernel_registry& r);
/// All of the above (each build's register_kernels adds its backend).
void register_families(kernel_registry& r);

} // namespace luoshu::LUOSHU_GPU_NS
