// CPU kernels: activations, softmax and their gradients.

#include <cmath>

#include "ops/cpu/cpu_util.hpp"
#include "ops/cpu/register.hpp"

namespace luoshu::cpu {

namespace {

template <class F>
void act(const kernel_call& c, F f) {
  const tensor& x = c.in[0];
  dispatch_float(c, x.type(), [&](auto z) {
    using T = decltype(z);
    const T* in = x.data<T>();
    T* out = c.out.data<T>();
    T alpha = static_cast<T>(c.n.attrs.alpha);
    parallel_for(x.numel(), 8, [&](int64_t b, int64_t e) {
#pragma omp simd
      for (int64_t i = b; i < e; ++i) out[i] = f(in[i], alpha);
    });
  });
}

/// out = f(dy, t) for the fused gradient ops.
template <class F>
void act_grad(const kernel_call& c, F f) {
  const tensor &dy = c.in[0], &t = c.in[1];
  dispatch_float(c, dy.type(), [&](auto z) {
    using T = decltype(z);
    const T* g = dy.data<T>();
    const T* v = t.data<T>();
    T* out = c.out.data<T>();
    T alpha = static_cast<T>(c.n.attrs.alpha);
    parallel_for(dy.numel(), 8, [&](int64_t b, int64_t e) {
#pragma omp simd
      for (int64_t i = b; i < e; ++i) out[i] = f(g[i], v[i], alpha);
    });
  });
}

constexpr double inv_sqrt2 = 0.70710678118654752440;
constexpr double inv_sqrt_2pi = 0.39894228040143267794;

void k_relu(const kernel_call& c) { act(c, [](auto x, auto) { return x > 0 ? x : decltype(x)(0); }); }
void k_leaky(const kernel_call& c) { act(c, [](auto x, auto a) { return x > 0 ? x : a * x; }); }
void k_elu(const kernel_call& c) {
  act(c, [](auto x, auto a) { return x > 0 ? x : a * std::expm1(x); });
}
void k_gelu(const kernel_call& c) {
  act(c, [](auto x, auto) {
    using T = decltype(x);
    return T(0.5) * x * (T(1) + std::erf(x * T(inv_sqrt2)));
  });
}
void k_sigmoid(const kernel_call& c) {
  act(c, [](auto x, auto) {
    using T = decltype(x);
    return T(1) / (T(1) + std::exp(-x));
  });
}
void k_tanh(const kernel_call& c) { act(c, [](auto x, auto) { return std::tanh(x); }); }
void k_softplus(const kernel_call& c) {
  act(c, [](auto x, auto) {
    using T = decltype(x);
    // log(1 + e^x) without overflow: max(x, 0) + log1p(e^-|x|)
    return (x > 0 ? x : T(0)) + std::log1p(std::exp(-std::abs(x)));
  });
}

void k_relu_grad(const kernel_call& c) {
  act_grad(c, [](auto g, auto y, auto) { return y > 0 ? g : decltype(g)(0); });
}
void k_leaky_grad(const kernel_call& c) {
  act_grad(c, [](auto g, auto x, auto a) { return x > 0 ? g : a * g; });
}
void k_elu_grad(const kernel_call& c) {
  act_grad(c, [](auto g, auto x, auto a) { return x > 0 ? g : g * a * std::exp(x); });
}
void k_gelu_grad(const kernel_call& c) {
  act_grad(c, [](auto g, auto x, auto) {
    using T = decltype(x);
    T cdf = T(0.5) * (T(1) + std::erf(x * T(inv_sqrt2)));
    T pdf = T(inv_sqrt_2pi) * std::exp(T(-0.5) * x * x);
    return g * (cdf + x * pdf);
  });
}
void k_sigmoid_grad(const kernel_call& c) {
  act_grad(c, [](auto g, auto y, auto) { return g * y * (decltype(y)(1) - y); });
}
void k_tanh_grad(const kernel_call& c) {
  act_grad(c, [](auto g, auto y, auto) { return g * (decltype(y)(1) - y * y); });
}

/// Views the tensor as [outer, n, inner] around `axis`.
struct axis_view {
  int64_t outer = 1, n = 1, inner = 1;
};
axis_view view_around(const shape& s, int64_t axis_attr) {
  int axis = normalize_axis(axis_attr, s.rank(), "softmax");
  axis_view v;
  for (int i = 0; i < axis; ++i) v.outer *= s[i];
  v.n = s[axis];
  for (int i = axis + 1; i < s.rank(); ++i) v.inner *= s[i];
  return v;
}

template <bool Log>
void softmax_impl(const kernel_call& c) {
  const tensor& x = c.in[0];
  axis_view v = view_around(x.shape(), c.n.attrs.axis);
  dispatch_float(c, x.type(), [&](auto z) {
    using T = decltype(z);
    const T* in = x.data<T>();
    T* out = c.out.data<T>();
    parallel_for(v.outer * v.inner, v.n * 4, [&](int64_t b, int64_t e) {
      for (int64_t r = b; r < e; ++r) {
        int64_t o = r / v.inner, i = r % v.inner;
        const T* xi = in + o * v.n * v.inner + i;
        T* yi = out + o * v.n * v.inner + i;
        T m = xi[0];
        for (int64_t j = 1; j < v.n; ++j) m = std::max(m, xi[j * v.inner]);
        T s = 0;
        for (int64_t j = 0; j < v.n; ++j) {
          T ex = std::exp(xi[j * v.inner] - m);
          if constexpr (!Log) yi[j * v.inner] = ex;
          s += ex;
        }
        if constexpr (Log) {
          T lse = m + std::log(s);
          for (int64_t j = 0; j < v.n; ++j) yi[j * v.inner] = xi[j * v.inner] - lse;
        } else {
          T inv = T(1) / s;
          for (int64_t j = 0; j < v.n; ++j) yi[j * v.inner] *= inv;
        }
      }
    });
  });
}

template <bool Log>
void softmax_grad_impl(const kernel_call& c) {
  const tensor &dy = c.in[0], &y = c.in[1];
  axis_view v = view_around(y.shape(), c.n.attrs.axis);
  dispatch_float(c, y.type(), [&](auto z) {
    using T = decltype(z);
    const T* g = dy.data<T>();
    const T* yv = y.data<T>();
    T* out = c.out.data<T>();
    parallel_for(v.outer * v.inner, v.n * 4, [&](int64_t b, int64_t e) {
      for (int64_t r = b; r < e; ++r) {
        int64_t base = (r / v.inner) * v.n * v.inner + r % v.inner;
        T s = 0;
        for (int64_t j = 0; j < v.n; ++j) {
          int64_t k = base + j * v.inner;
          s += Log ? g[k] : g[k] * yv[k];
        }
        for (int64_t j = 0; j < v.n; ++j) {
          int64_t k = base + j * v.inner;
          // softmax: y (dy - sum(dy y)); log_softmax: dy - exp(y) sum(dy)
          out[k] = Log ? g[k] - std::exp(yv[k]) * s : yv[k] * (g[k] - s);
        }
      }
    });
  });
}

} // namespace

namespace {
// Layouts: the pointwise activations and their gradients map element i of
// each same-shaped operand to element i of the output, in any layout.
layout_caps pointwise_layout(const node&, std::span<const type_shape> in, const type_shape&) {
  return {.inputs = in.size() == 2 ? 3u : 1u, .output = true, .uniform = true};
}
} // namespace

void register_activation(kernel_registry& r) {
  auto cpu = device::kind_t::cpu;
  for (op_kind k : {op_kind::relu, op_kind::leaky_relu, op_kind::elu, op_kind::gelu, op_kind::sigmoid, op_kind::tanh,
                    op_kind::softplus, op_kind::relu_grad, op_kind::leaky_relu_grad, op_kind::elu_grad,
                    op_kind::gelu_grad, op_kind::sigmoid_grad, op_kind::tanh_grad})
    r.add_layout(k, pointwise_layout);
  r.add(op_kind::relu, cpu, k_relu);
  r.add(op_kind::leaky_relu, cpu, k_leaky);
  r.add(op_kind::elu, cpu, k_elu);
  r.add(op_kind::gelu, cpu, k_gelu);
  r.add(op_kind::sigmoid, cpu, k_sigmoid);
  r.add(op_kind::tanh, cpu, k_tanh);
  r.add(op_kind::softplus, cpu, k_softplus);
  r.add(op_kind::relu_grad, cpu, k_relu_grad);
  r.add(op_kind::leaky_relu_grad, cpu, k_leaky_grad);
  r.add(op_kind::elu_grad, cpu, k_elu_grad);
  r.add(op_kind::gelu_grad, cpu, k_gelu_grad);
  r.add(op_kind::sigmoid_grad, cpu, k_sigmoid_grad);
  r.add(op_kind::tanh_grad, cpu, k_tanh_grad);
  r.add(op_kind::softmax, cpu, softmax_impl<false>);
  r.add(op_kind::log_softmax, cpu, softmax_impl<true>);
  r.add(op_kind::softmax_grad, cpu, softmax_grad_impl<false>);
  r.add(op_kind::log_softmax_grad, cpu, softmax_grad_impl<true>);
}

} // namespace luoshu::cpu
