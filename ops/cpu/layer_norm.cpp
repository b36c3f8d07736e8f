// CPU kernels: layer_norm and its gradients (ops/layer_norm.hpp). f32 runs
// oneDNN's layer normalization primitives (forward, and backward with the
// row statistics recomputed here; built once per shape and thread, see
// staged_primitive_cache); f64 runs the one-row loops of
// ops/layer_norm.hpp. The scale gradient sums dy * xhat over the rows in a
// fixed number of chunks, so its result does not depend on the thread count.

#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "ops/cpu/dnnl_util.hpp"
#include "ops/cpu/register.hpp"
#include "ops/layer_norm.hpp"

namespace luoshu::cpu {

namespace {

using tag = dnnl::memory::format_tag;
using dt = dnnl::memory::data_type;
const auto ln_flags = dnnl::normalization_flags::use_scale | dnnl::normalization_flags::use_shift;

/// Rows and features of x [..., D].
struct rows_of {
  int64_t n = 0, d = 0;
  explicit rows_of(const tensor& x) {
    d = x.dim(x.shape().rank() - 1);
    n = d ? x.numel() / d : 0;
  }
};

/// The descriptors of one f32 layer normalization over [n, d].
struct ln_descs {
  dnnl::memory::desc data, param, stat;
  dnnl::layer_normalization_forward::primitive_desc fwd;
  ln_descs(int64_t n, int64_t d, double eps, dnnl::prop_kind prop)
      : data({n, d}, dt::f32, tag::ab), param({d}, dt::f32, tag::a), stat({n}, dt::f32, tag::a),
        fwd({prop, data, stat, static_cast<float>(eps), ln_flags}, dnnl_engine()) {}
};

/// "which:n:d:eps" (eps exact, in hex), the primitive cache key.
std::string ln_key(const char* which, int64_t n, int64_t d, double eps) {
  char e[40];
  std::snprintf(e, sizeof e, "%a", eps);
  return std::string(which) + ":" + std::to_string(n) + ":" + std::to_string(d) + ":" + e;
}

/// f(b, e) over row ranges on the pool.
template <class F>
void rows(int64_t n, int64_t d, F f) {
  parallel_for(n, 4 * d, f);
}

// layer_norm(x, gamma, beta)
void k_layer_norm(const kernel_call& c) {
  const tensor &x = c.in[0], &gamma = c.in[1], &beta = c.in[2];
  rows_of r(x);
  if (r.n == 0) return;
  double eps = c.n.attrs.eps;
  dispatch_float(c, x.type(), [&](auto z) {
    using T = decltype(z);
    if constexpr (std::is_same_v<T, float>) {
      dnnl_guard(c, [&] {
        staged_primitive& p = staged_primitive_cache(ln_key("ln_fwd", r.n, r.d, eps), [&] {
          ln_descs ds(r.n, r.d, eps, dnnl::prop_kind::forward_inference);
          staged_primitive s;
          s.prim = dnnl::layer_normalization_forward(ds.fwd);
          s.add(DNNL_ARG_SRC, false, ds.data, ds.fwd.src_desc());
          s.add(DNNL_ARG_SCALE, false, ds.param, ds.param);
          s.add(DNNL_ARG_SHIFT, false, ds.param, ds.param);
          s.add(DNNL_ARG_DST, true, ds.data, ds.fwd.dst_desc());
          return s;
        });
        p.run({&x, &gamma, &beta, &c.out});
      });
    } else {
      const T *xp = x.data<T>(), *g = gamma.data<T>(), *b = beta.data<T>();
      T* y = c.out.data<T>();
      rows(r.n, r.d, [&](int64_t lo, int64_t hi) {
        for (int64_t i = lo; i < hi; ++i) ops::layer_norm_row(xp + i * r.d, g, b, r.d, eps, y + i * r.d);
      });
    }
  });
}

// layer_norm_grad(dy, x, gamma) -> dx
void k_layer_norm_grad(const kernel_call& c) {
  const tensor &dy = c.in[0], &x = c.in[1], &gamma = c.in[2];
  rows_of r(x);
  if (r.n == 0) return;
  double eps = c.n.attrs.eps;
  dispatch_float(c, x.type(), [&](auto z) {
    using T = decltype(z);
    if constexpr (std::is_same_v<T, float>) {
      // The statistics oneDNN's backward needs, recomputed (one pass per row).
      tensor mean = tensor::zeros(dtype::f32, shape{r.n}), var = tensor::zeros(dtype::f32, shape{r.n});
      // oneDNN 2.6 has no backward_data with a scale: its diff_scale lands
      // here unused (layer_norm_scale_grad computes the gain's gradient).
      tensor dscale = tensor::zeros(dtype::f32, shape{r.d});
      float *mp = mean.data<float>(), *vp = var.data<float>();
      const float* xp = x.data<float>();
      rows(r.n, r.d, [&](int64_t lo, int64_t hi) {
        for (int64_t i = lo; i < hi; ++i) {
          double m = 0, v = 0;
          ops::layer_norm_moments(xp + i * r.d, r.d, m, v);
          mp[i] = static_cast<float>(m);
          vp[i] = static_cast<float>(v);
        }
      });
      dnnl_guard(c, [&] {
        staged_primitive& p = staged_primitive_cache(ln_key("ln_bwd", r.n, r.d, eps), [&] {
          ln_descs ds(r.n, r.d, eps, dnnl::prop_kind::forward_training);
          dnnl::layer_normalization_backward::primitive_desc pd(
              {dnnl::prop_kind::backward, ds.data, ds.data, ds.stat, static_cast<float>(eps),
               dnnl::normalization_flags::use_scale},
              dnnl_engine(), ds.fwd);
          staged_primitive s;
          s.prim = dnnl::layer_normalization_backward(pd);
          s.add(DNNL_ARG_SRC, false, ds.data, pd.src_desc());
          s.add(DNNL_ARG_MEAN, false, ds.stat, pd.mean_desc());
          s.add(DNNL_ARG_VARIANCE, false, ds.stat, pd.variance_desc());
          s.add(DNNL_ARG_DIFF_DST, false, ds.data, pd.diff_dst_desc());
          s.add(DNNL_ARG_SCALE, false, ds.param, ds.param);
          s.add(DNNL_ARG_DIFF_SRC, true, ds.data, pd.diff_src_desc());
          s.add(DNNL_ARG_DIFF_SCALE, true, ds.param, ds.param);
          return s;
        });
        p.run({&x, &mean, &var, &dy, &gamma, &c.out, &dscale});
      });
    } else {
      const T *g = dy.data<T>(), *xp = x.data<T>(), *gm = gamma.data<T>();
      T* dx = c.out.data<T>();
      rows(r.n, r.d, [&](int64_t lo, int64_t hi) {
        for (int64_t i = lo; i < hi; ++i) ops::layer_norm_grad_row(g + i * r.d, xp + i * r.d, gm, r.d, eps, dx + i * r.d);
      });
    }
  });
}

// layer_norm_scale_grad(dy, x) -> dgamma [D]
void k_layer_norm_scale_grad(const kernel_call& c) {
  const tensor &dy = c.in[0], &x = c.in[1];
  rows_of r(x);
  double eps = c.n.attrs.eps;
  dispatch_float(c, x.type(), [&](auto z) {
    using T = decltype(z);
    T* out = c.out.data<T>();
    if (r.n == 0) {
      std::fill(out, out + r.d, T(0));
      return;
    }
    // Fixed chunks of rows, each summed serially into its own partial.
    const int64_t chunks = std::min<int64_t>(r.n, 32), per = (r.n + chunks - 1) / chunks;
    std::vector<double> part(static_cast<size_t>(chunks * r.d), 0.0);
    const T *g = dy.data<T>(), *xp = x.data<T>();
    parallel_for(chunks, per * r.d * 4, [&](int64_t lo, int64_t hi) {
      for (int64_t k = lo; k < hi; ++k) {
        double* acc = part.data() + k * r.d;
        for (int64_t i = k * per; i < std::min(r.n, (k + 1) * per); ++i)
          ops::layer_norm_scale_grad_row(g + i * r.d, xp + i * r.d, r.d, eps, acc);
      }
    });
    for (int64_t j = 0; j < r.d; ++j) {
      double s = 0;
      for (int64_t k = 0; k < chunks; ++k) s += part[static_cast<size_t>(k * r.d + j)];
      out[j] = static_cast<T>(s);
    }
  });
}

} // namespace

void register_layer_norm(kernel_registry& r) {
  auto cpu = device::kind_t::cpu;
  r.add(op_kind::layer_norm, cpu, k_layer_norm);
  r.add(op_kind::layer_norm_grad, cpu, k_layer_norm_grad);
  r.add(op_kind::layer_norm_scale_grad, cpu, k_layer_norm_scale_grad);
}

} // namespace luoshu::cpu
