#pragma once
// Per-unit RNN cell arithmetic shared by the CPU kernels (inlined into their
// vectorized loops) and the CUDA kernels (one thread per unit), so both
// backends compute the same formulas (see ops/rnn.cpp for the layouts).

#if defined(__CUDACC__)
#define LUOSHU_RNN_HD __host__ __device__
#else
#define LUOSHU_RNN_HD
#endif

namespace luoshu::ops {

/// The gradients of one LSTM unit's gate pre-activations, and of c_{t-1}.
template <class T>
struct lstm_unit_grads {
  T i, f, g, o, c_prev;
};

/// One LSTM unit's backward: from its gate activations i, f, g, o, tanh(c_t)
/// tc and c_{t-1}, the gradients dh and dc reaching h_t and c_t (from step
/// t + 1, plus any direct one), and those reaching the activations
/// directly (di, df, dg, d_o: zero unless the whole workspace has a
/// gradient). c_t = f c_{t-1} + i g, h_t = o tanh(c_t).
template <class T>
LUOSHU_RNN_HD inline lstm_unit_grads<T> lstm_unit_backward(T i, T f, T g, T o, T tc, T c_prev, T dh, T dc, T di,
                                                           T df, T dg, T d_o) {
  dc += dh * o * (T(1) - tc * tc);
  di += dc * g;
  df += dc * c_prev;
  dg += dc * i;
  d_o += dh * tc;
  return {di * i * (T(1) - i), df * f * (T(1) - f), dg * (T(1) - g * g), d_o * o * (T(1) - o), dc * f};
}

/// The gradients of one GRU unit's pre-activations.
template <class T>
struct gru_unit_grads {
  T r, z, n, hn; ///< of r's and z's pre-activations, of n's, and of hn = h_{t-1} w_hn + b_hn
};

/// One GRU unit's backward: from its gate activations r, z, n, hn and
/// h_{t-1}, the gradient dh reaching h_t, and the gradients that reach the
/// activations directly (dr, dz, dn, dhn: zero unless the whole workspace
/// has a gradient). h_t = (1 - z) n + z h_{t-1}, n = tanh(.. + r hn).
template <class T>
LUOSHU_RNN_HD inline gru_unit_grads<T> gru_unit_backward(T r, T z, T n, T hn, T h_prev, T dh, T dr, T dz, T dn,
                                                         T dhn) {
  dn += dh * (T(1) - z);
  dz += dh * (h_prev - n);
  const T dn_pre = dn * (T(1) - n * n);
  dr += dn_pre * hn;
  dhn += dn_pre * r;
  return {dr * r * (T(1) - r), dz * z * (T(1) - z), dn_pre, dhn};
}

} // namespace luoshu::ops
