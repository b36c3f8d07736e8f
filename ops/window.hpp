#pragma once
// Sliding-window geometry shared by conv2d and the 2-d pools: how the
// attributes are laid out, output sizes, and one-element reference loops
// that the CPU backend (f64, and max-pool gradients) and the CUDA backend
// (ops/cuda/conv.cu, every dtype) both run. NCHW tensors, OIHW filters.
//
// Attributes (existing op_attrs members, so the graph codec carries them):
//   axes  = {stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w}
//           (padding is symmetric: pad_h rows above and below);
//   axes2 = {kernel_h, kernel_w}  (pools only; conv2d reads its filter);
//   axis  = groups                (conv2d family);
//   flag  = count_include_pad     (avg_pool2d family).

#include <cstdint>
#include <string>
#include <vector>

#include "graph/error.hpp"
#include "graph/shape.hpp"
#include "ops/op.hpp"

#if defined(__CUDACC__)
#define LUOSHU_WINDOW_HD __host__ __device__
#else
#define LUOSHU_WINDOW_HD
#endif

namespace luoshu::ops {

/// Every size of one windowed op, resolved for known shapes. Plain value:
/// device lambdas capture it.
struct window_geom {
  int64_t n = 0, c = 0, h = 0, w = 0; ///< input
  int64_t o = 0, oh = 0, ow = 0;      ///< output channels and size
  int64_t kh = 1, kw = 1;             ///< kernel
  int64_t sh = 1, sw = 1, ph = 0, pw = 0, dh = 1, dw = 1;
  int64_t groups = 1;
  bool include_pad = true; ///< avg pool divisor counts padding
};

/// Attribute values above this are refused (they only overflow).
inline constexpr int64_t max_window_attr = int64_t{1} << 30;

/// The attribute vector as six window parameters; throws naming the bad one.
inline void read_window_attrs(const std::vector<int64_t>& axes, window_geom& g) {
  if (axes.size() != 6)
    throw luoshu_error("window attributes need {stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w}, got " +
                       std::to_string(axes.size()) + " values");
  const char* names[] = {"stride", "stride", "padding", "padding", "dilation", "dilation"};
  for (size_t i = 0; i < 6; ++i) {
    int64_t lo = (i == 2 || i == 3) ? 0 : 1;
    if (axes[i] < lo || axes[i] > max_window_attr)
      throw luoshu_error(std::string(names[i]) + " must be in [" + std::to_string(lo) + ", 2^30], got " +
                         std::to_string(axes[i]));
  }
  g.sh = axes[0];
  g.sw = axes[1];
  g.ph = axes[2];
  g.pw = axes[3];
  g.dh = axes[4];
  g.dw = axes[5];
}

/// Output size of one spatial dim; unknown (-1) stays unknown. Throws when
/// the dilated kernel does not fit the padded input.
inline int64_t window_out(int64_t in, int64_t k, int64_t s, int64_t p, int64_t d, const char* axis) {
  int64_t span = d * (k - 1) + 1;
  if (in < 0) return -1;
  if (span > in + 2 * p)
    throw luoshu_error(std::string("kernel ") + axis + " extent " + std::to_string(span) +
                       " (kernel " + std::to_string(k) + ", dilation " + std::to_string(d) +
                       ") is larger than the padded input " + axis + " " + std::to_string(in + 2 * p));
  return (in + 2 * p - span) / s + 1;
}

/// conv2d (and its gradients) over known shapes x [n, c, h, w],
/// w [o, c/groups, kh, kw], y [n, o, oh, ow]; inference has checked them.
inline window_geom conv_geom(const shape& x, const shape& w, const shape& y, const op_attrs& a) {
  window_geom g;
  read_window_attrs(a.axes, g);
  g.n = x[0], g.c = x[1], g.h = x[2], g.w = x[3];
  g.o = w[0], g.kh = w[2], g.kw = w[3];
  g.oh = y[2], g.ow = y[3];
  g.groups = a.axis;
  return g;
}

/// A pool (and its gradient) over known shapes x [n, c, h, w], y [n, c, oh, ow].
inline window_geom pool_geom(const shape& x, const shape& y, const op_attrs& a) {
  window_geom g;
  read_window_attrs(a.axes, g);
  g.n = x[0], g.c = x[1], g.h = x[2], g.w = x[3];
  g.o = x[1], g.oh = y[2], g.ow = y[3];
  g.kh = a.axes2.at(0), g.kw = a.axes2.at(1);
  g.include_pad = a.flag;
  return g;
}

/// conv2d: y[n, o, i, j] = sum over c in o's group, a, b of
///   x[n, c, i*sh - ph + a*dh, j*sw - pw + b*dw] * w[o, c - group start, a, b].
template <class T>
LUOSHU_WINDOW_HD T conv_forward_at(const window_geom& g, const T* x, const T* w, int64_t idx) {
  int64_t j = idx % g.ow, i = (idx / g.ow) % g.oh, o = (idx / (g.ow * g.oh)) % g.o, n = idx / (g.ow * g.oh * g.o);
  int64_t cg = g.c / g.groups, og = g.o / g.groups, c0 = (o / og) * cg;
  T acc = T(0);
  for (int64_t ci = 0; ci < cg; ++ci) {
    const T* xp = x + ((n * g.c + c0 + ci) * g.h) * g.w;
    const T* wp = w + ((o * cg + ci) * g.kh) * g.kw;
    for (int64_t a = 0; a < g.kh; ++a) {
      int64_t y = i * g.sh - g.ph + a * g.dh;
      if (y < 0 || y >= g.h) continue;
      for (int64_t b = 0; b < g.kw; ++b) {
        int64_t xx = j * g.sw - g.pw + b * g.dw;
        if (xx < 0 || xx >= g.w) continue;
        acc += xp[y * g.w + xx] * wp[a * g.kw + b];
      }
    }
  }
  return acc;
}

/// The output position t along one axis that input position `pos` meets at
/// kernel tap a (pos = t*s - p + a*d), or -1 when there is none.
LUOSHU_WINDOW_HD inline int64_t window_hit(int64_t pos, int64_t a, int64_t s, int64_t p, int64_t d, int64_t out) {
  int64_t q = pos + p - a * d;
  if (q < 0 || q % s != 0) return -1;
  q /= s;
  return q < out ? q : -1;
}

/// conv2d's gradient w.r.t. x at flat index idx of x ([n, c, h, w]).
template <class T>
LUOSHU_WINDOW_HD T conv_input_grad_at(const window_geom& g, const T* dy, const T* w, int64_t idx) {
  int64_t xx = idx % g.w, y = (idx / g.w) % g.h, c = (idx / (g.w * g.h)) % g.c, n = idx / (g.w * g.h * g.c);
  int64_t cg = g.c / g.groups, og = g.o / g.groups, grp = c / cg, ci = c - grp * cg;
  T acc = T(0);
  for (int64_t a = 0; a < g.kh; ++a) {
    int64_t i = window_hit(y, a, g.sh, g.ph, g.dh, g.oh);
    if (i < 0) continue;
    for (int64_t b = 0; b < g.kw; ++b) {
      int64_t j = window_hit(xx, b, g.sw, g.pw, g.dw, g.ow);
      if (j < 0) continue;
      for (int64_t oo = 0; oo < og; ++oo) {
        int64_t o = grp * og + oo;
        acc += dy[((n * g.o + o) * g.oh + i) * g.ow + j] * w[((o * cg + ci) * g.kh + a) * g.kw + b];
      }
    }
  }
  return acc;
}

/// conv2d's gradient w.r.t. the filter at flat index idx of w ([o, c/groups, kh, kw]).
template <class T>
LUOSHU_WINDOW_HD T conv_filter_grad_at(const window_geom& g, const T* x, const T* dy, int64_t idx) {
  int64_t cg = g.c / g.groups, og = g.o / g.groups;
  int64_t b = idx % g.kw, a = (idx / g.kw) % g.kh, ci = (idx / (g.kw * g.kh)) % cg, o = idx / (g.kw * g.kh * cg);
  int64_t c = (o / og) * cg + ci;
  T acc = T(0);
  for (int64_t n = 0; n < g.n; ++n)
    for (int64_t i = 0; i < g.oh; ++i) {
      int64_t y = i * g.sh - g.ph + a * g.dh;
      if (y < 0 || y >= g.h) continue;
      const T* xp = x + ((n * g.c + c) * g.h + y) * g.w;
      const T* dp = dy + ((n * g.o + o) * g.oh + i) * g.ow;
      for (int64_t j = 0; j < g.ow; ++j) {
        int64_t xx = j * g.sw - g.pw + b * g.dw;
        if (xx >= 0 && xx < g.w) acc += xp[xx] * dp[j];
      }
    }
  return acc;
}

/// The gradient of conv2d's bias for output channel o: dy summed over the
/// batch and both output axes.
template <class T>
LUOSHU_WINDOW_HD T conv_bias_grad_at(const window_geom& g, const T* dy, int64_t o) {
  T acc = T(0);
  const int64_t plane = g.oh * g.ow;
  for (int64_t n = 0; n < g.n; ++n) {
    const T* dp = dy + (n * g.o + o) * plane;
    for (int64_t k = 0; k < plane; ++k) acc += dp[k];
  }
  return acc;
}

/// Flat offset (within its [h, w] plane) of the first largest element of
/// output (i, j)'s window; padding never wins.
template <class T>
LUOSHU_WINDOW_HD int64_t max_pool_argmax(const window_geom& g, const T* plane, int64_t i, int64_t j) {
  int64_t best = -1;
  for (int64_t a = 0; a < g.kh; ++a) {
    int64_t y = i * g.sh - g.ph + a * g.dh;
    if (y < 0 || y >= g.h) continue;
    for (int64_t b = 0; b < g.kw; ++b) {
      int64_t xx = j * g.sw - g.pw + b * g.dw;
      if (xx < 0 || xx >= g.w) continue;
      int64_t k = y * g.w + xx;
      if (best < 0 || plane[best] < plane[k]) best = k;
    }
  }
  return best;
}

/// max_pool2d at flat output index idx ([n, c, oh, ow]).
template <class T>
LUOSHU_WINDOW_HD T max_pool_forward_at(const window_geom& g, const T* x, int64_t idx) {
  int64_t j = idx % g.ow, i = (idx / g.ow) % g.oh, nc = idx / (g.ow * g.oh);
  const T* plane = x + nc * g.h * g.w;
  int64_t k = max_pool_argmax(g, plane, i, j);
  return k < 0 ? T(0) : plane[k];
}

/// max_pool2d's gradient at flat input index idx: the sum of dy over the
/// windows whose (first) maximum is this element.
template <class T>
LUOSHU_WINDOW_HD T max_pool_grad_at(const window_geom& g, const T* dy, const T* x, int64_t idx) {
  int64_t xx = idx % g.w, y = (idx / g.w) % g.h, nc = idx / (g.w * g.h);
  const T* plane = x + nc * g.h * g.w;
  const T* dp = dy + nc * g.oh * g.ow;
  int64_t self = y * g.w + xx;
  T acc = T(0);
  for (int64_t a = 0; a < g.kh; ++a) {
    int64_t i = window_hit(y, a, g.sh, g.ph, g.dh, g.oh);
    if (i < 0) continue;
    for (int64_t b = 0; b < g.kw; ++b) {
      int64_t j = window_hit(xx, b, g.sw, g.pw, g.dw, g.ow);
      if (j >= 0 && max_pool_argmax(g, plane, i, j) == self) acc += dp[i * g.ow + j];
    }
  }
  return acc;
}

/// The number avg_pool2d divides output (i, j)'s window sum by.
LUOSHU_WINDOW_HD inline int64_t avg_pool_divisor(const window_geom& g, int64_t i, int64_t j) {
  if (g.include_pad) return g.kh * g.kw; // windows never pass the padded border (floor mode)
  int64_t y0 = i * g.sh - g.ph, x0 = j * g.sw - g.pw;
  int64_t y1 = y0 + g.kh < g.h ? y0 + g.kh : g.h, x1 = x0 + g.kw < g.w ? x0 + g.kw : g.w;
  y0 = y0 < 0 ? 0 : y0;
  x0 = x0 < 0 ? 0 : x0;
  return (y1 - y0) * (x1 - x0);
}

/// avg_pool2d at flat output index idx.
template <class T>
LUOSHU_WINDOW_HD T avg_pool_forward_at(const window_geom& g, const T* x, int64_t idx) {
  int64_t j = idx % g.ow, i = (idx / g.ow) % g.oh, nc = idx / (g.ow * g.oh);
  const T* plane = x + nc * g.h * g.w;
  T acc = T(0);
  for (int64_t a = 0; a < g.kh; ++a) {
    int64_t y = i * g.sh - g.ph + a;
    if (y < 0 || y >= g.h) continue;
    for (int64_t b = 0; b < g.kw; ++b) {
      int64_t xx = j * g.sw - g.pw + b;
      if (xx >= 0 && xx < g.w) acc += plane[y * g.w + xx];
    }
  }
  return acc / static_cast<T>(avg_pool_divisor(g, i, j));
}

/// avg_pool2d's gradient at flat input index idx.
template <class T>
LUOSHU_WINDOW_HD T avg_pool_grad_at(const window_geom& g, const T* dy, int64_t idx) {
  int64_t xx = idx % g.w, y = (idx / g.w) % g.h, nc = idx / (g.w * g.h);
  const T* dp = dy + nc * g.oh * g.ow;
  T acc = T(0);
  for (int64_t a = 0; a < g.kh; ++a) {
    int64_t i = window_hit(y, a, g.sh, g.ph, 1, g.oh);
    if (i < 0) continue;
    for (int64_t b = 0; b < g.kw; ++b) {
      int64_t j = window_hit(xx, b, g.sw, g.pw, 1, g.ow);
      if (j >= 0) acc += dp[i * g.ow + j] / static_cast<T>(avg_pool_divisor(g, i, j));
    }
  }
  return acc;
}

} // namespace luoshu::ops
