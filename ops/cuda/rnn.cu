// CUDA kernels: lstm, gru and their backward helpers, with the CPU's
// algorithm and workspace layouts (ops/rnn.cpp, ops/cpu/rnn.cpp): one GEMM
// (cuBLAS through gemm() in gpu.cuh) for the input projection of every
// step, one per step for the recurrence, and one elementwise launch per step
// for the gates; backward walks the steps in reverse the same way.
// TODO(perf): a persistent kernel (or cuDNN's RNN API) would save the
// per-step launches on long sequences.

#include "ops/cuda/gpu.cuh"
#include "ops/rnn_cell.hpp"

namespace luoshu::LUOSHU_GPU_NS {

namespace {

template <class T>
LUOSHU_HD inline T g_sigmoid(T x) {
  return T(1) / (T(1) + g_exp(-x));
}

/// Copies bias[cols] into `cols` columns of each of `m` rows of out (row stride ld).
template <class T>
void fill_rows(const kernel_call& c, T* out, int64_t m, int64_t ld, const T* bias, int64_t cols) {
  parallel_for(c, m * cols, [=] LUOSHU_HD(int64_t i) { out[(i / cols) * ld + i % cols] = bias[i % cols]; });
}

/// n zeros in a scratch tensor of the call's dtype.
template <class T>
tensor zeros(const kernel_call& c, int64_t n) {
  tensor s = scratch(c, c.out.type(), n);
  T* p = ptr<T>(s);
  parallel_for(c, n, [=] LUOSHU_HD(int64_t i) { p[i] = T(0); });
  return s;
}

// lstm(x, w_x, w_h, b) -> ws [B, T, 6H]: h | c | i f g o
struct lstm_k {
  template <class T>
  static void run(const kernel_call& c) {
    const int64_t bs = c.out.dim(0), steps = c.out.dim(1), hd = c.in[2].dim(0), in = c.in[0].dim(2);
    const int64_t w = 6 * hd, g4 = 4 * hd;
    if (c.out.numel() == 0) return;
    const T *x = ptr<T>(c.in[0]), *wx = ptr<T>(c.in[1]), *wh = ptr<T>(c.in[2]), *bias = ptr<T>(c.in[3]);
    T* ws = ptr<T>(c.out);
    fill_rows(c, ws + 2 * hd, bs * steps, w, bias, g4);
    if (in > 0) gemm<T>(c, false, false, bs * steps, g4, in, x, in, wx, g4, ws + 2 * hd, w, T(1));
    for (int64_t t = 0; t < steps; ++t) {
      if (t > 0)
        gemm<T>(c, false, false, bs, g4, hd, ws + (t - 1) * w, steps * w, wh, g4, ws + t * w + 2 * hd, steps * w,
                T(1));
      parallel_for(c, bs * hd, [=] LUOSHU_HD(int64_t e) {
        const int64_t b = e / hd, j = e % hd;
        T* row = ws + (b * steps + t) * w;
        T i = g_sigmoid(row[2 * hd + j]), f = g_sigmoid(row[3 * hd + j]);
        T g = g_tanh(row[4 * hd + j]), o = g_sigmoid(row[5 * hd + j]);
        T cv = i * g + (t > 0 ? f * row[hd + j - w] : T(0));
        row[2 * hd + j] = i;
        row[3 * hd + j] = f;
        row[4 * hd + j] = g;
        row[5 * hd + j] = o;
        row[hd + j] = cv;
        row[j] = o * g_tanh(cv);
      });
    }
  }
};

// lstm_grad(dy, ws, w_h) -> dG [B, T, 4H]
struct lstm_grad_k {
  template <class T>
  static void run(const kernel_call& c) {
    const int64_t bs = c.out.dim(0), steps = c.out.dim(1), hd = c.in[2].dim(0);
    const int64_t w = 6 * hd, g4 = 4 * hd, dw = c.in[0].dim(2);
    const bool full = dw == w; // dy covers the whole workspace, not h alone
    if (c.out.numel() == 0) return;
    const T *dy = ptr<T>(c.in[0]), *ws = ptr<T>(c.in[1]), *wh = ptr<T>(c.in[2]);
    T* dgate = ptr<T>(c.out);
    tensor dh_t = zeros<T>(c, bs * hd), dc_t = zeros<T>(c, bs * hd);
    T *dh_rec = ptr<T>(dh_t), *dc_rec = ptr<T>(dc_t);
    for (int64_t t = steps; t-- > 0;) {
      parallel_for(c, bs * hd, [=] LUOSHU_HD(int64_t e) {
        const int64_t b = e / hd, j = e % hd, r = b * steps + t;
        const T* row = ws + r * w;
        const T* dyr = dy + r * dw;
        T dcv = dc_rec[e], di = 0, df = 0, dgv = 0, dov = 0;
        if (full) {
          dcv += dyr[hd + j];
          di = dyr[2 * hd + j];
          df = dyr[3 * hd + j];
          dgv = dyr[4 * hd + j];
          dov = dyr[5 * hd + j];
        }
        const auto u = ops::lstm_unit_backward(row[2 * hd + j], row[3 * hd + j], row[4 * hd + j], row[5 * hd + j],
                                               g_tanh(row[hd + j]), t > 0 ? row[hd + j - w] : T(0),
                                               dyr[j] + dh_rec[e], dcv, di, df, dgv, dov);
        T* d = dgate + r * g4;
        d[j] = u.i;
        d[hd + j] = u.f;
        d[2 * hd + j] = u.g;
        d[3 * hd + j] = u.o;
        dc_rec[e] = u.c_prev;
      });
      if (t > 0) gemm<T>(c, false, true, bs, hd, g4, dgate + t * g4, steps * g4, wh, g4, dh_rec, hd, T(0));
    }
  }
};

// gru(x, w_x, w_h, b_x, b_h) -> ws [B, T, 5H]: h | r z n | hn
struct gru_k {
  template <class T>
  static void run(const kernel_call& c) {
    const int64_t bs = c.out.dim(0), steps = c.out.dim(1), hd = c.in[2].dim(0), in = c.in[0].dim(2);
    const int64_t w = 5 * hd, g3 = 3 * hd;
    if (c.out.numel() == 0) return;
    const T *x = ptr<T>(c.in[0]), *wx = ptr<T>(c.in[1]), *wh = ptr<T>(c.in[2]);
    const T *bx = ptr<T>(c.in[3]), *bh = ptr<T>(c.in[4]);
    T* ws = ptr<T>(c.out);
    fill_rows(c, ws + hd, bs * steps, w, bx, g3);
    if (in > 0) gemm<T>(c, false, false, bs * steps, g3, in, x, in, wx, g3, ws + hd, w, T(1));
    tensor q_t = scratch(c, c.out.type(), bs * g3); // h_{t-1} w_h + b_h of one step
    T* q = ptr<T>(q_t);
    for (int64_t t = 0; t < steps; ++t) {
      fill_rows(c, q, bs, g3, bh, g3);
      if (t > 0) gemm<T>(c, false, false, bs, g3, hd, ws + (t - 1) * w, steps * w, wh, g3, q, g3, T(1));
      parallel_for(c, bs * hd, [=] LUOSHU_HD(int64_t e) {
        const int64_t b = e / hd, j = e % hd;
        T* row = ws + (b * steps + t) * w;
        const T* qr = q + b * g3;
        T r = g_sigmoid(row[hd + j] + qr[j]), z = g_sigmoid(row[2 * hd + j] + qr[hd + j]), m = qr[2 * hd + j];
        T n = g_tanh(row[3 * hd + j] + r * m);
        row[hd + j] = r;
        row[2 * hd + j] = z;
        row[3 * hd + j] = n;
        row[4 * hd + j] = m;
        row[j] = (T(1) - z) * n + (t > 0 ? z * row[j - w] : T(0));
      });
    }
  }
};

// gru_grad(dy, ws, w_h) -> dG [B, T, 6H]: dGx (r z n) | dGh (r z hn)
struct gru_grad_k {
  template <class T>
  static void run(const kernel_call& c) {
    const int64_t bs = c.out.dim(0), steps = c.out.dim(1), hd = c.in[2].dim(0);
    const int64_t w = 5 * hd, g3 = 3 * hd, g6 = 6 * hd, dw = c.in[0].dim(2);
    const bool full = dw == w;
    if (c.out.numel() == 0) return;
    const T *dy = ptr<T>(c.in[0]), *ws = ptr<T>(c.in[1]), *wh = ptr<T>(c.in[2]);
    T* dgate = ptr<T>(c.out);
    tensor dh_t = zeros<T>(c, bs * hd);
    T* dh_rec = ptr<T>(dh_t);
    for (int64_t t = steps; t-- > 0;) {
      parallel_for(c, bs * hd, [=] LUOSHU_HD(int64_t e) {
        const int64_t b = e / hd, j = e % hd, ri = b * steps + t;
        const T* row = ws + ri * w;
        const T* dyr = dy + ri * dw;
        T r = row[hd + j], z = row[2 * hd + j], n = row[3 * hd + j], m = row[4 * hd + j];
        T h_prev = t > 0 ? row[j - w] : T(0);
        T dh = dyr[j] + dh_rec[e];
        T drv = 0, dzv = 0, dnv = 0, dm = 0;
        if (full) {
          drv = dyr[hd + j];
          dzv = dyr[2 * hd + j];
          dnv = dyr[3 * hd + j];
          dm = dyr[4 * hd + j];
        }
        const auto gg = ops::gru_unit_backward(r, z, n, m, h_prev, dh, drv, dzv, dnv, dm);
        T* d = dgate + ri * g6;
        d[j] = gg.r;
        d[hd + j] = gg.z;
        d[2 * hd + j] = gg.n;
        d[3 * hd + j] = gg.r;
        d[4 * hd + j] = gg.z;
        d[5 * hd + j] = gg.hn;
        dh_rec[e] = dh * z; // the direct path; the GEMM below adds dGh w_h^T
      });
      if (t > 0) gemm<T>(c, false, true, bs, hd, g3, dgate + t * g6 + g3, steps * g6, wh, g3, dh_rec, hd, T(1));
    }
  }
};

// rnn_input_grad(dG, w_x, x_like) -> dx [B, T, I] = dG[.., :G] w_x^T
struct input_grad_k {
  template <class T>
  static void run(const kernel_call& c) {
    const int64_t m = c.out.dim(0) * c.out.dim(1), in = c.out.dim(2), g = c.in[1].dim(1), ld = c.in[0].dim(2);
    if (c.out.numel() == 0) return;
    gemm<T>(c, false, true, m, in, g, ptr<T>(c.in[0]), ld, ptr<T>(c.in[1]), g, ptr<T>(c.out), in, T(0));
  }
};

// rnn_weight_grad(a, dG, w_like) -> dw [K, G]
struct weight_grad_k {
  template <class T>
  static void run(const kernel_call& c) {
    const tensor &a = c.in[0], &dg = c.in[1];
    const int64_t bs = dg.dim(0), steps = dg.dim(1), ld = dg.dim(2), k = c.out.dim(0), g = c.out.dim(1);
    const int64_t aw = a.dim(2), m = bs * steps;
    T* out = ptr<T>(c.out);
    if (c.out.numel() == 0) return;
    if (m == 0) {
      parallel_for(c, k * g, [=] LUOSHU_HD(int64_t i) { out[i] = T(0); });
      return;
    }
    if (!c.n.attrs.flag) {
      gemm<T>(c, true, false, k, g, m, ptr<T>(a), aw, ptr<T>(dg), ld, out, g, T(0));
      return;
    }
    // h_{t-1} for every (b, t) in one contiguous [B T, K] block (zeros at t = 0).
    tensor hp_t = scratch(c, c.out.type(), m * k);
    T* hp = ptr<T>(hp_t);
    const T* ws = ptr<T>(a);
    parallel_for(c, m * k, [=] LUOSHU_HD(int64_t i) {
      const int64_t r = i / k, j = i % k, t = r % steps;
      hp[i] = t > 0 ? ws[(r - 1) * aw + j] : T(0);
    });
    gemm<T>(c, true, false, k, g, m, hp, k, ptr<T>(dg) + (ld - g), ld, out, g, T(0));
  }
};

// rnn_bias_grad(dG, b_like) -> db [G]: column sums
struct bias_grad_k {
  template <class T>
  static void run(const kernel_call& c) {
    const tensor& dg = c.in[0];
    const int64_t m = dg.dim(0) * dg.dim(1), ld = dg.dim(2), g = c.out.dim(0);
    const T* src = ptr<T>(dg) + (c.n.attrs.flag ? ld - g : 0);
    T* out = ptr<T>(c.out);
    parallel_for(c, g, [=] LUOSHU_HD(int64_t j) {
      T s = 0;
      for (int64_t i = 0; i < m; ++i) s += src[i * ld + j];
      out[j] = s;
    });
  }
};

void k_lstm(const kernel_call& c) { dispatch_float<lstm_k>(c, c.out.type()); }
void k_lstm_grad(const kernel_call& c) { dispatch_float<lstm_grad_k>(c, c.out.type()); }
void k_gru(const kernel_call& c) { dispatch_float<gru_k>(c, c.out.type()); }
void k_gru_grad(const kernel_call& c) { dispatch_float<gru_grad_k>(c, c.out.type()); }
void k_input_grad(const kernel_call& c) { dispatch_float<input_grad_k>(c, c.out.type()); }
void k_weight_grad(const kernel_call& c) { dispatch_float<weight_grad_k>(c, c.out.type()); }
void k_bias_grad(const kernel_call& c) { dispatch_float<bias_grad_k>(c, c.out.type()); }

} // namespace

void register_rnn(kernel_registry& r) {
  const auto cuda = device::kind_t::cuda;
  r.add(op_kind::lstm, cuda, k_lstm);
  r.add(op_kind::gru, cuda, k_gru);
  r.add(op_kind::lstm_grad, cuda, k_lstm_grad);
  r.add(op_kind::gru_grad, cuda, k_gru_grad);
  r.add(op_kind::rnn_input_grad, cuda, k_input_grad);
  r.add(op_kind::rnn_weight_grad, cuda, k_weight_grad);
  r.add(op_kind::rnn_bias_grad, cuda, k_bias_grad);
}

} // namespace luoshu::LUOSHU_GPU_NS
