// CPU kernels: max_pool2d, avg_pool2d and their gradients. Max pooling over
// 2 x 2 windows at stride 2 (no padding: LeNet's, VGG's, the benchmark
// CNN's) is one vectorized pass per plane in both directions, on plain NCHW
// or on images the executor keeps channel-blocked (ops/kernel.hpp,
// layout_caps: then B channels at a time); otherwise f32
// forwards and the f32 average gradient run oneDNN's pooling primitives on
// plain NCHW memory, and the max gradient recomputes each window's argmax
// (no workspace to carry between nodes) with the loops of ops/window.hpp,
// as does f64.

#include <algorithm>

#include "ops/cpu/dnnl_util.hpp"
#include "ops/cpu/register.hpp"
#include "ops/window.hpp"

namespace luoshu::cpu {

namespace {

using tag = dnnl::memory::format_tag;
using dt = dnnl::memory::data_type;

dnnl::algorithm pool_algorithm(const kernel_call& c) {
  if (c.n.op == op_kind::max_pool2d) return dnnl::algorithm::pooling_max;
  return c.n.attrs.flag ? dnnl::algorithm::pooling_avg_include_padding : dnnl::algorithm::pooling_avg_exclude_padding;
}

struct pool_descs {
  dnnl::memory::desc x, y;
  dnnl::memory::dims strides, kernel, pad;
  explicit pool_descs(const ops::window_geom& g)
      : x({g.n, g.c, g.h, g.w}, dt::f32, tag::nchw), y({g.n, g.c, g.oh, g.ow}, dt::f32, tag::nchw),
        strides{g.sh, g.sw}, kernel{g.kh, g.kw}, pad{g.ph, g.pw} {}
};

template <class F>
void each(int64_t n, int64_t cost, F f) {
  parallel_for(n, cost, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) f(i);
  });
}

/// 2 x 2 windows at stride 2 without padding or dilation. Output sizes
/// round down, so an odd last row or column is in no window.
bool is_2x2(const ops::window_geom& g) {
  return g.kh == 2 && g.kw == 2 && g.sh == 2 && g.sw == 2 && g.ph == 0 && g.pw == 0 && g.dh == 1 && g.dw == 1 &&
         2 * g.oh <= g.h && 2 * g.ow <= g.w;
}

/// Which of a window's four elements (row by row: 0 to 3) is its first
/// largest, as ops::max_pool_argmax picks it, and its value in m. Selects,
/// not branches, and the index as a T so that the loops around it vectorize.
template <class T>
inline T first_largest(T a, T b, T c, T d, T& m) {
  T k = 0;
  m = a;
  bool more = m < b;
  k = more ? T(1) : k;
  m = more ? b : m;
  more = m < c;
  k = more ? T(2) : k;
  m = more ? c : m;
  more = m < d;
  k = more ? T(3) : k;
  m = more ? d : m;
  return k;
}

template <class T>
void max_pool_2x2(const ops::window_geom& g, const T* x, T* y) {
  const int64_t plane = g.h * g.w, oplane = g.oh * g.ow;
  parallel_for(g.n * g.c, plane, [&](int64_t b, int64_t e) {
    for (int64_t p = b; p < e; ++p)
      for (int64_t i = 0; i < g.oh; ++i) {
        const T* r0 = x + p * plane + 2 * i * g.w;
        const T* r1 = r0 + g.w;
        T* o = y + p * oplane + i * g.ow;
#pragma omp simd
        for (int64_t j = 0; j < g.ow; ++j) {
          T m;
          first_largest(r0[2 * j], r0[2 * j + 1], r1[2 * j], r1[2 * j + 1], m);
          o[j] = m;
        }
      }
  });
}

/// Each window's dy goes to its first largest element, zeros to the other
/// three (and to rows and columns in no window): dx written once.
template <class T>
void max_pool_grad_2x2(const ops::window_geom& g, const T* dy, const T* x, T* dx) {
  const int64_t plane = g.h * g.w, oplane = g.oh * g.ow;
  const bool uncovered = 2 * g.oh < g.h || 2 * g.ow < g.w;
  parallel_for(g.n * g.c, 2 * plane, [&](int64_t b, int64_t e) {
    for (int64_t p = b; p < e; ++p) {
      if (uncovered) std::fill(dx + p * plane, dx + (p + 1) * plane, T(0));
      for (int64_t i = 0; i < g.oh; ++i) {
        const T* r0 = x + p * plane + 2 * i * g.w;
        const T* r1 = r0 + g.w;
        T* d0 = dx + p * plane + 2 * i * g.w;
        T* d1 = d0 + g.w;
        const T* dr = dy + p * oplane + i * g.ow;
#pragma omp simd
        for (int64_t j = 0; j < g.ow; ++j) {
          T m;
          const T k = first_largest(r0[2 * j], r0[2 * j + 1], r1[2 * j], r1[2 * j + 1], m);
          const T v = dr[j];
          d0[2 * j] = k == T(0) ? v : T(0);
          d0[2 * j + 1] = k == T(1) ? v : T(0);
          d1[2 * j] = k == T(2) ? v : T(0);
          d1[2 * j + 1] = k == T(3) ? v : T(0);
        }
      }
    }
  });
}

/// Channel-blocked 2 x 2 max pooling: per block plane (one image's bs
/// channels, [h, w, bs]) the same windows, bs channels at a time. Each
/// operand is blocked or plain on its own (the executor keeps some images
/// blocked, hands others plain): a plain one is staged through a tile of
/// its bs channel planes (gathered for an input, scattered for the
/// output), which stays in cache. A block plane p = (image n, channel block
/// cb) starts at p h w bs in both layouts.

/// tile [hw, bs] <- bs plain channel planes of hw elements each.
template <class T>
void gather_tile(const T* planes, int64_t hw, int64_t bs, T* tile) {
  for (int64_t l = 0; l < bs; ++l)
    for (int64_t k = 0; k < hw; ++k) tile[k * bs + l] = planes[l * hw + k];
}

/// bs plain channel planes <- tile [hw, bs].
template <class T>
void scatter_tile(const T* tile, int64_t hw, int64_t bs, T* planes) {
  for (int64_t l = 0; l < bs; ++l)
    for (int64_t k = 0; k < hw; ++k) planes[l * hw + k] = tile[k * bs + l];
}

/// An operand's block plane: in place when blocked, else staged in `tile`.
template <class T>
const T* in_tile(const T* base, bool blocked, int64_t at, int64_t hw, int64_t bs, std::vector<T>& tile) {
  if (blocked) return base + at;
  tile.resize(static_cast<size_t>(hw * bs));
  gather_tile(base + at, hw, bs, tile.data());
  return tile.data();
}

template <class T>
void max_pool_2x2_blocked(const ops::window_geom& g, int64_t bs, const T* x, bool xb, T* y, bool yb) {
  const int64_t hw = g.h * g.w, ohw = g.oh * g.ow, row = g.w * bs;
  parallel_for_checked(g.n * (g.c / bs), hw * bs, [&](int64_t b, int64_t e) {
    std::vector<T> xt, yt(yb ? 0 : static_cast<size_t>(ohw * bs));
    for (int64_t p = b; p < e; ++p) {
      const T* xp = in_tile(x, xb, p * hw * bs, hw, bs, xt);
      T* yp = yb ? y + p * ohw * bs : yt.data();
      for (int64_t i = 0; i < g.oh; ++i)
        for (int64_t j = 0; j < g.ow; ++j) {
          const T* a = xp + 2 * i * row + 2 * j * bs;
          const T* c = a + row;
          T* o = yp + (i * g.ow + j) * bs;
#pragma omp simd
          for (int64_t l = 0; l < bs; ++l) {
            T m;
            first_largest(a[l], a[bs + l], c[l], c[bs + l], m);
            o[l] = m;
          }
        }
      if (!yb) scatter_tile(yt.data(), ohw, bs, y + p * ohw * bs);
    }
  });
}

template <class T>
void max_pool_grad_2x2_blocked(const ops::window_geom& g, int64_t bs, const T* dy, bool dyb, const T* x, bool xb,
                               T* dx, bool dxb) {
  const int64_t hw = g.h * g.w, ohw = g.oh * g.ow, row = g.w * bs;
  const bool uncovered = 2 * g.oh < g.h || 2 * g.ow < g.w;
  parallel_for_checked(g.n * (g.c / bs), 2 * hw * bs, [&](int64_t b, int64_t e) {
    std::vector<T> dyt, xt, dxt(dxb ? 0 : static_cast<size_t>(hw * bs));
    for (int64_t p = b; p < e; ++p) {
      const T* dp = in_tile(dy, dyb, p * ohw * bs, ohw, bs, dyt);
      const T* xp = in_tile(x, xb, p * hw * bs, hw, bs, xt);
      T* dxp = dxb ? dx + p * hw * bs : dxt.data();
      if (uncovered) std::fill(dxp, dxp + hw * bs, T(0));
      for (int64_t i = 0; i < g.oh; ++i)
        for (int64_t j = 0; j < g.ow; ++j) {
          const int64_t at = 2 * i * row + 2 * j * bs;
          const T* a = xp + at;
          const T* c = a + row;
          T* da = dxp + at;
          T* dc = da + row;
          const T* d = dp + (i * g.ow + j) * bs;
#pragma omp simd
          for (int64_t l = 0; l < bs; ++l) {
            T m;
            const T k = first_largest(a[l], a[bs + l], c[l], c[bs + l], m);
            const T v = d[l];
            da[l] = k == T(0) ? v : T(0);
            da[bs + l] = k == T(1) ? v : T(0);
            dc[l] = k == T(2) ? v : T(0);
            dc[bs + l] = k == T(3) ? v : T(0);
          }
        }
      if (!dxb) scatter_tile(dxt.data(), hw, bs, dx + p * hw * bs);
    }
  });
}

// max_pool2d(x), avg_pool2d(x)
void k_pool(const kernel_call& c) {
  ops::window_geom g = ops::pool_geom(c.in[0].shape(), c.out.shape(), c.n.attrs);
  if (c.out.numel() == 0) return;
  bool is_max = c.n.op == op_kind::max_pool2d;
  dispatch_float(c, c.out.type(), [&](auto z) {
    using T = decltype(z);
    if (is_max && is_2x2(g)) {
      if (c.in_blocked(0) || c.out_blocked())
        max_pool_2x2_blocked(g, dnnl_channel_block(), c.in[0].data<T>(), c.in_blocked(0), c.out.data<T>(),
                             c.out_blocked());
      else
        max_pool_2x2(g, c.in[0].data<T>(), c.out.data<T>());
    } else if constexpr (std::is_same_v<T, float>) {
      dnnl_guard(c, [&] {
        pool_descs d(g);
        dnnl::pooling_forward::primitive_desc pd(
            {dnnl::prop_kind::forward_inference, pool_algorithm(c), d.x, d.y, d.strides, d.kernel, d.pad, d.pad},
            dnnl_engine());
        dnnl_run(dnnl::pooling_forward(pd), {{DNNL_ARG_SRC, dnnl_mem(d.x, c.in[0])}, {DNNL_ARG_DST, dnnl_mem(d.y, c.out)}});
      });
    } else {
      const T* x = c.in[0].data<T>();
      T* y = c.out.data<T>();
      if (is_max)
        each(c.out.numel(), g.kh * g.kw, [&](int64_t i) { y[i] = ops::max_pool_forward_at(g, x, i); });
      else
        each(c.out.numel(), g.kh * g.kw, [&](int64_t i) { y[i] = ops::avg_pool_forward_at(g, x, i); });
    }
  });
}

// max_pool2d_grad(dy, x) -> dx
void k_max_pool_grad(const kernel_call& c) {
  ops::window_geom g = ops::pool_geom(c.out.shape(), c.in[0].shape(), c.n.attrs);
  if (c.out.numel() == 0) return;
  dispatch_float(c, c.out.type(), [&](auto z) {
    using T = decltype(z);
    const T *dy = c.in[0].data<T>(), *x = c.in[1].data<T>();
    T* dx = c.out.data<T>();
    if (is_2x2(g)) {
      if (c.blocked)
        return max_pool_grad_2x2_blocked(g, dnnl_channel_block(), dy, c.in_blocked(0), x, c.in_blocked(1), dx,
                                         c.out_blocked());
      return max_pool_grad_2x2(g, dy, x, dx);
    }
    // One pass per (n, c) plane: each output adds its dy to its window's
    // first largest element (ops::max_pool_argmax, as the forward picks).
    const int64_t plane = g.h * g.w, oplane = g.oh * g.ow;
    const bool interior = g.ph == 0 && g.pw == 0;
    parallel_for(g.n * g.c, plane + oplane * g.kh * g.kw, [&](int64_t b, int64_t e) {
      for (int64_t p = b; p < e; ++p) {
        T* d = dx + p * plane;
        std::fill(d, d + plane, T(0));
        const T* xp = x + p * plane;
        const T* dp = dy + p * oplane;
        if (interior) { // every window inside the plane: no bounds checks
          for (int64_t i = 0; i < g.oh; ++i)
            for (int64_t j = 0; j < g.ow; ++j) {
              const int64_t base = i * g.sh * g.w + j * g.sw;
              int64_t best = base;
              T bestv = xp[base];
              for (int64_t a = 0; a < g.kh; ++a)
                for (int64_t bb = 0; bb < g.kw; ++bb) {
                  const int64_t k = base + a * g.dh * g.w + bb * g.dw;
                  const T v = xp[k];
                  const bool more = bestv < v; // select, not branch: random data mispredicts
                  best = more ? k : best;
                  bestv = more ? v : bestv;
                }
              d[best] += dp[i * g.ow + j];
            }
          continue;
        }
        for (int64_t i = 0; i < g.oh; ++i)
          for (int64_t j = 0; j < g.ow; ++j) {
            int64_t k = ops::max_pool_argmax(g, xp, i, j);
            if (k >= 0) d[k] += dp[i * g.ow + j];
          }
      }
    });
  });
}

// avg_pool2d_grad(dy, x_like) -> dx
void k_avg_pool_grad(const kernel_call& c) {
  ops::window_geom g = ops::pool_geom(c.out.shape(), c.in[0].shape(), c.n.attrs);
  if (c.out.numel() == 0) return;
  dispatch_float(c, c.out.type(), [&](auto z) {
    using T = decltype(z);
    if constexpr (std::is_same_v<T, float>) {
      dnnl_guard(c, [&] {
        pool_descs d(g);
        auto alg = pool_algorithm(c);
        dnnl::pooling_forward::primitive_desc hint(
            {dnnl::prop_kind::forward_training, alg, d.x, d.y, d.strides, d.kernel, d.pad, d.pad}, dnnl_engine());
        dnnl::pooling_backward::primitive_desc pd({alg, d.x, d.y, d.strides, d.kernel, d.pad, d.pad}, dnnl_engine(),
                                                  hint);
        dnnl_run(dnnl::pooling_backward(pd),
                 {{DNNL_ARG_DIFF_DST, dnnl_mem(d.y, c.in[0])}, {DNNL_ARG_DIFF_SRC, dnnl_mem(d.x, c.out)}});
      });
    } else {
      const T* dy = c.in[0].data<T>();
      T* dx = c.out.data<T>();
      each(c.out.numel(), g.kh * g.kw, [&](int64_t i) { dx[i] = ops::avg_pool_grad_at(g, dy, i); });
    }
  });
}

// Layouts: 2 x 2 max pooling (forward and gradient) takes and gives
// channel-blocked images, each operand blocked or plain on its own.
layout_caps pool_layout(const node& n, std::span<const type_shape> in, const type_shape& out) {
  const bool fwd = n.op == op_kind::max_pool2d;
  const ops::window_geom g =
      fwd ? ops::pool_geom(in[0].shape, out.shape, n.attrs) : ops::pool_geom(out.shape, in[0].shape, n.attrs);
  if (!is_2x2(g)) return {};
  return {.inputs = fwd ? 1u : 3u, .output = true};
}

} // namespace

void register_pool(kernel_registry& r) {
  auto cpu = device::kind_t::cpu;
  r.add_layout(op_kind::max_pool2d, pool_layout);
  r.add_layout(op_kind::max_pool2d_grad, pool_layout);
  r.add(op_kind::max_pool2d, cpu, k_pool);
  r.add(op_kind::avg_pool2d, cpu, k_pool);
  r.add(op_kind::max_pool2d_grad, cpu, k_max_pool_grad);
  r.add(op_kind::avg_pool2d_grad, cpu, k_avg_pool_grad);
}

} // namespace luoshu::cpu
