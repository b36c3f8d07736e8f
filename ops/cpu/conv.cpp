// CPU kernels: conv2d and its input / filter / bias gradients. f32 runs
// oneDNN's convolution primitives on the blocked layouts oneDNN picks (its
// direct JIT kernels). Images the executor keeps channel-blocked
// (ops/kernel.hpp, layout_caps) go in and come out as they are; plain ones
// (and the OIHW filters) are reordered around the call (staged_primitive).
// f64 (reference checks) runs the one-element loops of ops/window.hpp.

#include "ops/cpu/dnnl_util.hpp"
#include "ops/cpu/register.hpp"
#include "ops/window.hpp"

namespace luoshu::cpu {

namespace {

using tag = dnnl::memory::format_tag;
using dt = dnnl::memory::data_type;

/// The descriptors of one f32 convolution: the tensors' layouts (x and y
/// plain or channel-blocked as the executor keeps them) and the forward
/// primitive over the layouts oneDNN prefers.
struct conv_descs {
  dnnl::memory::desc x, w, y;          ///< the tensors'
  dnnl::memory::desc xa, wa, ya;       ///< format_tag::any
  dnnl::memory::dims strides, dilates, pad;
  dnnl::convolution_forward::primitive_desc fwd;

  conv_descs(const ops::window_geom& g, bool x_blocked, bool y_blocked) {
    x = image_desc({g.n, g.c, g.h, g.w}, x_blocked);
    y = image_desc({g.n, g.o, g.oh, g.ow}, y_blocked);
    xa = {{g.n, g.c, g.h, g.w}, dt::f32, tag::any};
    ya = {{g.n, g.o, g.oh, g.ow}, dt::f32, tag::any};
    if (g.groups == 1) {
      w = {{g.o, g.c, g.kh, g.kw}, dt::f32, tag::oihw};
      wa = {{g.o, g.c, g.kh, g.kw}, dt::f32, tag::any};
    } else {
      w = {{g.groups, g.o / g.groups, g.c / g.groups, g.kh, g.kw}, dt::f32, tag::goihw};
      wa = {{g.groups, g.o / g.groups, g.c / g.groups, g.kh, g.kw}, dt::f32, tag::any};
    }
    strides = {g.sh, g.sw};
    dilates = {g.dh - 1, g.dw - 1}; // oneDNN counts the gaps
    pad = {g.ph, g.pw};
    fwd = {{dnnl::prop_kind::forward_training, dnnl::algorithm::convolution_direct, xa, wa, ya, strides, dilates, pad,
            pad},
           dnnl_engine()};
  }
};

/// "which:x:y:n,c,h,w,o,oh,ow,kh,kw,sh,sw,ph,pw,dh,dw,groups" (x, y: 1 where
/// blocked), the staged-primitive cache key.
std::string conv_key(const char* which, bool x_blocked, bool y_blocked, const ops::window_geom& g) {
  std::string k = which;
  k.append(x_blocked ? ":1" : ":0").append(y_blocked ? ":1" : ":0");
  for (int64_t v : {g.n, g.c, g.h, g.w, g.o, g.oh, g.ow, g.kh, g.kw, g.sh, g.sw, g.ph, g.pw, g.dh, g.dw, g.groups})
    k.append(":").append(std::to_string(v));
  return k;
}

/// f(i) for every i in [0, n) on the pool (each output element independent).
template <class F>
void each(int64_t n, int64_t cost, F f) {
  parallel_for(n, cost, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) f(i);
  });
}

/// One conv kernel (out from in[0], in[1] and, with `args` 3, in[2]): zeros
/// when input `operand` is empty; f32 runs this thread's staged oneDNN
/// primitive `key` for g and the images' layouts (x_blocked, y_blocked),
/// built by make(conv_descs) on first use with its arguments in the order
/// in[0], in[1] (, in[2]), out; f64 computes each output element with
/// at(g, in0, in1, i).
template <class Make, class At>
void conv_kernel(const kernel_call& c, const ops::window_geom& g, int64_t cost, size_t operand, const char* key,
                 size_t args, bool x_blocked, bool y_blocked, Make&& make, At&& at) {
  if (c.out.numel() == 0) return;
  dispatch_float(c, c.out.type(), [&](auto z) {
    using T = decltype(z);
    if constexpr (std::is_same_v<T, float>) {
      if (c.in[operand].numel() == 0) { // nothing to convolve: zeros, or the bias
        if (args < 3) {
          c.out.fill(0.0);
          return;
        }
        const float* bias = c.in[2].data<float>();
        float* out = c.out.data<float>();
        const int64_t plane = g.oh * g.ow, bs = y_blocked ? dnnl_channel_block() : 1;
        each(c.out.numel(), 1, [&](int64_t i) {
          const int64_t o = y_blocked ? ((i / (plane * bs)) % (g.o / bs)) * bs + i % bs : (i / plane) % g.o;
          out[i] = bias[o];
        });
        return;
      }
      dnnl_guard(c, [&] {
        staged_primitive& p = staged_primitive_cache(conv_key(key, x_blocked, y_blocked, g),
                                                     [&] { return make(conv_descs(g, x_blocked, y_blocked)); });
        if (args == 3)
          p.run({&c.in[0], &c.in[1], &c.in[2], &c.out});
        else
          p.run({&c.in[0], &c.in[1], &c.out});
      });
    } else {
      const T *a = c.in[0].data<T>(), *b = c.in[1].data<T>();
      T* out = c.out.data<T>();
      each(c.out.numel(), cost, [&](int64_t i) { out[i] = at(g, a, b, i); });
    }
  });
}

// conv2d(x, w), conv2d(x, w, b)
void k_conv2d(const kernel_call& c) {
  ops::window_geom g = ops::conv_geom(c.in[0].shape(), c.in[1].shape(), c.out.shape(), c.n.attrs);
  const bool bias = c.in.size() == 3;
  conv_kernel(
      c, g, g.c / g.groups * g.kh * g.kw, 0, bias ? "fwd_bias" : "fwd", c.in.size(), c.in_blocked(0), c.out_blocked(),
      [&](const conv_descs& d) {
        staged_primitive s;
        dnnl::memory::desc b({g.o}, dt::f32, tag::x);
        auto pd = bias ? dnnl::convolution_forward::primitive_desc(
                             {dnnl::prop_kind::forward_training, dnnl::algorithm::convolution_direct, d.xa, d.wa, b,
                              d.ya, d.strides, d.dilates, d.pad, d.pad},
                             dnnl_engine())
                       : d.fwd;
        s.prim = dnnl::convolution_forward(pd);
        s.add(DNNL_ARG_SRC, false, d.x, pd.src_desc());
        s.add(DNNL_ARG_WEIGHTS, false, d.w, pd.weights_desc());
        if (bias) s.add(DNNL_ARG_BIAS, false, b, pd.bias_desc());
        s.add(DNNL_ARG_DST, true, d.y, pd.dst_desc());
        return s;
      },
      [&](const ops::window_geom& geom, const auto* x, const auto* w, int64_t i) {
        using T = std::remove_cv_t<std::remove_pointer_t<decltype(x)>>;
        T v = ops::conv_forward_at(geom, x, w, i);
        if (bias) v += c.in[2].data<T>()[(i / (geom.oh * geom.ow)) % geom.o];
        return v;
      });
}

// conv2d_input_grad(dy, w, x_like) -> dx
void k_conv2d_input_grad(const kernel_call& c) {
  ops::window_geom g = ops::conv_geom(c.out.shape(), c.in[1].shape(), c.in[0].shape(), c.n.attrs);
  conv_kernel(
      c, g, g.o / g.groups * g.kh * g.kw, 0, "bwd_data", 2, c.out_blocked(), c.in_blocked(0),
      [](const conv_descs& d) {
        dnnl::convolution_backward_data::primitive_desc pd(
            {dnnl::algorithm::convolution_direct, d.xa, d.wa, d.ya, d.strides, d.dilates, d.pad, d.pad}, dnnl_engine(),
            d.fwd);
        staged_primitive s;
        s.prim = dnnl::convolution_backward_data(pd);
        s.add(DNNL_ARG_DIFF_DST, false, d.y, pd.diff_dst_desc());
        s.add(DNNL_ARG_WEIGHTS, false, d.w, pd.weights_desc());
        s.add(DNNL_ARG_DIFF_SRC, true, d.x, pd.diff_src_desc());
        return s;
      },
      [](const ops::window_geom& geom, const auto* dy, const auto* w, int64_t i) { return ops::conv_input_grad_at(geom, dy, w, i); });
}

// conv2d_filter_grad(x, dy, w_like) -> dw
void k_conv2d_filter_grad(const kernel_call& c) {
  ops::window_geom g = ops::conv_geom(c.in[0].shape(), c.out.shape(), c.in[1].shape(), c.n.attrs);
  conv_kernel(
      c, g, g.n * g.oh * g.ow, 1, "bwd_weights", 2, c.in_blocked(0), c.in_blocked(1),
      [](const conv_descs& d) {
        dnnl::convolution_backward_weights::primitive_desc pd(
            {dnnl::algorithm::convolution_direct, d.xa, d.wa, d.ya, d.strides, d.dilates, d.pad, d.pad}, dnnl_engine(),
            d.fwd);
        staged_primitive s;
        s.prim = dnnl::convolution_backward_weights(pd);
        s.add(DNNL_ARG_SRC, false, d.x, pd.src_desc());
        s.add(DNNL_ARG_DIFF_DST, false, d.y, pd.diff_dst_desc());
        s.add(DNNL_ARG_DIFF_WEIGHTS, true, d.w, pd.diff_weights_desc());
        return s;
      },
      [](const ops::window_geom& geom, const auto* x, const auto* dy, int64_t i) { return ops::conv_filter_grad_at(geom, x, dy, i); });
}

// conv2d_bias_grad(dy) -> db: one channel's planes summed per task (per
// block of B channels when dy is channel-blocked).
void k_conv2d_bias_grad(const kernel_call& c) {
  const tensor& dy = c.in[0];
  const int64_t n = dy.dim(0), o = dy.dim(1), plane = dy.dim(2) * dy.dim(3);
  dispatch_float(c, c.out.type(), [&](auto z) {
    using T = decltype(z);
    const T* d = dy.data<T>();
    T* out = c.out.data<T>();
    if (c.in_blocked(0)) {
      const int64_t bs = dnnl_channel_block(), nb = o / bs;
      parallel_for_checked(nb, n * plane * bs, [&](int64_t b, int64_t e) {
        std::vector<T> acc(static_cast<size_t>(bs));
        for (int64_t cb = b; cb < e; ++cb) {
          std::fill(acc.begin(), acc.end(), T(0));
          for (int64_t i = 0; i < n; ++i) {
            const T* p = d + ((i * nb + cb) * plane) * bs;
            for (int64_t k = 0; k < plane; ++k)
#pragma omp simd
              for (int64_t l = 0; l < bs; ++l) acc[static_cast<size_t>(l)] += p[k * bs + l];
          }
          std::copy(acc.begin(), acc.end(), out + cb * bs);
        }
      });
      return;
    }
    parallel_for(o, n * plane, [&](int64_t b, int64_t e) {
      for (int64_t q = b; q < e; ++q) {
        T acc = T(0);
        for (int64_t i = 0; i < n; ++i) {
          const T* p = d + (i * o + q) * plane;
          T part = T(0);
#pragma omp simd reduction(+ : part)
          for (int64_t k = 0; k < plane; ++k) part += p[k];
          acc += part;
        }
        out[q] = acc;
      }
    });
  });
}

// Layouts: the images x and dy may come channel-blocked, and conv2d's y and
// conv2d_input_grad's dx may leave so; filters and biases stay plain.
layout_caps conv_layout(const node& n, std::span<const type_shape>, const type_shape&) {
  switch (n.op) {
    case op_kind::conv2d: return {.inputs = 1u, .output = true};
    case op_kind::conv2d_input_grad: return {.inputs = 1u, .output = true};
    case op_kind::conv2d_filter_grad: return {.inputs = 3u};
    default: return {.inputs = 1u}; // conv2d_bias_grad
  }
}

} // namespace

void register_conv(kernel_registry& r) {
  auto cpu = device::kind_t::cpu;
  for (op_kind k : {op_kind::conv2d, op_kind::conv2d_input_grad, op_kind::conv2d_filter_grad, op_kind::conv2d_bias_grad})
    r.add_layout(k, conv_layout);
  r.add(op_kind::conv2d, cpu, k_conv2d);
  r.add(op_kind::conv2d_input_grad, cpu, k_conv2d_input_grad);
  r.add(op_kind::conv2d_filter_grad, cpu, k_conv2d_filter_grad);
  r.add(op_kind::conv2d_bias_grad, cpu, k_conv2d_bias_grad);
}

} // namespace luoshu::cpu
