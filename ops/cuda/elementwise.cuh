#pragma once
// Shared by the elementwise, activation, loss and embedding kernels: the
// broadcasting elementwise launcher and the scalar-op functors it maps.
//
// An op is a struct derived from op_base with a LUOSHU_HD templated
// operator() over scalars; make_op fills its per-call state (the node's
// alpha/beta attributes and the error sink). map1/map2/map3 apply an op to
// one, two or three operands read at their broadcast offsets.

#include <type_traits>

#include "ops/cuda/gpu.cuh"

namespace luoshu::LUOSHU_GPU_NS {

/// Per-call state every op may read: a = attrs.alpha, b = attrs.beta.
struct op_base {
  double a = 0, b = 0;
  error_sink e{};
};

/// Defines the op struct `op_name` whose value for scalar `params` (a
/// parenthesised list over T) is `expr`; `al` is attrs.alpha in T.
#define LUOSHU_SCALAR_OP(op_name, params, expr)                                                                      \
  struct op_name : op_base {                                                                                         \
    template <class T>                                                                                               \
    LUOSHU_HD auto operator() params const {                                                                         \
      [[maybe_unused]] T al = static_cast<T>(a);                                                                     \
      return expr;                                                                                                   \
    }                                                                                                                \
  };

template <class Op>
Op make_op(const kernel_call& c) {
  Op op{};
  op.a = c.n.attrs.alpha;
  op.b = c.n.attrs.beta;
  op.e = errors(c);
  return op;
}

/// Operand offsets when every operand has the output's shape.
struct flat_index {
  LUOSHU_HD int64_t operator()(int, int64_t i) const { return i; }
};
/// Operand offsets through broadcast views.
template <int N>
struct bcast_index {
  strided s[N];
  LUOSHU_HD int64_t operator()(int k, int64_t i) const { return s[k](i); }
};

/// Runs f(i, ix) for every flat output index i; ix(k, i) is operand k's
/// offset (c.in[k] broadcast to c.out). Fast path when all shapes are equal.
template <int N, class F>
void ew_run(const kernel_call& c, F f) {
  bool same = true;
  for (int k = 0; k < N; ++k) same = same && c.in[static_cast<size_t>(k)].shape() == c.out.shape();
  if (same) {
    parallel_for(c, c.out.numel(), [=] LUOSHU_HD(int64_t i) { f(i, flat_index{}); });
    return;
  }
  bcast_index<N> ix;
  for (int k = 0; k < N; ++k) ix.s[k] = broadcast_view(c, c.out.shape(), c.in[static_cast<size_t>(k)].shape());
  parallel_for(c, c.out.numel(), [=] LUOSHU_HD(int64_t i) { f(i, ix); });
}

template <class Op, class O, class A>
struct map1 {
  Op op;
  O* o;
  const A* a;
  template <class Ix>
  LUOSHU_HD void operator()(int64_t i, const Ix& ix) const { o[i] = static_cast<O>(op(a[ix(0, i)])); }
};
template <class Op, class O, class A, class B>
struct map2 {
  Op op;
  O* o;
  const A* a;
  const B* b;
  template <class Ix>
  LUOSHU_HD void operator()(int64_t i, const Ix& ix) const { o[i] = static_cast<O>(op(a[ix(0, i)], b[ix(1, i)])); }
};
template <class Op, class O, class A, class B, class C>
struct map3 {
  Op op;
  O* o;
  const A* a;
  const B* b;
  const C* d;
  template <class Ix>
  LUOSHU_HD void operator()(int64_t i, const Ix& ix) const {
    o[i] = static_cast<O>(op(a[ix(0, i)], b[ix(1, i)], d[ix(2, i)]));
  }
};

/// out = op(in0) elementwise, in T, written as O (default T).
template <class Op, class Out = void>
struct unary_k {
  template <class T>
  static void run(const kernel_call& c) {
    using O = std::conditional_t<std::is_void_v<Out>, T, Out>;
    ew_run<1>(c, map1<Op, O, T>{make_op<Op>(c), ptr<O>(c.out), ptr<T>(c.in[0])});
  }
};
/// out = op(in0, in1) with broadcasting, both in T, written as O (default T).
template <class Op, class Out = void>
struct binary_k {
  template <class T>
  static void run(const kernel_call& c) {
    using O = std::conditional_t<std::is_void_v<Out>, T, Out>;
    ew_run<2>(c, map2<Op, O, T, T>{make_op<Op>(c), ptr<O>(c.out), ptr<T>(c.in[0]), ptr<T>(c.in[1])});
  }
};

/// The kernel for an op on a float input.
template <class K>
void float_kernel(const kernel_call& c) {
  dispatch_float<K>(c, c.in[0].type());
}
/// The kernel for an op on an f32/f64/i32/i64 input.
template <class K>
void arith_kernel(const kernel_call& c) {
  dispatch_arith<K>(c, c.in[0].type());
}
/// The kernel for an op on any numeric input.
template <class K>
void all_kernel(const kernel_call& c) {
  dispatch_all<K>(c, c.in[0].type());
}

/// The max m of row[j * stride] for j < n and the sum of exp(row - m),
/// summed in the CPU kernels' order; each exp is also written to
/// ex[j * stride] when ex is not null. n >= 1.
template <class T>
LUOSHU_HD T exp_sum(const T* row, int64_t n, int64_t stride, T& m, T* ex) {
  m = row[0];
  for (int64_t j = 1; j < n; ++j) m = g_max(m, row[j * stride]);
  T s = 0;
  for (int64_t j = 0; j < n; ++j) {
    T v = g_exp(row[j * stride] - m);
    if (ex) ex[j * stride] = v;
    s += v;
  }
  return s;
}

/// out = in0 (a device-to-device copy unless out already is in0).
inline void copy_input(const kernel_call& c) {
  (void)state(c); // a device kernel needs its stream
  if (c.out.raw() != c.in[0].raw() && c.out.nbytes() > 0) c.ctx.stream->copy(c.out.raw(), c.in[0].raw(), c.out.nbytes());
}

} // namespace luoshu::LUOSHU_GPU_NS
