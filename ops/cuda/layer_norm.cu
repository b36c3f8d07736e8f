// CUDA kernels: layer_norm and its gradients (see gpu.cuh for how kernels
// are written). One thread per row runs the one-row loops of
// ops/layer_norm.hpp (double accumulation, the CPU's f64 arithmetic); the
// scale gradient stores each row's statistics first, then gives each
// feature one thread that sums over the rows (no atomics: deterministic).
// TODO(perf): a block per row with a shared-memory reduction.

#include "ops/cuda/gpu.cuh"
#include "ops/layer_norm.hpp"

namespace luoshu::LUOSHU_GPU_NS {

namespace {

/// Rows and features of x [..., D].
void rows_of(const tensor& x, int64_t& n, int64_t& d) {
  d = x.dim(x.shape().rank() - 1);
  n = d ? x.numel() / d : 0;
}

// layer_norm(x, gamma, beta)
struct layer_norm_k {
  template <class T>
  static void run(const kernel_call& c) {
    int64_t n = 0, d = 0;
    rows_of(c.in[0], n, d);
    double eps = c.n.attrs.eps;
    const T *x = ptr<T>(c.in[0]), *g = ptr<T>(c.in[1]), *b = ptr<T>(c.in[2]);
    T* y = ptr<T>(c.out);
    parallel_for(c, n, [=] LUOSHU_HD(int64_t r) { ops::layer_norm_row(x + r * d, g, b, d, eps, y + r * d); });
  }
};

// layer_norm_grad(dy, x, gamma) -> dx
struct layer_norm_grad_k {
  template <class T>
  static void run(const kernel_call& c) {
    int64_t n = 0, d = 0;
    rows_of(c.in[1], n, d);
    double eps = c.n.attrs.eps;
    const T *dy = ptr<T>(c.in[0]), *x = ptr<T>(c.in[1]), *g = ptr<T>(c.in[2]);
    T* dx = ptr<T>(c.out);
    parallel_for(c, n, [=] LUOSHU_HD(int64_t r) {
      ops::layer_norm_grad_row(dy + r * d, x + r * d, g, d, eps, dx + r * d);
    });
  }
};

// layer_norm_scale_grad(dy, x) -> dgamma [D]
struct layer_norm_scale_grad_k {
  template <class T>
  static void run(const kernel_call& c) {
    int64_t n = 0, d = 0;
    rows_of(c.in[1], n, d);
    double eps = c.n.attrs.eps;
    const T *dy = ptr<T>(c.in[0]), *x = ptr<T>(c.in[1]);
    T* out = ptr<T>(c.out);
    tensor stats = scratch(c, dtype::f64, 2 * (n > 0 ? n : 1));
    double* st = ptr<double>(stats); // mean, rstd per row
    parallel_for(c, n, [=] LUOSHU_HD(int64_t r) { ops::layer_norm_stats(x + r * d, d, eps, st[2 * r], st[2 * r + 1]); });
    parallel_for(c, d, [=] LUOSHU_HD(int64_t j) {
      double s = 0;
      for (int64_t r = 0; r < n; ++r)
        s += static_cast<double>(dy[r * d + j]) * (static_cast<double>(x[r * d + j]) - st[2 * r]) * st[2 * r + 1];
      out[j] = static_cast<T>(s);
    });
  }
};

template <class K>
void float_kernel(const kernel_call& c) {
  dispatch_float<K>(c, c.out.type());
}

} // namespace

void register_layer_norm(kernel_registry& r) {
  auto cuda = device::kind_t::cuda;
  r.add(op_kind::layer_norm, cuda, float_kernel<layer_norm_k>);
  r.add(op_kind::layer_norm_grad, cuda, float_kernel<layer_norm_grad_k>);
  r.add(op_kind::layer_norm_scale_grad, cuda, float_kernel<layer_norm_scale_grad_k>);
}

} // namespace luoshu::LUOSHU_GPU_NS
