// CPU kernels: elementwise ops with broadcasting.

#include <cmath>

#include "ops/cpu/cpu_util.hpp"
#include "ops/cpu/register.hpp"

namespace luoshu::cpu {

namespace {

template <class F>
void binary_arith(const kernel_call& c, F f) {
  const tensor &a = c.in[0], &b = c.in[1];
  auto plan = make_plan<2>(c.out.shape(), {&a.shape(), &b.shape()});
  dispatch_arith(c, a.type(), [&](auto z) {
    using T = decltype(z);
    ew_run<2>(plan, c.out.data<T>(), [f](T x, T y) { return static_cast<T>(f(x, y)); },
              a.data<T>(), b.data<T>());
  });
}

template <class F>
void compare(const kernel_call& c, F f) {
  const tensor &a = c.in[0], &b = c.in[1];
  auto plan = make_plan<2>(c.out.shape(), {&a.shape(), &b.shape()});
  dispatch_all(c, a.type(), [&](auto z) {
    using T = decltype(z);
    ew_run<2>(plan, c.out.data<uint8_t>(), [f](T x, T y) { return static_cast<uint8_t>(f(x, y) ? 1 : 0); },
              a.data<T>(), b.data<T>());
  });
}

template <class F>
void unary_float(const kernel_call& c, F f) {
  const tensor& x = c.in[0];
  dispatch_float(c, x.type(), [&](auto z) {
    using T = decltype(z);
    const T* in = x.data<T>();
    T* out = c.out.data<T>();
    parallel_for(x.numel(), 4, [&](int64_t b, int64_t e) {
#pragma omp simd
      for (int64_t i = b; i < e; ++i) out[i] = f(in[i]);
    });
  });
}

template <class F>
void unary_arith(const kernel_call& c, F f) {
  const tensor& x = c.in[0];
  dispatch_arith(c, x.type(), [&](auto z) {
    using T = decltype(z);
    const T* in = x.data<T>();
    T* out = c.out.data<T>();
    parallel_for(x.numel(), 1, [&](int64_t b, int64_t e) {
#pragma omp simd
      for (int64_t i = b; i < e; ++i) out[i] = static_cast<T>(f(in[i]));
    });
  });
}

void k_add(const kernel_call& c) { binary_arith(c, [](auto x, auto y) { return x + y; }); }
void k_sub(const kernel_call& c) { binary_arith(c, [](auto x, auto y) { return x - y; }); }
void k_mul(const kernel_call& c) { binary_arith(c, [](auto x, auto y) { return x * y; }); }
void k_div(const kernel_call& c) {
  if (is_integer(c.in[1].type())) {
    for (double v : c.in[1].to_doubles())
      if (v == 0) throw luoshu_error("integer division by zero in node '" + c.n.name + "'");
  }
  binary_arith(c, [](auto x, auto y) { return x / y; });
}
void k_pow(const kernel_call& c) { binary_arith(c, [](auto x, auto y) { return std::pow(x, y); }); }
void k_maximum(const kernel_call& c) { binary_arith(c, [](auto x, auto y) { return x > y ? x : y; }); }
void k_minimum(const kernel_call& c) { binary_arith(c, [](auto x, auto y) { return x < y ? x : y; }); }
void k_equal(const kernel_call& c) { compare(c, [](auto x, auto y) { return x == y; }); }
void k_not_equal(const kernel_call& c) { compare(c, [](auto x, auto y) { return x != y; }); }
void k_less(const kernel_call& c) { compare(c, [](auto x, auto y) { return x < y; }); }
void k_less_equal(const kernel_call& c) { compare(c, [](auto x, auto y) { return x <= y; }); }
void k_greater(const kernel_call& c) { compare(c, [](auto x, auto y) { return x > y; }); }
void k_greater_equal(const kernel_call& c) { compare(c, [](auto x, auto y) { return x >= y; }); }

void k_where(const kernel_call& c) {
  const tensor &cond = c.in[0], &a = c.in[1], &b = c.in[2];
  auto plan = make_plan<3>(c.out.shape(), {&cond.shape(), &a.shape(), &b.shape()});
  dispatch_all(c, a.type(), [&](auto z) {
    using T = decltype(z);
    ew_run<3>(plan, c.out.data<T>(), [](uint8_t m, T x, T y) { return m ? x : y; },
              cond.data<uint8_t>(), a.data<T>(), b.data<T>());
  });
}

void k_neg(const kernel_call& c) { unary_arith(c, [](auto x) { return -x; }); }
void k_abs(const kernel_call& c) { unary_arith(c, [](auto x) { return x < 0 ? -x : x; }); }
void k_sign(const kernel_call& c) {
  unary_arith(c, [](auto x) { return (x > 0) - (x < 0); });
}
void k_square(const kernel_call& c) { unary_arith(c, [](auto x) { return x * x; }); }
void k_exp(const kernel_call& c) { unary_float(c, [](auto x) { return std::exp(x); }); }
void k_log(const kernel_call& c) { unary_float(c, [](auto x) { return std::log(x); }); }
void k_sqrt(const kernel_call& c) { unary_float(c, [](auto x) { return std::sqrt(x); }); }
void k_rsqrt(const kernel_call& c) {
  unary_float(c, [](auto x) { return decltype(x)(1) / std::sqrt(x); });
}
void k_clamp(const kernel_call& c) {
  dispatch_arith(c, c.in[0].type(), [&](auto z) {
    using T = decltype(z);
    T lo = static_cast<T>(c.n.attrs.alpha), hi = static_cast<T>(c.n.attrs.beta);
    const T* in = c.in[0].data<T>();
    T* out = c.out.data<T>();
    parallel_for(c.out.numel(), 1, [&](int64_t b, int64_t e) {
#pragma omp simd
      for (int64_t i = b; i < e; ++i) out[i] = in[i] < lo ? lo : (in[i] > hi ? hi : in[i]);
    });
  });
}
void k_copy(const kernel_call& c) {
  if (c.out.raw() != c.in[0].raw()) std::memcpy(c.out.raw(), c.in[0].raw(), c.out.nbytes());
}
void k_cast(const kernel_call& c) {
  dispatch_all(c, c.in[0].type(), [&](auto zi) {
    using I = decltype(zi);
    dispatch_all(c, c.out.type(), [&](auto zo) {
      using O = decltype(zo);
      const I* in = c.in[0].data<I>();
      O* out = c.out.data<O>();
      parallel_for(c.out.numel(), 1, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) out[i] = static_cast<O>(in[i]);
      });
    });
  });
}

} // namespace

void register_elementwise(kernel_registry& r) {
  auto cpu = device::kind_t::cpu;
  r.add(op_kind::add, cpu, k_add);
  r.add(op_kind::sub, cpu, k_sub);
  r.add(op_kind::mul, cpu, k_mul);
  r.add(op_kind::div, cpu, k_div);
  r.add(op_kind::pow, cpu, k_pow);
  r.add(op_kind::maximum, cpu, k_maximum);
  r.add(op_kind::minimum, cpu, k_minimum);
  r.add(op_kind::equal, cpu, k_equal);
  r.add(op_kind::not_equal, cpu, k_not_equal);
  r.add(op_kind::less, cpu, k_less);
  r.add(op_kind::less_equal, cpu, k_less_equal);
  r.add(op_kind::greater, cpu, k_greater);
  r.add(op_kind::greater_equal, cpu, k_greater_equal);
  r.add(op_kind::where, cpu, k_where);
  r.add(op_kind::neg, cpu, k_neg);
  r.add(op_kind::abs, cpu, k_abs);
  r.add(op_kind::exp, cpu, k_exp);
  r.add(op_kind::log, cpu, k_log);
  r.add(op_kind::sqrt, cpu, k_sqrt);
  r.add(op_kind::rsqrt, cpu, k_rsqrt);
  r.add(op_kind::square, cpu, k_square);
  r.add(op_kind::sign, cpu, k_sign);
  r.add(op_kind::clamp, cpu, k_clamp);
  r.add(op_kind::cast, cpu, k_cast);
  r.add(op_kind::identity, cpu, k_copy);
  r.add(op_kind::stop_gradient, cpu, k_copy);
}

} // namespace luoshu::cpu
