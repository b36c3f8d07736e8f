// CPU kernels: batch normalization (see ops/norm.cpp for the ops). The f32
// normalization runs oneDNN's batch_normalization primitive with the
// statistics given (use_global_stats | use_scale | use_shift, plain nc /
// nchw memory, cached per shape and thread); f64 and
// the per-channel reductions run the loops below, parallel over channels,
// with double accumulators for both dtypes.
//
// oneDNN's backward primitive computes diff_src, diff_scale and diff_shift
// together, but a node has one output: batch_norm_param_grad (the two
// reductions) and batch_norm_input_grad (one elementwise pass using them)
// together make the two passes over (dy, x) that the fused backward makes,
// and compute nothing twice.

#include <cmath>
#include <cstdio>
#include <utility>

#include "ops/cpu/dnnl_util.hpp"
#include "ops/cpu/register.hpp"

namespace luoshu::cpu {

namespace {

using tag = dnnl::memory::format_tag;
using dt = dnnl::memory::data_type;

/// x as [n, c, s]: s = H W for NCHW, 1 for [N, C].
struct norm_geom {
  int64_t n = 0, c = 0, s = 1;
  int64_t m() const { return n * s; } ///< values per channel
};

norm_geom geom_of(const shape& x) {
  norm_geom g;
  g.n = x[0];
  g.c = x[1];
  for (int i = 2; i < x.rank(); ++i) g.s *= x[i];
  return g;
}

/// f(channel) for every channel on the pool; `cost` = work per channel.
template <class F>
void each_channel(const norm_geom& g, F f) {
  parallel_for(g.c, g.m(), [&](int64_t b, int64_t e) {
    for (int64_t ch = b; ch < e; ++ch) f(ch);
  });
}

/// sum over the channel's values of f(value, index), in double.
template <class T, class F>
double channel_sum(const norm_geom& g, int64_t ch, F f) {
  double acc = 0;
  for (int64_t i = 0; i < g.n; ++i) {
    const int64_t base = (i * g.c + ch) * g.s;
    double part = 0;
#pragma omp simd reduction(+ : part)
    for (int64_t j = 0; j < g.s; ++j) part += f(base + j);
    acc += part;
  }
  return acc;
}

/// Two sums over the channel's values in one pass: of f(k) and of h(k).
template <class F, class H>
std::pair<double, double> channel_sums(const norm_geom& g, int64_t ch, F f, H h) {
  double a = 0, b = 0;
  for (int64_t i = 0; i < g.n; ++i) {
    const int64_t base = (i * g.c + ch) * g.s;
    double pa = 0, pb = 0;
#pragma omp simd reduction(+ : pa, pb)
    for (int64_t j = 0; j < g.s; ++j) {
      pa += f(base + j);
      pb += h(base + j);
    }
    a += pa;
    b += pb;
  }
  return {a, b};
}

// batch_norm_stats(x, running_mean, running_var) -> [2, C]
void k_batch_norm_stats(const kernel_call& c) {
  const norm_geom g = geom_of(c.in[0].shape());
  const double momentum = c.n.attrs.alpha;
  const bool training = c.ctx.training;
  if (training && g.m() < 2)
    throw luoshu_error("batch_norm needs more than one value per channel in training mode, got input " +
                       c.in[0].shape().to_string());
  dispatch_float(c, c.out.type(), [&](auto z) {
    using T = decltype(z);
    const T* x = c.in[0].data<T>();
    T* rm = c.in[1].data<T>();
    T* rv = c.in[2].data<T>();
    T* mean = c.out.data<T>();
    T* var = mean + g.c;
    if (!training) {
      std::copy(rm, rm + g.c, mean);
      std::copy(rv, rv + g.c, var);
      return;
    }
    const double inv_m = 1.0 / static_cast<double>(g.m());
    const double unbias = static_cast<double>(g.m()) / static_cast<double>(g.m() - 1);
    each_channel(g, [&](int64_t ch) {
      double mu = channel_sum<T>(g, ch, [&](int64_t k) { return static_cast<double>(x[k]); }) * inv_m;
      double v = channel_sum<T>(g, ch, [&](int64_t k) {
                   double d = static_cast<double>(x[k]) - mu;
                   return d * d;
                 }) * inv_m;
      mean[ch] = static_cast<T>(mu);
      var[ch] = static_cast<T>(v);
      // In place: the running statistics are variables, the store's tensors.
      rm[ch] = static_cast<T>((1 - momentum) * static_cast<double>(rm[ch]) + momentum * mu);
      rv[ch] = static_cast<T>((1 - momentum) * static_cast<double>(rv[ch]) + momentum * v * unbias);
    });
  });
}

// batch_norm(x, gamma, beta, stats) -> y
void k_batch_norm(const kernel_call& c) {
  const norm_geom g = geom_of(c.in[0].shape());
  if (c.out.numel() == 0) return;
  const double eps = c.n.attrs.eps;
  dispatch_float(c, c.out.type(), [&](auto z) {
    using T = decltype(z);
    if constexpr (std::is_same_v<T, float>) {
      const shape& xs = c.in[0].shape();
      // Views of the statistics' two rows.
      const tensor& stats = c.in[3];
      const tensor mean(stats.storage(), stats.offset(), dtype::f32, shape{g.c});
      const tensor var(stats.storage(), stats.offset() + static_cast<size_t>(g.c) * sizeof(float), dtype::f32,
                       shape{g.c});
      dnnl_guard(c, [&] {
        char eps_text[32];
        std::snprintf(eps_text, sizeof eps_text, "%.17g", eps); // every bit: the key must tell epsilons apart
        staged_primitive& p = staged_primitive_cache("batch_norm_fwd " + xs.to_string() + " " + eps_text, [&] {
          dnnl::memory::desc xd = xs.rank() == 2 ? dnnl::memory::desc({g.n, g.c}, dt::f32, tag::nc)
                                                 : dnnl::memory::desc({g.n, g.c, xs[2], xs[3]}, dt::f32, tag::nchw);
          dnnl::memory::desc cd({g.c}, dt::f32, tag::x);
          auto flags = dnnl::normalization_flags::use_global_stats | dnnl::normalization_flags::use_scale |
                       dnnl::normalization_flags::use_shift;
          dnnl::batch_normalization_forward::primitive_desc pd(
              {dnnl::prop_kind::forward_inference, xd, static_cast<float>(eps), flags}, dnnl_engine());
          staged_primitive sp;
          sp.prim = dnnl::batch_normalization_forward(pd);
          sp.add(DNNL_ARG_SRC, false, xd, pd.src_desc());
          sp.add(DNNL_ARG_SCALE, false, cd, cd);
          sp.add(DNNL_ARG_SHIFT, false, cd, cd);
          sp.add(DNNL_ARG_MEAN, false, cd, pd.mean_desc());
          sp.add(DNNL_ARG_VARIANCE, false, cd, pd.variance_desc());
          sp.add(DNNL_ARG_DST, true, xd, pd.dst_desc());
          return sp;
        });
        p.run({&c.in[0], &c.in[1], &c.in[2], &mean, &var, &c.out});
      });
    } else {
      const T *x = c.in[0].data<T>(), *gamma = c.in[1].data<T>(), *beta = c.in[2].data<T>();
      const T *mean = c.in[3].data<T>(), *var = mean + g.c;
      T* y = c.out.data<T>();
      each_channel(g, [&](int64_t ch) {
        const T a = gamma[ch] / std::sqrt(var[ch] + static_cast<T>(eps));
        const T b = beta[ch] - mean[ch] * a;
        for (int64_t i = 0; i < g.n; ++i) {
          const int64_t base = (i * g.c + ch) * g.s;
          for (int64_t j = 0; j < g.s; ++j) y[base + j] = x[base + j] * a + b;
        }
      });
    }
  });
}

// batch_norm_param_grad(dy, x, stats) -> [dgamma; dbeta]
void k_batch_norm_param_grad(const kernel_call& c) {
  const norm_geom g = geom_of(c.in[1].shape());
  const double eps = c.n.attrs.eps;
  dispatch_float(c, c.out.type(), [&](auto z) {
    using T = decltype(z);
    const T *dy = c.in[0].data<T>(), *x = c.in[1].data<T>();
    const T *mean = c.in[2].data<T>(), *var = mean + g.c;
    T* dgamma = c.out.data<T>();
    T* dbeta = dgamma + g.c;
    each_channel(g, [&](int64_t ch) {
      const double mu = static_cast<double>(mean[ch]);
      const double inv_std = 1.0 / std::sqrt(static_cast<double>(var[ch]) + eps);
      auto [sdy, sdyx] = channel_sums(
          g, ch, [&](int64_t k) { return static_cast<double>(dy[k]); },
          [&](int64_t k) { return static_cast<double>(dy[k]) * (static_cast<double>(x[k]) - mu); });
      dgamma[ch] = static_cast<T>(sdyx * inv_std);
      dbeta[ch] = static_cast<T>(sdy);
    });
  });
}

// batch_norm_input_grad(dy, x, gamma, stats, param_grad) -> dx
void k_batch_norm_input_grad(const kernel_call& c) {
  const norm_geom g = geom_of(c.in[1].shape());
  if (c.out.numel() == 0) return;
  const double eps = c.n.attrs.eps;
  const bool training = c.ctx.training;
  dispatch_float(c, c.out.type(), [&](auto z) {
    using T = decltype(z);
    const T *dy = c.in[0].data<T>(), *x = c.in[1].data<T>(), *gamma = c.in[2].data<T>();
    const T *mean = c.in[3].data<T>(), *var = mean + g.c;
    const T *dgamma = c.in[4].data<T>(), *dbeta = dgamma + g.c;
    T* dx = c.out.data<T>();
    const double inv_m = 1.0 / static_cast<double>(g.m());
    each_channel(g, [&](int64_t ch) {
      const double inv_std = 1.0 / std::sqrt(static_cast<double>(var[ch]) + eps);
      const double k = static_cast<double>(gamma[ch]) * inv_std;
      // dx = k dy + (x - mean) a + b: training a = -k inv_std dgamma / M,
      // b = -k dbeta / M; inference a = b = 0.
      const T kt = static_cast<T>(k), mu = mean[ch];
      T a = 0, b = 0;
      if (training) {
        a = static_cast<T>(-k * inv_std * static_cast<double>(dgamma[ch]) * inv_m);
        b = static_cast<T>(-k * static_cast<double>(dbeta[ch]) * inv_m);
      }
      for (int64_t i = 0; i < g.n; ++i) {
        const int64_t base = (i * g.c + ch) * g.s;
#pragma omp simd
        for (int64_t j = 0; j < g.s; ++j) dx[base + j] = kt * dy[base + j] + a * (x[base + j] - mu) + b;
      }
    });
  });
}

} // namespace

void register_norm(kernel_registry& r) {
  auto cpu = device::kind_t::cpu;
  r.add(op_kind::batch_norm_stats, cpu, k_batch_norm_stats);
  r.add(op_kind::batch_norm, cpu, k_batch_norm);
  r.add(op_kind::batch_norm_param_grad, cpu, k_batch_norm_param_grad);
  r.add(op_kind::batch_norm_input_grad, cpu, k_batch_norm_input_grad);
}

} // namespace luoshu::cpu
