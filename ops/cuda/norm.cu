// CUDA kernels: batch normalization (see ops/norm.cpp for the ops and
// gpu.cuh for how kernels are written). The per-channel reductions run one
// thread per channel over its N H W values (double accumulators, fixed
// order, so results are deterministic); the normalization and the input
// gradient run one thread per element.
// TODO(perf): block-wide per-channel reductions (or cuDNN's batch norm) for
// channels with many values.

#include "ops/cuda/gpu.cuh"

namespace luoshu::LUOSHU_GPU_NS {

namespace {

/// x as [n, c, s]: s = H W for NCHW, 1 for [N, C].
struct norm_geom {
  int64_t n = 0, c = 0, s = 1;
};

norm_geom geom_of(const shape& x) {
  norm_geom g;
  g.n = x[0];
  g.c = x[1];
  for (int i = 2; i < x.rank(); ++i) g.s *= x[i];
  return g;
}

// batch_norm_stats(x, running_mean, running_var) -> [2, C]
struct stats_k {
  template <class T>
  static void run(const kernel_call& c) {
    const norm_geom g = geom_of(c.in[0].shape());
    const int64_t m = g.n * g.s;
    const bool training = c.ctx.training;
    if (training && m < 2)
      throw luoshu_error("batch_norm needs more than one value per channel in training mode, got input " +
                         c.in[0].shape().to_string());
    const T* x = ptr<T>(c.in[0]);
    T* rm = ptr<T>(c.in[1]);
    T* rv = ptr<T>(c.in[2]);
    T* out = ptr<T>(c.out);
    const double momentum = c.n.attrs.alpha;
    const int64_t n = g.n, ch_count = g.c, s = g.s;
    parallel_for(c, g.c, [=] LUOSHU_HD(int64_t ch) {
      if (!training) {
        out[ch] = rm[ch];
        out[ch_count + ch] = rv[ch];
        return;
      }
      double sum = 0;
      for (int64_t i = 0; i < n; ++i)
        for (int64_t j = 0; j < s; ++j) sum += static_cast<double>(x[(i * ch_count + ch) * s + j]);
      const double mu = sum / static_cast<double>(m);
      double sq = 0;
      for (int64_t i = 0; i < n; ++i)
        for (int64_t j = 0; j < s; ++j) {
          double d = static_cast<double>(x[(i * ch_count + ch) * s + j]) - mu;
          sq += d * d;
        }
      const double v = sq / static_cast<double>(m);
      out[ch] = static_cast<T>(mu);
      out[ch_count + ch] = static_cast<T>(v);
      rm[ch] = static_cast<T>((1 - momentum) * static_cast<double>(rm[ch]) + momentum * mu);
      rv[ch] = static_cast<T>((1 - momentum) * static_cast<double>(rv[ch]) +
                              momentum * v * static_cast<double>(m) / static_cast<double>(m - 1));
    });
  }
};

// batch_norm(x, gamma, beta, stats) -> y
struct batch_norm_k {
  template <class T>
  static void run(const kernel_call& c) {
    const norm_geom g = geom_of(c.in[0].shape());
    const T *x = ptr<T>(c.in[0]), *gamma = ptr<T>(c.in[1]), *beta = ptr<T>(c.in[2]), *stats = ptr<T>(c.in[3]);
    T* y = ptr<T>(c.out);
    const T eps = static_cast<T>(c.n.attrs.eps);
    const int64_t ch_count = g.c, s = g.s;
    parallel_for(c, c.out.numel(), [=] LUOSHU_HD(int64_t i) {
      const int64_t ch = i / s % ch_count;
      const T a = gamma[ch] / g_sqrt(stats[ch_count + ch] + eps);
      y[i] = (x[i] - stats[ch]) * a + beta[ch];
    });
  }
};

// batch_norm_param_grad(dy, x, stats) -> [dgamma; dbeta]
struct param_grad_k {
  template <class T>
  static void run(const kernel_call& c) {
    const norm_geom g = geom_of(c.in[1].shape());
    const T *dy = ptr<T>(c.in[0]), *x = ptr<T>(c.in[1]), *stats = ptr<T>(c.in[2]);
    T* out = ptr<T>(c.out);
    const double eps = c.n.attrs.eps;
    const int64_t n = g.n, ch_count = g.c, s = g.s;
    parallel_for(c, g.c, [=] LUOSHU_HD(int64_t ch) {
      const double mu = static_cast<double>(stats[ch]);
      const double inv_std = 1.0 / g_sqrt(static_cast<double>(stats[ch_count + ch]) + eps);
      double sdy = 0, sdyx = 0;
      for (int64_t i = 0; i < n; ++i)
        for (int64_t j = 0; j < s; ++j) {
          const int64_t k = (i * ch_count + ch) * s + j;
          sdy += static_cast<double>(dy[k]);
          sdyx += static_cast<double>(dy[k]) * (static_cast<double>(x[k]) - mu);
        }
      out[ch] = static_cast<T>(sdyx * inv_std);
      out[ch_count + ch] = static_cast<T>(sdy);
    });
  }
};

// batch_norm_input_grad(dy, x, gamma, stats, param_grad) -> dx
struct input_grad_k {
  template <class T>
  static void run(const kernel_call& c) {
    const norm_geom g = geom_of(c.in[1].shape());
    const T *dy = ptr<T>(c.in[0]), *x = ptr<T>(c.in[1]), *gamma = ptr<T>(c.in[2]), *stats = ptr<T>(c.in[3]),
            *pg = ptr<T>(c.in[4]);
    T* dx = ptr<T>(c.out);
    const double eps = c.n.attrs.eps;
    const double inv_m = 1.0 / static_cast<double>(g.n * g.s);
    const bool training = c.ctx.training;
    const int64_t ch_count = g.c, s = g.s;
    parallel_for(c, c.out.numel(), [=] LUOSHU_HD(int64_t i) {
      const int64_t ch = i / s % ch_count;
      const double inv_std = 1.0 / g_sqrt(static_cast<double>(stats[ch_count + ch]) + eps);
      const double k = static_cast<double>(gamma[ch]) * inv_std;
      double v = k * static_cast<double>(dy[i]);
      if (training)
        v -= k * inv_m *
             (static_cast<double>(pg[ch_count + ch]) +
              (static_cast<double>(x[i]) - static_cast<double>(stats[ch])) * inv_std * static_cast<double>(pg[ch]));
      dx[i] = static_cast<T>(v);
    });
  }
};

void k_batch_norm_stats(const kernel_call& c) { dispatch_float<stats_k>(c, c.out.type()); }
void k_batch_norm(const kernel_call& c) { dispatch_float<batch_norm_k>(c, c.out.type()); }
void k_batch_norm_param_grad(const kernel_call& c) { dispatch_float<param_grad_k>(c, c.out.type()); }
void k_batch_norm_input_grad(const kernel_call& c) { dispatch_float<input_grad_k>(c, c.out.type()); }

} // namespace

void register_norm(kernel_registry& r) {
  auto dev = device::kind_t::cuda;
  r.add(op_kind::batch_norm_stats, dev, k_batch_norm_stats);
  r.add(op_kind::batch_norm, dev, k_batch_norm);
  r.add(op_kind::batch_norm_param_grad, dev, k_batch_norm_param_grad);
  r.add(op_kind::batch_norm_input_grad, dev, k_batch_norm_input_grad);
}

} // namespace luoshu::LUOSHU_GPU_NS
