// CPU kernels: lstm, gru and their backward helpers (see ops/rnn.cpp for the
// workspace layouts). The sequence runs as one GEMM for the input
// projection of all steps, then per step one GEMM h_{t-1} w_h (on small
// contiguous [batch, ..] buffers) and a fused gate loop that adds the
// projections and biases; backward walks the steps in reverse with one
// GEMM per step for the recurrent gradient, and the weight, input and bias
// gradients are one GEMM (or column sum) each over all steps. f32 GEMMs are
// oneDNN's sgemm (on the shared OpenMP pool) and the gate loops use
// vectorizable exp/tanh approximations (relative error ~1e-7); f64 (the
// reference for gradient checks) runs plain loops and std::exp / std::tanh.

#include <bit>
#include <cmath>
#include <memory>
#include <type_traits>
#include <vector>

#include "ops/cpu/cpu_util.hpp"
#include "ops/cpu/gemm.hpp"
#include "ops/cpu/register.hpp"
#include "ops/rnn_cell.hpp"

namespace luoshu::cpu {

namespace {

// --- activations ----------------------------------------------------------------

/// c ? a : b on the bits, which GCC vectorizes where a float select would
/// count as control flow (it may not speculate float operations that trap).
inline float pick(bool c, float a, float b) {
  const int32_t m = -static_cast<int32_t>(c);
  return std::bit_cast<float>((std::bit_cast<int32_t>(a) & m) | (std::bit_cast<int32_t>(b) & ~m));
}

/// e^x for x in about [-87, 88] (clamped outside), vectorizable: Cephes'
/// range reduction (rounding by adding and subtracting 1.5 2^23) and
/// degree-6 polynomial; relative error below 1e-7.
inline float fast_exp(float x) {
  x = pick(x < -87.0f, -87.0f, x);
  x = pick(x > 88.0f, 88.0f, x);
  float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  float r = x - n * 0.693359375f + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  return p * std::bit_cast<float>((static_cast<int32_t>(n) + 127) << 23);
}

inline float sigm(float x) { return 1.0f / (1.0f + fast_exp(-x)); }
inline double sigm(double x) { return 1.0 / (1.0 + std::exp(-x)); }
/// tanh(x) = sign(x) (1 - e^{-2|x|}) / (1 + e^{-2|x|}); below 1/4 the odd
/// Taylor series, where the difference would lose relative precision
/// (relative error below 2e-7).
inline float tanh_(float x) {
  float a = std::fabs(x);
  float e = fast_exp(-2.0f * a);
  float t = (1.0f - e) / (1.0f + e);
  float x2 = x * x;
  float small =
      a * (1.0f + x2 * (-0.333333333f + x2 * (0.133333333f + x2 * (-0.0539682540f + x2 * 0.0218694885f))));
  return std::copysign(pick(a < 0.25f, small, t), x);
}
inline double tanh_(double x) { return std::tanh(x); }

/// w [rows, cols] transposed: [cols, rows]. Backward's per-step product
/// dG_t w_h^T then runs as a plain product on it, which oneDNN's sgemm does
/// in about a third less time than the transposed form at RNN sizes
/// (batch 32, hidden 128: 11 against 30 us on 2 threads).
template <class T>
std::vector<T> transposed(const T* w, int64_t rows, int64_t cols) {
  std::vector<T> t(static_cast<size_t>(rows * cols));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t q = 0; q < cols; ++q) t[static_cast<size_t>(q * rows + r)] = w[r * cols + q];
  return t;
}

/// The recurrence split by batch rows: a row's recurrence never reads
/// another row's, so each thread of the pool walks every step for its own
/// rows [b0, b1) with single-threaded GEMMs (oneDNN runs sgemm on one thread
/// inside a parallel region) and never waits for another thread between
/// steps. Per step, a whole-pool GEMM of batch 32 and the gate loop after
/// it cost two synchronizations of the pool, which took about a third of
/// the LSTM benchmark's step on 2 threads. `cost`: one row's work over the
/// whole sequence. (A batch smaller than the pool leaves threads idle.)
template <class F>
void batch_split(int64_t batch, int64_t cost, F f) {
  parallel_for_checked(batch, cost, f);
}

/// One row's work per step for batch_split: its share of the recurrent GEMM
/// (hidden x gates multiply-adds) plus the gate loop.
inline int64_t step_cost(int64_t hidden, int64_t gates) { return hidden * gates + 8 * gates; }

// --- lstm -------------------------------------------------------------------------

/// One row's LSTM gates for step t: the blocks gi..go hold x_t w_x and get
/// the activations; rr = h_{t-1} w_h, cp = c_{t-1}; writes c_t to cc and
/// h_t to h and hn.
template <class T>
[[gnu::always_inline]] inline void lstm_gate_row(int64_t hd, const T* rr, const T* bias, const T* cp, T* gi, T* cc,
                                                 T* h, T* hn) {
  T *gf = gi + hd, *gg = gf + hd, *go = gg + hd;
#pragma omp simd
  for (int64_t j = 0; j < hd; ++j) {
    T i = sigm(gi[j] + rr[j] + bias[j]), f = sigm(gf[j] + rr[hd + j] + bias[hd + j]);
    T g = tanh_(gg[j] + rr[2 * hd + j] + bias[2 * hd + j]);
    T o = sigm(go[j] + rr[3 * hd + j] + bias[3 * hd + j]);
    T cv = i * g + f * cp[j];
    gi[j] = i;
    gf[j] = f;
    gg[j] = g;
    go[j] = o;
    cc[j] = cv;
    h[j] = hn[j] = o * tanh_(cv);
  }
}

/// One row's LSTM gate gradients for step t (see k_lstm_grad): dy's row
/// (h alone, or the whole workspace row when Full), the row's activations
/// and c_{t-1}; dh and dc carry the recurrent gradients in and out; the
/// gate pre-activation gradients go to d and dc_g.
template <class T, bool Full>
[[gnu::always_inline]] inline void lstm_grad_row(int64_t hd, const T* dyr, const T* row, const T* cp, T* dh, T* dc,
                                                 T* d, T* dc_g) {
  const T *cc = row + hd, *gi = row + 2 * hd, *gf = gi + hd, *gg = gf + hd, *go = gg + hd;
#pragma omp simd
  for (int64_t j = 0; j < hd; ++j) {
    T dcv = dc[j], di = 0, df = 0, dgv = 0, dov = 0;
    if constexpr (Full) {
      dcv += dyr[hd + j];
      di = dyr[2 * hd + j];
      df = dyr[3 * hd + j];
      dgv = dyr[4 * hd + j];
      dov = dyr[5 * hd + j];
    }
    const auto u =
        ops::lstm_unit_backward(gi[j], gf[j], gg[j], go[j], tanh_(cc[j]), cp[j], dyr[j] + dh[j], dcv, di, df, dgv, dov);
    d[j] = dc_g[j] = u.i;
    d[hd + j] = dc_g[hd + j] = u.f;
    d[2 * hd + j] = dc_g[2 * hd + j] = u.g;
    d[3 * hd + j] = dc_g[3 * hd + j] = u.o;
    dc[j] = u.c_prev;
  }
}

/// The f32 rows compiled a second time for AVX-512 (the build targets
/// AVX2), taken at run time where the CPU has it: twice the lanes for the
/// exp and tanh in the gates.
__attribute__((target("arch=x86-64-v4"))) void lstm_gate_row_v4(int64_t hd, const float* rr, const float* bias,
                                                                 const float* cp, float* gi, float* cc, float* h,
                                                                 float* hn) {
  lstm_gate_row(hd, rr, bias, cp, gi, cc, h, hn);
}
template <bool Full>
__attribute__((target("arch=x86-64-v4"))) void lstm_grad_row_v4(int64_t hd, const float* dyr, const float* row,
                                                                 const float* cp, float* dh, float* dc, float* d,
                                                                 float* dc_g) {
  lstm_grad_row<float, Full>(hd, dyr, row, cp, dh, dc, d, dc_g);
}

bool has_avx512() {
  static const bool yes = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                          __builtin_cpu_supports("avx512cd") && __builtin_cpu_supports("avx512dq") &&
                          __builtin_cpu_supports("avx512vl");
  return yes;
}

template <class T>
void gate_row(int64_t hd, const T* rr, const T* bias, const T* cp, T* gi, T* cc, T* h, T* hn) {
  if constexpr (std::is_same_v<T, float>)
    if (has_avx512()) return lstm_gate_row_v4(hd, rr, bias, cp, gi, cc, h, hn);
  lstm_gate_row(hd, rr, bias, cp, gi, cc, h, hn);
}

template <class T, bool Full>
void grad_row(int64_t hd, const T* dyr, const T* row, const T* cp, T* dh, T* dc, T* d, T* dc_g) {
  if constexpr (std::is_same_v<T, float>)
    if (has_avx512()) return lstm_grad_row_v4<Full>(hd, dyr, row, cp, dh, dc, d, dc_g);
  lstm_grad_row<T, Full>(hd, dyr, row, cp, dh, dc, d, dc_g);
}

// lstm(x, w_x, w_h, b) -> ws [B, T, 6H]: h | c | i f g o
void k_lstm(const kernel_call& c) {
  const int64_t bs = c.out.dim(0), steps = c.out.dim(1), hd = c.in[2].dim(0), in = c.in[0].dim(2);
  const int64_t w = 6 * hd, g4 = 4 * hd;
  if (c.out.numel() == 0) return;
  dispatch_float(c, c.out.type(), [&](auto z) {
    using T = decltype(z);
    const T *x = c.in[0].data<T>(), *wx = c.in[1].data<T>(), *wh = c.in[2].data<T>(), *bias = c.in[3].data<T>();
    T* ws = c.out.data<T>();
    const std::vector<T> zeros(static_cast<size_t>(g4), T(0)); // c_{-1} and h_{-1} w_h
    // The gate blocks get x_t w_x here; per step, h_{t-1} (kept contiguous
    // in hp) times w_h goes to rec, and the gate loop adds both and the bias.
    gemm(c, false, false, bs * steps, g4, in, x, in, wx, g4, T(0), ws + 2 * hd, w);
    batch_split(bs, steps * step_cost(hd, g4), [&](int64_t b0, int64_t b1) {
      const int64_t nb = b1 - b0;
      std::vector<T> hp(static_cast<size_t>(nb * hd)), rec(static_cast<size_t>(nb * g4));
      for (int64_t t = 0; t < steps; ++t) {
        if (t > 0) gemm(c, false, false, nb, g4, hd, hp.data(), hd, wh, g4, T(0), rec.data(), g4);
        for (int64_t b = b0; b < b1; ++b) {
          T* row = ws + (b * steps + t) * w;
          const T* cp = t > 0 ? row - w + hd : zeros.data();
          const T* rr = t > 0 ? rec.data() + (b - b0) * g4 : zeros.data();
          gate_row(hd, rr, bias, cp, row + 2 * hd, row + hd, row, hp.data() + (b - b0) * hd);
        }
      }
    });
  });
}

// lstm_grad(dy, ws, w_h) -> dG [B, T, 4H]
void k_lstm_grad(const kernel_call& c) {
  const int64_t bs = c.out.dim(0), steps = c.out.dim(1), hd = c.in[2].dim(0);
  const int64_t w = 6 * hd, g4 = 4 * hd, dw = c.in[0].dim(2);
  const bool full = dw == w; // dy covers the whole workspace, not h alone
  if (c.out.numel() == 0) return;
  dispatch_float(c, c.out.type(), [&](auto z) {
    using T = decltype(z);
    const T *dy = c.in[0].data<T>(), *ws = c.in[1].data<T>(), *wh = c.in[2].data<T>();
    const std::vector<T> wht = transposed(wh, hd, g4);
    T* dgate = c.out.data<T>();
    const std::vector<T> zeros(static_cast<size_t>(hd), T(0));
    batch_split(bs, steps * step_cost(hd, g4), [&](int64_t b0, int64_t b1) {
      const int64_t nb = b1 - b0;
      std::vector<T> dh_rec(static_cast<size_t>(nb * hd), T(0)), dc_rec(static_cast<size_t>(nb * hd), T(0));
      std::vector<T> dg_t(static_cast<size_t>(nb * g4)); // this step's dG, contiguous for the GEMM
      // Full: dy covers the whole workspace (c and the gate activations get
      // gradients too), else h alone.
      auto step = [&](int64_t t, auto full_tag) {
        constexpr bool full_dy = decltype(full_tag)::value;
        for (int64_t b = b0; b < b1; ++b) {
          const int64_t r = b * steps + t;
          const T* row = ws + r * w;
          grad_row<T, full_dy>(hd, dy + r * dw, row, t > 0 ? row - w + hd : zeros.data(),
                               dh_rec.data() + (b - b0) * hd, dc_rec.data() + (b - b0) * hd, dgate + r * g4,
                               dg_t.data() + (b - b0) * g4);
        }
      };
      for (int64_t t = steps; t-- > 0;) {
        if (full)
          step(t, std::true_type{});
        else
          step(t, std::false_type{});
        if (t > 0) gemm(c, false, false, nb, hd, g4, dg_t.data(), g4, wht.data(), hd, T(0), dh_rec.data(), hd);
      }
    });
  });
}

// --- gru --------------------------------------------------------------------------

// gru(x, w_x, w_h, b_x, b_h) -> ws [B, T, 5H]: h | r z n | hn
void k_gru(const kernel_call& c) {
  const int64_t bs = c.out.dim(0), steps = c.out.dim(1), hd = c.in[2].dim(0), in = c.in[0].dim(2);
  const int64_t w = 5 * hd, g3 = 3 * hd;
  if (c.out.numel() == 0) return;
  dispatch_float(c, c.out.type(), [&](auto z) {
    using T = decltype(z);
    const T *x = c.in[0].data<T>(), *wx = c.in[1].data<T>(), *wh = c.in[2].data<T>();
    const T *bx = c.in[3].data<T>(), *bh = c.in[4].data<T>();
    T* ws = c.out.data<T>();
    const std::vector<T> zeros(static_cast<size_t>(g3), T(0)); // h_{-1} and h_{-1} w_h
    // The r z n blocks get x_t w_x here; per step, h_{t-1} (kept contiguous
    // in hc) times w_h goes to q, and the gate loop adds both biases.
    gemm(c, false, false, bs * steps, g3, in, x, in, wx, g3, T(0), ws + hd, w);
    batch_split(bs, steps * step_cost(hd, g3), [&](int64_t b0, int64_t b1) {
      const int64_t nb = b1 - b0;
      std::vector<T> q(static_cast<size_t>(nb * g3)), hc(static_cast<size_t>(nb * hd));
      for (int64_t t = 0; t < steps; ++t) {
        if (t > 0) gemm(c, false, false, nb, g3, hd, hc.data(), hd, wh, g3, T(0), q.data(), g3);
        for (int64_t b = b0; b < b1; ++b) {
          T* row = ws + (b * steps + t) * w;
          const T* hp = t > 0 ? row - w : zeros.data();
          const T* qr = t > 0 ? q.data() + (b - b0) * g3 : zeros.data();
          T *h = row, *gr = row + hd, *gz = gr + hd, *gn = gz + hd, *hn = gn + hd;
          T* hnext = hc.data() + (b - b0) * hd;
#pragma omp simd
          for (int64_t j = 0; j < hd; ++j) {
            T r = sigm(gr[j] + bx[j] + (qr[j] + bh[j]));
            T zz = sigm(gz[j] + bx[hd + j] + (qr[hd + j] + bh[hd + j]));
            T m = qr[2 * hd + j] + bh[2 * hd + j];
            T n = tanh_(gn[j] + bx[2 * hd + j] + r * m);
            gr[j] = r;
            gz[j] = zz;
            gn[j] = n;
            hn[j] = m;
            h[j] = hnext[j] = (T(1) - zz) * n + zz * hp[j];
          }
        }
      }
    });
  });
}

// gru_grad(dy, ws, w_h) -> dG [B, T, 6H]: dGx (r z n) | dGh (r z hn)
void k_gru_grad(const kernel_call& c) {
  const int64_t bs = c.out.dim(0), steps = c.out.dim(1), hd = c.in[2].dim(0);
  const int64_t w = 5 * hd, g3 = 3 * hd, g6 = 6 * hd, dw = c.in[0].dim(2);
  const bool full = dw == w;
  if (c.out.numel() == 0) return;
  dispatch_float(c, c.out.type(), [&](auto z) {
    using T = decltype(z);
    const T *dy = c.in[0].data<T>(), *ws = c.in[1].data<T>(), *wh = c.in[2].data<T>();
    const std::vector<T> wht = transposed(wh, hd, g3);
    T* dgate = c.out.data<T>();
    const std::vector<T> zeros(static_cast<size_t>(hd), T(0));
    batch_split(bs, steps * step_cost(hd, g3), [&](int64_t b0, int64_t b1) {
      const int64_t nb = b1 - b0;
      std::vector<T> dh_rec(static_cast<size_t>(nb * hd), T(0));
      std::vector<T> dgh_t(static_cast<size_t>(nb * g3)); // this step's dGh, contiguous for the GEMM
      auto step = [&](int64_t t, auto full_tag) {
        constexpr bool full_dy = decltype(full_tag)::value;
        for (int64_t b = b0; b < b1; ++b) {
          const int64_t ri = b * steps + t;
          const T* row = ws + ri * w;
          const T *gr = row + hd, *gz = gr + hd, *gn = gz + hd, *hn = gn + hd;
          const T* hp = t > 0 ? row - w : zeros.data();
          const T* dyr = dy + ri * dw;
          T* dr = dh_rec.data() + (b - b0) * hd;
          T* d = dgate + ri * g6;
          T* dc = dgh_t.data() + (b - b0) * g3;
#pragma omp simd
          for (int64_t j = 0; j < hd; ++j) {
            T r = gr[j], zz = gz[j], n = gn[j], m = hn[j], h_prev = hp[j];
            T dh = dyr[j] + dr[j];
            T drv = 0, dzv = 0, dnv = 0, dm = 0;
            if constexpr (full_dy) {
              drv = dyr[hd + j];
              dzv = dyr[2 * hd + j];
              dnv = dyr[3 * hd + j];
              dm = dyr[4 * hd + j];
            }
            const auto gg = ops::gru_unit_backward(r, zz, n, m, h_prev, dh, drv, dzv, dnv, dm);
            d[j] = gg.r;
            d[hd + j] = gg.z;
            d[2 * hd + j] = gg.n;
            d[3 * hd + j] = dc[j] = gg.r;
            d[4 * hd + j] = dc[hd + j] = gg.z;
            d[5 * hd + j] = dc[2 * hd + j] = gg.hn;
            dr[j] = dh * zz; // the direct path; the GEMM below adds dGh w_h^T
          }
        }
      };
      for (int64_t t = steps; t-- > 0;) {
        if (full)
          step(t, std::true_type{});
        else
          step(t, std::false_type{});
        if (t > 0)
          gemm(c, false, false, nb, hd, g3, dgh_t.data(), g3, wht.data(), hd, T(1), dh_rec.data(), hd);
      }
    });
  });
}

// --- shared gradients ---------------------------------------------------------------

// rnn_input_grad(dG, w_x, x_like) -> dx [B, T, I] = dG[.., :G] w_x^T
void k_rnn_input_grad(const kernel_call& c) {
  const int64_t m = c.out.dim(0) * c.out.dim(1), in = c.out.dim(2), g = c.in[1].dim(1), ld = c.in[0].dim(2);
  dispatch_float(c, c.out.type(), [&](auto z) {
    using T = decltype(z);
    gemm(c, false, true, m, in, g, c.in[0].data<T>(), ld, c.in[1].data<T>(), g, T(0), c.out.data<T>(), in);
  });
}

// rnn_weight_grad(a, dG, w_like) -> dw [K, G]
void k_rnn_weight_grad(const kernel_call& c) {
  const tensor &a = c.in[0], &dg = c.in[1];
  const int64_t bs = dg.dim(0), steps = dg.dim(1), ld = dg.dim(2), k = c.out.dim(0), g = c.out.dim(1);
  const int64_t aw = a.dim(2);
  const bool recurrent = c.n.attrs.flag;
  dispatch_float(c, c.out.type(), [&](auto z) {
    using T = decltype(z);
    T* out = c.out.data<T>();
    if (!recurrent) {
      gemm(c, true, false, k, g, bs * steps, a.data<T>(), aw, dg.data<T>(), ld, T(0), out, g);
      return;
    }
    // h_{t-1} for every (b, t) in one contiguous [B T, K] block (zeros at
    // t = 0), so that the sum over batch and steps is one GEMM.
    auto hp = std::make_unique_for_overwrite<T[]>(static_cast<size_t>(bs * steps * k));
    const T* ws = a.data<T>();
    parallel_for(bs, steps * k, [&](int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; ++b) {
        T* dst = hp.get() + b * steps * k;
        std::fill(dst, dst + k, T(0));
        for (int64_t t = 1; t < steps; ++t) {
          const T* src = ws + (b * steps + t - 1) * aw;
          std::copy(src, src + k, dst + t * k);
        }
      }
    });
    gemm(c, true, false, k, g, bs * steps, hp.get(), k, dg.data<T>() + (ld - g), ld, T(0), out, g);
  });
}

// rnn_bias_grad(dG, b_like) -> db [G]
void k_rnn_bias_grad(const kernel_call& c) {
  const tensor& dg = c.in[0];
  const int64_t m = dg.dim(0) * dg.dim(1), ld = dg.dim(2), g = c.out.dim(0);
  const int64_t off = c.n.attrs.flag ? ld - g : 0;
  dispatch_float(c, c.out.type(), [&](auto z) {
    using T = decltype(z);
    const T* src = dg.data<T>() + off;
    T* out = c.out.data<T>();
    // Column blocks in parallel; each sums its columns over every row.
    constexpr int64_t block = 64;
    parallel_for((g + block - 1) / block, m * block, [&](int64_t k0, int64_t k1) {
      int64_t j0 = k0 * block, j1 = std::min(g, k1 * block);
      std::fill(out + j0, out + j1, T(0));
      for (int64_t i = 0; i < m; ++i) {
        const T* r = src + i * ld;
#pragma omp simd
        for (int64_t j = j0; j < j1; ++j) out[j] += r[j];
      }
    });
  });
}

} // namespace

void register_rnn(kernel_registry& r) {
  auto cpu = device::kind_t::cpu;
  r.add(op_kind::lstm, cpu, k_lstm);
  r.add(op_kind::gru, cpu, k_gru);
  r.add(op_kind::lstm_grad, cpu, k_lstm_grad);
  r.add(op_kind::gru_grad, cpu, k_gru_grad);
  r.add(op_kind::rnn_input_grad, cpu, k_rnn_input_grad);
  r.add(op_kind::rnn_weight_grad, cpu, k_rnn_weight_grad);
  r.add(op_kind::rnn_bias_grad, cpu, k_rnn_bias_grad);
}

} // namespace luoshu::cpu
