#pragma once
// Scaled dot-product attention probabilities, shared by the CPU backend
// (ops/cpu/attention.cpp) and the CUDA backend (ops/cuda/attention.cu).
//
//   attention_probs(q [B, h, Tq, d], k [B, h, Tk, d] [, mask])
//     = softmax(q k^T * scale + mask) over the last axis: [B, h, Tq, Tk]
// attrs.alpha = scale (> 0; the builder's default is 1 / sqrt(d)),
// attrs.flag = causal (query i attends to keys j <= i, top-left aligned as
// in PyTorch's is_causal). The optional mask broadcasts (right-aligned) to
// [B, h, Tq, Tk]: u8 is a boolean mask (nonzero = may attend), a float mask
// of q's dtype is added to the scaled scores (-inf allowed). A query row with
// no key left to attend to gets all-zero probabilities (not NaN).
//
// The op outputs the probabilities P, so that attention(q, k, v) =
// batch_matmul(P, v) and the backward pass reads P instead of recomputing it:
//   dS = softmax_grad(dP, P), dq = scale dS k, dk = scale dS^T q,
//   d(mask) = dS summed to the mask's shape (float masks only).

#include <cmath>
#include <cstdint>

#include "graph/shape.hpp"
#include "ops/op.hpp"

#if defined(__CUDACC__)
#define LUOSHU_ATTN_HD __host__ __device__
#else
#define LUOSHU_ATTN_HD
#endif

namespace luoshu::ops {

/// Sizes and options of one attention_probs call. Plain value: device
/// lambdas capture it.
struct attn_geom {
  int64_t b = 0, h = 0, tq = 0, tk = 0, d = 0;
  double scale = 1;
  bool causal = false;
  int mask_kind = 0;           ///< 0: none, 1: boolean (u8), 2: additive (float)
  int64_t ms[4] = {0, 0, 0, 0}; ///< mask element strides over (b, h, i, j); 0 where broadcast
};

LUOSHU_ATTN_HD inline float attn_exp(float x) { return expf(x); }
LUOSHU_ATTN_HD inline double attn_exp(double x) { return ::exp(x); }

/// Turns row r (over B * h * Tq) of raw dot products q_i . k_j in s[0, Tk)
/// into probabilities in place: scale, mask, causal cut, softmax.
template <class T, class M>
LUOSHU_ATTN_HD inline void attention_softmax_row(const attn_geom& g, int64_t r, T* s, const M* mask) {
  const int64_t i = r % g.tq, bh = r / g.tq;
  const int64_t moff = (bh / g.h) * g.ms[0] + (bh % g.h) * g.ms[1] + i * g.ms[2], mj = g.ms[3];
  const int64_t end = g.causal ? (i + 1 < g.tk ? i + 1 : g.tk) : g.tk; // keys past `end` are cut
  const T scale = static_cast<T>(g.scale);
  bool any = false;
  T m = 0;
  for (int64_t j = 0; j < end; ++j) {
    if (g.mask_kind == 1 && mask[moff + j * mj] == M(0)) continue;
    T v = s[j] * scale;
    if (g.mask_kind == 2) v += static_cast<T>(mask[moff + j * mj]);
    s[j] = v;
    if (!any || v > m) m = v;
    any = true;
  }
  // No key left, or every score -inf (an additive mask): all zeros.
  if (!any || (m < 0 && !(m - m == T(0)))) {
    for (int64_t j = 0; j < g.tk; ++j) s[j] = T(0);
    return;
  }
  T sum = 0;
  for (int64_t j = 0; j < g.tk; ++j) {
    bool keep = j < end && !(g.mask_kind == 1 && mask[moff + j * mj] == M(0));
    T e = keep ? attn_exp(s[j] - m) : T(0);
    s[j] = e;
    sum += e;
  }
  T inv = T(1) / sum;
  for (int64_t j = 0; j < g.tk; ++j) s[j] *= inv;
}

/// The geometry of a call with known shapes (checked by shape inference).
/// mask: null when the op has no mask input.
inline attn_geom attention_geom(const shape& q, const shape& k, const shape* mask, dtype mask_type,
                                const op_attrs& a) {
  attn_geom g;
  g.b = q[0];
  g.h = q[1];
  g.tq = q[2];
  g.d = q[3];
  g.tk = k[2];
  g.scale = a.alpha;
  g.causal = a.flag;
  if (!mask) return g;
  g.mask_kind = mask_type == dtype::u8 ? 1 : 2;
  // Right-aligned broadcast strides over (b, h, i, j).
  int64_t stride = 1;
  for (int d = mask->rank() - 1, o = 3; d >= 0; --d, --o) {
    g.ms[o] = (*mask)[d] == 1 ? 0 : stride;
    stride *= (*mask)[d];
  }
  return g;
}

} // namespace luoshu::ops
