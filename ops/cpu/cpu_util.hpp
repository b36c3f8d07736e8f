#pragma once
// Shared by the CPU kernels: parallel loops on the one OpenMP pool, dtype
// dispatch, and the broadcasting elementwise engine.

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <exception>
#include <string>
#include <utility>
#include <vector>

#include "graph/error.hpp"
#include "ops/kernel.hpp"

namespace luoshu::cpu {

// Thin wrappers so headers need not include <omp.h>.
int64_t omp_threads_in_team();
int64_t omp_thread_index();

/// Runs f(begin, end) over [0, n) in chunks on the OpenMP pool; serial when
/// n * cost_per_item is too small to pay for waking threads.
template <class F>
void parallel_for(int64_t n, int64_t cost_per_item, F&& f) {
  constexpr int64_t min_work = 32768;
  if (n <= 0) return;
  if (n * cost_per_item < min_work || num_threads() == 1) {
    f(int64_t{0}, n);
    return;
  }
#pragma omp parallel
  {
    int64_t nt = omp_threads_in_team();
    int64_t t = omp_thread_index();
    int64_t chunk = (n + nt - 1) / nt;
    int64_t b = t * chunk, e = std::min(n, b + chunk);
    if (b < e) f(b, e);
  }
}

/// parallel_for for bodies that may throw: an exception must not leave an
/// OpenMP region, so each part's is caught and the first one rethrown once
/// every part has finished.
template <class F>
void parallel_for_checked(int64_t n, int64_t cost_per_item, F&& f) {
  std::exception_ptr failure;
  parallel_for(n, cost_per_item, [&](int64_t b, int64_t e) {
    try {
      f(b, e);
    } catch (...) {
#pragma omp critical(luoshu_parallel_for_failure)
      if (!failure) failure = std::current_exception();
    }
  });
  if (failure) std::rethrow_exception(failure);
}

[[noreturn]] inline void unsupported(const kernel_call& c, dtype t) {
  throw luoshu_error(std::string("op '") + name(c.n.op) + "' has no CPU kernel for dtype " + name(t));
}

/// Calls f(T{}) for a float dtype.
template <class F>
void dispatch_float(const kernel_call& c, dtype t, F&& f) {
  switch (t) {
    case dtype::f32: f(float{}); return;
    case dtype::f64: f(double{}); return;
    default: unsupported(c, t);
  }
}

/// Calls f(T{}) for f32, f64, i32, i64.
template <class F>
void dispatch_arith(const kernel_call& c, dtype t, F&& f) {
  switch (t) {
    case dtype::f32: f(float{}); return;
    case dtype::f64: f(double{}); return;
    case dtype::i32: f(int32_t{}); return;
    case dtype::i64: f(int64_t{}); return;
    default: unsupported(c, t);
  }
}

/// Calls f(T{}) for every numeric dtype including u8.
template <class F>
void dispatch_all(const kernel_call& c, dtype t, F&& f) {
  switch (t) {
    case dtype::f32: f(float{}); return;
    case dtype::f64: f(double{}); return;
    case dtype::i32: f(int32_t{}); return;
    case dtype::i64: f(int64_t{}); return;
    case dtype::u8: f(uint8_t{}); return;
    default: unsupported(c, t);
  }
}

/// Reads integer index i of an i32/i64 tensor.
inline int64_t index_at(const tensor& t, int64_t i) {
  return t.type() == dtype::i64 ? t.data<int64_t>()[i] : t.data<int32_t>()[i];
}

/// An N-input broadcasting iteration: dims of the output after merging
/// adjacent dims, and each input's element strides (0 where broadcast).
template <int N>
struct ew_plan {
  std::vector<int64_t> dims;
  std::array<std::vector<int64_t>, N> strides;
  int64_t rows = 1;  ///< product of all dims but the last
  int64_t inner = 1; ///< last dim
};

template <int N>
ew_plan<N> make_plan(const shape& out, const std::array<const shape*, N>& ins) {
  int r = out.rank();
  ew_plan<N> p;
  std::vector<int64_t> dims(out.dims());
  std::array<std::vector<int64_t>, N> st;
  for (int k = 0; k < N; ++k) {
    const shape& s = *ins[static_cast<size_t>(k)];
    st[static_cast<size_t>(k)].assign(static_cast<size_t>(r), 0);
    int64_t stride = 1;
    for (int i = s.rank() - 1; i >= 0; --i) {
      int oi = r - s.rank() + i;
      st[static_cast<size_t>(k)][static_cast<size_t>(oi)] = s[i] == 1 && out[oi] != 1 ? 0 : stride;
      stride *= s[i];
    }
  }
  // Merge dim i into i+1 when every operand is contiguous across them.
  std::vector<int64_t> md;
  std::array<std::vector<int64_t>, N> ms;
  for (int i = 0; i < r; ++i) {
    if (dims[static_cast<size_t>(i)] == 1 && r > 1) continue;
    if (!md.empty()) {
      bool merge = true;
      for (int k = 0; k < N; ++k)
        if (ms[static_cast<size_t>(k)].back() != st[static_cast<size_t>(k)][static_cast<size_t>(i)] * dims[static_cast<size_t>(i)])
          merge = false;
      if (merge) {
        md.back() *= dims[static_cast<size_t>(i)];
        for (int k = 0; k < N; ++k) ms[static_cast<size_t>(k)].back() = st[static_cast<size_t>(k)][static_cast<size_t>(i)];
        continue;
      }
    }
    md.push_back(dims[static_cast<size_t>(i)]);
    for (int k = 0; k < N; ++k) ms[static_cast<size_t>(k)].push_back(st[static_cast<size_t>(k)][static_cast<size_t>(i)]);
  }
  if (md.empty()) {
    md.push_back(1);
    for (int k = 0; k < N; ++k) ms[static_cast<size_t>(k)].push_back(0);
  }
  p.dims = md;
  p.strides = ms;
  p.inner = md.back();
  for (size_t i = 0; i + 1 < md.size(); ++i) p.rows *= md[i];
  return p;
}

/// out[i] = f(in0[..], in1[..], ...) over the broadcast plan. f must be
/// pure; rows (or chunks of a single row) run in parallel.
template <int N, class O, class F, class... I>
void ew_run(const ew_plan<N>& p, O* out, F f, const I*... in) {
  static_assert(sizeof...(I) == N);
  const int r = static_cast<int>(p.dims.size());
  std::array<const void*, N> base{static_cast<const void*>(in)...};
  auto row_offsets = [&](int64_t row, std::array<int64_t, N>& off) {
    off.fill(0);
    int64_t rem = row;
    for (int d = r - 2; d >= 0; --d) {
      int64_t i = rem % p.dims[static_cast<size_t>(d)];
      rem /= p.dims[static_cast<size_t>(d)];
      for (int k = 0; k < N; ++k) off[static_cast<size_t>(k)] += i * p.strides[static_cast<size_t>(k)][static_cast<size_t>(d)];
    }
  };
  std::array<int64_t, N> is;
  for (int k = 0; k < N; ++k) is[static_cast<size_t>(k)] = p.strides[static_cast<size_t>(k)][static_cast<size_t>(r - 1)];
  auto run_span = [&](int64_t row, int64_t j0, int64_t j1) {
    std::array<int64_t, N> off;
    row_offsets(row, off);
    O* o = out + row * p.inner;
    [&]<size_t... K>(std::index_sequence<K...>) {
      bool all_unit = ((is[K] == 1) && ...);
      if (all_unit) {
#pragma omp simd
        for (int64_t j = j0; j < j1; ++j)
          o[j] = f(static_cast<const I*>(base[K])[off[K] + j]...);
      } else {
        for (int64_t j = j0; j < j1; ++j)
          o[j] = f(static_cast<const I*>(base[K])[off[K] + j * is[K]]...);
      }
    }(std::make_index_sequence<N>{});
  };
  if (p.rows == 1) {
    parallel_for(p.inner, 1, [&](int64_t b, int64_t e) { run_span(0, b, e); });
  } else {
    parallel_for(p.rows, p.inner, [&](int64_t b, int64_t e) {
      for (int64_t row = b; row < e; ++row) run_span(row, 0, p.inner);
    });
  }
}

} // namespace luoshu::cpu
