// CPU kernel: attention_probs (ops/attention.hpp). Each (batch, head) pair
// is one task on the pool: its raw scores q k^T come from oneDNN's sgemm in
// f32 (a plain loop in f64), then every query row is scaled, masked and
// softmaxed in place in the output.

#include "ops/attention.hpp"
#include "ops/cpu/cpu_util.hpp"
#include "ops/cpu/gemm.hpp"
#include "ops/cpu/register.hpp"

namespace luoshu::cpu {

namespace {

/// s[tq, tk] = q[tq, d] k[tk, d]^T for one (batch, head).
void scores(const kernel_call& c, const float* q, const float* k, int64_t tq, int64_t tk, int64_t d, float* s) {
  gemm(c, false, true, tq, tk, d, q, d, k, d, 0.0f, s, tk);
}

void scores(const kernel_call&, const double* q, const double* k, int64_t tq, int64_t tk, int64_t d, double* s) {
  for (int64_t i = 0; i < tq; ++i)
    for (int64_t j = 0; j < tk; ++j) {
      double acc = 0;
      for (int64_t e = 0; e < d; ++e) acc += q[i * d + e] * k[j * d + e];
      s[i * tk + j] = acc;
    }
}

template <class T, class M>
void run(const kernel_call& c, const ops::attn_geom& g, const M* mask) {
  const T *q = c.in[0].data<T>(), *k = c.in[1].data<T>();
  T* p = c.out.data<T>();
  const int64_t tq = g.tq, tk = g.tk, d = g.d;
  if (tk == 0) return;
  if (d == 0) { // every raw score is 0
    std::fill(p, p + c.out.numel(), T(0));
  }
  parallel_for_checked(g.b * g.h, tq * tk * (d + 8), [&](int64_t lo, int64_t hi) {
    for (int64_t bh = lo; bh < hi; ++bh) {
      T* s = p + bh * tq * tk;
      if (d > 0) scores(c, q + bh * tq * d, k + bh * tk * d, tq, tk, d, s);
      for (int64_t i = 0; i < tq; ++i) ops::attention_softmax_row(g, bh * tq + i, s + i * tk, mask);
    }
  });
}

void k_attention_probs(const kernel_call& c) {
  const bool has_mask = c.in.size() == 3;
  ops::attn_geom g = ops::attention_geom(c.in[0].shape(), c.in[1].shape(), has_mask ? &c.in[2].shape() : nullptr,
                                         has_mask ? c.in[2].type() : dtype::u8, c.n.attrs);
  if (c.out.numel() == 0) return;
  dispatch_float(c, c.in[0].type(), [&](auto z) {
    using T = decltype(z);
    if (!has_mask) run<T, T>(c, g, static_cast<const T*>(nullptr));
    else if (g.mask_kind == 1) run<T, uint8_t>(c, g, c.in[2].data<uint8_t>());
    else run<T, T>(c, g, c.in[2].data<T>());
  });
}

} // namespace

void register_attention(kernel_registry& r) { r.add(op_kind::attention_probs, device::kind_t::cpu, k_attention_probs); }

} // namespace luoshu::cpu
