// CPU kernels: reductions over any set of axes.

#include <algorithm>
#include <cmath>
#include <limits>

#include "ops/cpu/cpu_util.hpp"
#include "ops/cpu/register.hpp"
#include "ops/infer_util.hpp"

namespace luoshu::cpu {

namespace {

enum class rop { sum, max, min, sumsq };

template <class T>
T rinit(rop r) {
  if (r == rop::max) return std::numeric_limits<T>::lowest();
  if (r == rop::min) return std::numeric_limits<T>::max();
  return T(0);
}

template <class T>
inline T rstep(rop r, T acc, T x) {
  switch (r) {
    case rop::sum: return acc + x;
    case rop::max: return x > acc ? x : acc;
    case rop::min: return x < acc ? x : acc;
    case rop::sumsq: return acc + x * x;
  }
  return acc;
}

/// Reduces `in` over sorted `axes` into `out` (layout: input with the axes
/// removed). Fast path when the reduced axes are one contiguous block
/// ([outer, r, inner]); a plain strided walk otherwise.
template <class T>
void reduce_into(const T* in, const shape& s, const std::vector<int>& axes, rop op, T* out) {
  int rank = s.rank();
  std::vector<bool> red(static_cast<size_t>(rank), false);
  for (int a : axes) red[static_cast<size_t>(a)] = true;
  int first = -1, last = -1;
  bool contiguous = true;
  for (int i = 0; i < rank; ++i)
    if (red[static_cast<size_t>(i)]) {
      if (first < 0) first = i;
      else if (last != i - 1) contiguous = false;
      last = i;
    }
  int64_t total_out = 1;
  for (int i = 0; i < rank; ++i)
    if (!red[static_cast<size_t>(i)]) total_out *= s[i];
  if (first < 0) { // nothing to reduce (sum_to_like of equal shapes at run time): a copy
    parallel_for(s.numel(), 1, [&](int64_t b, int64_t e) {
      if (op == rop::sumsq)
        for (int64_t i = b; i < e; ++i) out[i] = in[i] * in[i];
      else
        std::copy(in + b, in + e, out + b);
    });
    return;
  }
  if (contiguous) {
    int64_t outer = 1, r = 1, inner = 1;
    for (int i = 0; i < first; ++i) outer *= s[i];
    for (int i = first; i <= last; ++i) r *= s[i];
    for (int i = last + 1; i < rank; ++i) inner *= s[i];
    if (inner == 1) {
      if (outer == 1) {
        // One long row: per-thread partials, then combine.
        int nt = num_threads();
        std::vector<T> part(static_cast<size_t>(nt), rinit<T>(op));
        std::vector<int64_t> used(static_cast<size_t>(nt), 0);
        parallel_for(r, 1, [&](int64_t b, int64_t e) {
          T acc = rinit<T>(op);
          for (int64_t j = b; j < e; ++j) acc = rstep(op, acc, in[j]);
          size_t t = static_cast<size_t>(omp_thread_index());
          part[t] = acc;
          used[t] = 1;
        });
        T acc = rinit<T>(op);
        for (size_t t = 0; t < part.size(); ++t)
          if (used[t]) acc = op == rop::sum || op == rop::sumsq ? acc + part[t] : rstep(op, acc, part[t]);
        out[0] = acc;
        return;
      }
      parallel_for(outer, r, [&](int64_t b, int64_t e) {
        for (int64_t o = b; o < e; ++o) {
          const T* row = in + o * r;
          T acc = rinit<T>(op);
          for (int64_t j = 0; j < r; ++j) acc = rstep(op, acc, row[j]);
          out[o] = acc;
        }
      });
      return;
    }
    auto run = [&](int64_t o, int64_t i0, int64_t i1) {
      T* dst = out + o * inner;
      for (int64_t i = i0; i < i1; ++i) dst[i] = rinit<T>(op);
      for (int64_t j = 0; j < r; ++j) {
        const T* src = in + (o * r + j) * inner;
#pragma omp simd
        for (int64_t i = i0; i < i1; ++i) dst[i] = rstep(op, dst[i], src[i]);
      }
    };
    if (outer == 1)
      parallel_for(inner, r, [&](int64_t b, int64_t e) { run(0, b, e); });
    else
      parallel_for(outer, r * inner, [&](int64_t b, int64_t e) {
        for (int64_t o = b; o < e; ++o) run(o, 0, inner);
      });
    return;
  }
  // Kept axes contiguous ([outer, K, inner] reduced over outer and inner,
  // e.g. a per-channel sum over N, H, W): each output sums contiguous rows.
  int kfirst = -1, klast = -1;
  bool kept_contiguous = true;
  for (int i = 0; i < rank; ++i)
    if (!red[static_cast<size_t>(i)]) {
      if (kfirst < 0) kfirst = i;
      else if (klast != i - 1) kept_contiguous = false;
      klast = i;
    }
  if (kept_contiguous && kfirst >= 0) {
    int64_t outer = 1, k = total_out, inner = 1;
    for (int i = 0; i < kfirst; ++i) outer *= s[i];
    for (int i = klast + 1; i < rank; ++i) inner *= s[i];
    parallel_for(k, outer * inner, [&](int64_t b, int64_t e) {
      for (int64_t q = b; q < e; ++q) {
        T acc = rinit<T>(op);
        for (int64_t o = 0; o < outer; ++o) {
          const T* row = in + (o * k + q) * inner;
          if (op == rop::sum) {
            T part = T(0);
#pragma omp simd reduction(+ : part)
            for (int64_t i = 0; i < inner; ++i) part += row[i];
            acc += part;
          } else {
            for (int64_t i = 0; i < inner; ++i) acc = rstep(op, acc, row[i]);
          }
        }
        out[q] = acc;
      }
    });
    return;
  }
  // General case: walk the input once, mapping each element to its output.
  for (int64_t i = 0; i < total_out; ++i) out[i] = rinit<T>(op);
  std::vector<int64_t> idx(static_cast<size_t>(rank), 0), ostride(static_cast<size_t>(rank), 0);
  int64_t st = 1;
  for (int i = rank - 1; i >= 0; --i)
    if (!red[static_cast<size_t>(i)]) {
      ostride[static_cast<size_t>(i)] = st;
      st *= s[i];
    }
  int64_t n = s.numel(), off = 0;
  for (int64_t e = 0; e < n; ++e) {
    out[off] = rstep(op, out[off], in[e]);
    for (int d = rank - 1; d >= 0; --d) {
      auto ud = static_cast<size_t>(d);
      ++idx[ud];
      off += ostride[ud];
      if (idx[ud] < s[d]) break;
      off -= ostride[ud] * s[d];
      idx[ud] = 0;
    }
  }
}

void k_reduce(const kernel_call& c) {
  const tensor& x = c.in[0];
  auto axes = ops::reduce_axes(c.n.attrs.axes, x.rank());
  int64_t count = 1;
  for (int a : axes) count *= x.dim(a);
  rop op = rop::sum;
  switch (c.n.op) {
    case op_kind::max: op = rop::max; break;
    case op_kind::min: op = rop::min; break;
    case op_kind::norm: op = rop::sumsq; break;
    default: break;
  }
  if ((op == rop::max || op == rop::min) && count == 0)
    throw luoshu_error("max/min over an empty axis in node '" + c.n.name + "'");
  dispatch_arith(c, x.type(), [&](auto z) {
    using T = decltype(z);
    T* out = c.out.data<T>();
    reduce_into(x.data<T>(), x.shape(), axes, op, out);
    int64_t n = c.out.numel();
    if (c.n.op == op_kind::mean) {
      T inv = count ? T(1) / static_cast<T>(count) : std::numeric_limits<T>::quiet_NaN();
      for (int64_t i = 0; i < n; ++i) out[i] *= inv;
    } else if (c.n.op == op_kind::norm) {
      for (int64_t i = 0; i < n; ++i) out[i] = static_cast<T>(std::sqrt(static_cast<double>(out[i])));
    }
  });
}

void k_argmax(const kernel_call& c) {
  const tensor& x = c.in[0];
  int axis = normalize_axis(c.n.attrs.axis, x.rank(), "argmax");
  int64_t outer = 1, n = x.dim(axis), inner = 1;
  for (int i = 0; i < axis; ++i) outer *= x.dim(i);
  for (int i = axis + 1; i < x.rank(); ++i) inner *= x.dim(i);
  if (n == 0) throw luoshu_error("argmax over an empty axis in node '" + c.n.name + "'");
  dispatch_arith(c, x.type(), [&](auto z) {
    using T = decltype(z);
    const T* in = x.data<T>();
    int64_t* out = c.out.data<int64_t>();
    parallel_for(outer * inner, n, [&](int64_t b, int64_t e) {
      for (int64_t r = b; r < e; ++r) {
        const T* p = in + (r / inner) * n * inner + r % inner;
        int64_t best = 0;
        for (int64_t j = 1; j < n; ++j)
          if (p[j * inner] > p[best * inner]) best = j;
        out[r] = best;
      }
    });
  });
}

void k_sum_to_like(const kernel_call& c) {
  const tensor& x = c.in[0];
  const shape& target = c.out.shape();
  std::vector<int> axes;
  int lead = x.rank() - target.rank();
  for (int i = 0; i < x.rank(); ++i)
    if (i < lead || (target[i - lead] == 1 && x.dim(i) != 1)) axes.push_back(i);
  dispatch_arith(c, x.type(), [&](auto z) {
    using T = decltype(z);
    reduce_into(x.data<T>(), x.shape(), axes, rop::sum, c.out.data<T>());
  });
}

} // namespace

void register_reduce(kernel_registry& r) {
  auto cpu = device::kind_t::cpu;
  for (auto k : {op_kind::sum, op_kind::mean, op_kind::max, op_kind::min, op_kind::norm})
    r.add(k, cpu, k_reduce);
  r.add(op_kind::argmax, cpu, k_argmax);
  r.add(op_kind::sum_to_like, cpu, k_sum_to_like);
}

} // namespace luoshu::cpu
