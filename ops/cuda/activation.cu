// CUDA kernels: activations, softmax and their gradients (see gpu.cuh for
// how kernels are written). Same formulas as ops/cpu/activation.cpp.

#include "ops/cuda/elementwise.cuh"

namespace luoshu::LUOSHU_GPU_NS {

namespace {

constexpr double inv_sqrt2 = 0.70710678118654752440;
constexpr double inv_sqrt_2pi = 0.39894228040143267794;

// Activations f(x) and fused gradients f(g = dy, v = y or x), as the CPU
// computes them; `al` is attrs.alpha in T.
LUOSHU_SCALAR_OP(op_relu, (T x), x > 0 ? x : T(0))
LUOSHU_SCALAR_OP(op_leaky, (T x), x > 0 ? x : al * x)
LUOSHU_SCALAR_OP(op_elu, (T x), x > 0 ? x : al * g_expm1(x))
LUOSHU_SCALAR_OP(op_gelu, (T x), T(0.5) * x * (T(1) + g_erf(x * T(inv_sqrt2))))
LUOSHU_SCALAR_OP(op_sigmoid, (T x), T(1) / (T(1) + g_exp(-x)))
LUOSHU_SCALAR_OP(op_tanh, (T x), g_tanh(x))
// log(1 + e^x) without overflow: max(x, 0) + log1p(e^-|x|)
LUOSHU_SCALAR_OP(op_softplus, (T x), (x > 0 ? x : T(0)) + g_log1p(g_exp(-g_abs(x))))

LUOSHU_SCALAR_OP(op_relu_grad, (T g, T v), v > 0 ? g : T(0))
LUOSHU_SCALAR_OP(op_leaky_grad, (T g, T v), v > 0 ? g : al * g)
LUOSHU_SCALAR_OP(op_elu_grad, (T g, T v), v > 0 ? g : g * al * g_exp(v))
LUOSHU_SCALAR_OP(op_gelu_grad, (T g, T v),
                 g * (T(0.5) * (T(1) + g_erf(v * T(inv_sqrt2))) + v * (T(inv_sqrt_2pi) * g_exp(T(-0.5) * v * v))))
LUOSHU_SCALAR_OP(op_sigmoid_grad, (T g, T v), g * v * (T(1) - v))
LUOSHU_SCALAR_OP(op_tanh_grad, (T g, T v), g * (T(1) - v * v))

/// The tensor as [outer, n, inner] around attrs.axis.
struct axis_view {
  int64_t outer = 1, n = 1, inner = 1;
};
axis_view view_around(const kernel_call& c, const shape& s) {
  int axis = normalize_axis(c.n.attrs.axis, s.rank(), "softmax");
  axis_view v;
  for (int i = 0; i < axis; ++i) v.outer *= s[i];
  v.n = s[axis];
  for (int i = axis + 1; i < s.rank(); ++i) v.inner *= s[i];
  return v;
}

/// One thread per row along the axis; max-subtracted like the CPU.
template <bool Log>
struct softmax_k {
  template <class T>
  static void run(const kernel_call& c) {
    axis_view v = view_around(c, c.in[0].shape());
    if (v.n == 0) return;
    const T* in = ptr<T>(c.in[0]);
    T* out = ptr<T>(c.out);
    int64_t n = v.n, inner = v.inner;
    parallel_for(c, v.outer * v.inner, [=] LUOSHU_HD(int64_t r) {
      int64_t base = (r / inner) * n * inner + r % inner;
      const T* xi = in + base;
      T* yi = out + base;
      T m;
      T s = exp_sum(xi, n, inner, m, Log ? static_cast<T*>(nullptr) : yi);
      if constexpr (Log) {
        T lse = m + g_log(s);
        for (int64_t j = 0; j < n; ++j) yi[j * inner] = xi[j * inner] - lse;
      } else {
        T inv = T(1) / s;
        for (int64_t j = 0; j < n; ++j) yi[j * inner] *= inv;
      }
    });
  }
};

/// softmax: y (dy - sum(dy y)); log_softmax: dy - exp(y) sum(dy).
template <bool Log>
struct softmax_grad_k {
  template <class T>
  static void run(const kernel_call& c) {
    axis_view v = view_around(c, c.in[1].shape());
    const T* g = ptr<T>(c.in[0]);
    const T* y = ptr<T>(c.in[1]);
    T* out = ptr<T>(c.out);
    int64_t n = v.n, inner = v.inner;
    parallel_for(c, v.outer * v.inner, [=] LUOSHU_HD(int64_t r) {
      int64_t base = (r / inner) * n * inner + r % inner;
      T s = 0;
      for (int64_t j = 0; j < n; ++j) {
        int64_t k = base + j * inner;
        s += Log ? g[k] : g[k] * y[k];
      }
      for (int64_t j = 0; j < n; ++j) {
        int64_t k = base + j * inner;
        out[k] = Log ? g[k] - g_exp(y[k]) * s : y[k] * (g[k] - s);
      }
    });
  }
};

} // namespace

void register_activation(kernel_registry& r) {
  auto cuda = device::kind_t::cuda;
  r.add(op_kind::relu, cuda, float_kernel<unary_k<op_relu>>);
  r.add(op_kind::leaky_relu, cuda, float_kernel<unary_k<op_leaky>>);
  r.add(op_kind::elu, cuda, float_kernel<unary_k<op_elu>>);
  r.add(op_kind::gelu, cuda, float_kernel<unary_k<op_gelu>>);
  r.add(op_kind::sigmoid, cuda, float_kernel<unary_k<op_sigmoid>>);
  r.add(op_kind::tanh, cuda, float_kernel<unary_k<op_tanh>>);
  r.add(op_kind::softplus, cuda, float_kernel<unary_k<op_softplus>>);
  r.add(op_kind::relu_grad, cuda, float_kernel<binary_k<op_relu_grad>>);
  r.add(op_kind::leaky_relu_grad, cuda, float_kernel<binary_k<op_leaky_grad>>);
  r.add(op_kind::elu_grad, cuda, float_kernel<binary_k<op_elu_grad>>);
  r.add(op_kind::gelu_grad, cuda, float_kernel<binary_k<op_gelu_grad>>);
  r.add(op_kind::sigmoid_grad, cuda, float_kernel<binary_k<op_sigmoid_grad>>);
  r.add(op_kind::tanh_grad, cuda, float_kernel<binary_k<op_tanh_grad>>);
  r.add(op_kind::softmax, cuda, float_kernel<softmax_k<false>>);
  r.add(op_kind::log_softmax, cuda, float_kernel<softmax_k<true>>);
  r.add(op_kind::softmax_grad, cuda, float_kernel<softmax_grad_k<false>>);
  r.add(op_kind::log_softmax_grad, cuda, float_kernel<softmax_grad_k<true>>);
}

} // namespace luoshu::LUOSHU_GPU_NS
