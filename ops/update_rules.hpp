#pragma once
// The optimizer update formulas, written once: the CPU and CUDA update
// kernels (dense and sparse) and the parameter-server shards all call these.
// update_coeffs turns the hyper-parameters of one step into the per-element
// constants; update_element applies them to one element (host and device).

#include <cmath>
#include <cstdint>

#if defined(__CUDACC__)
#define LUOSHU_UPDATE_HD __host__ __device__
#else
#define LUOSHU_UPDATE_HD
#endif

namespace luoshu::ops {

enum class update_rule : uint8_t { sgd, momentum, adagrad, adam };

struct update_hyper {
  double lr = 0.01;
  double momentum = 0.9;  ///< momentum; beta1 for adam
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0;
  bool nesterov = false;  ///< momentum only
  bool decoupled = false; ///< adam only: AdamW
  int64_t step = 1;       ///< adam: the step number after incrementing (>= 1)
};

/// One step's constants in the variable's type.
template <class T>
struct update_coeffs {
  update_rule rule = update_rule::sgd;
  bool nesterov = false;
  T lr{}, wd{}, mu{}, eps{};
  T one_b1{}, b2{}, one_b2{}, c1{}, c2{}, l2{}, shrink{};
};

LUOSHU_UPDATE_HD inline float update_sqrt(float x) { return sqrtf(x); }
LUOSHU_UPDATE_HD inline double update_sqrt(double x) { return sqrt(x); }

template <class T>
LUOSHU_UPDATE_HD update_coeffs<T> make_coeffs(update_rule rule, const update_hyper& h) {
  update_coeffs<T> k;
  k.rule = rule;
  k.nesterov = h.nesterov;
  k.lr = static_cast<T>(h.lr);
  k.wd = static_cast<T>(h.weight_decay);
  k.mu = static_cast<T>(h.momentum);
  k.eps = static_cast<T>(h.eps);
  if (rule == update_rule::adam) {
    // 1 - beta in double: rounding beta to f32 first would skew v by ~1e-5.
    k.one_b1 = static_cast<T>(1.0 - h.momentum);
    k.b2 = static_cast<T>(h.beta2);
    k.one_b2 = static_cast<T>(1.0 - h.beta2);
    const double t = static_cast<double>(h.step);
    k.c1 = static_cast<T>(1.0 / (1.0 - pow(h.momentum, t)));
    k.c2 = static_cast<T>(1.0 / (1.0 - pow(h.beta2, t)));
    k.l2 = h.decoupled ? T(0) : k.wd;
    k.shrink = h.decoupled ? T(1) - k.lr * k.wd : T(1);
  }
  return k;
}

/// Updates one element w (and its slots s0: velocity / accumulator / adam m;
/// s1: adam v) from gradient g.
template <class T>
LUOSHU_UPDATE_HD inline void update_element(const update_coeffs<T>& k, T& w, T g, T* s0, T* s1) {
  switch (k.rule) {
    case update_rule::sgd: w -= k.lr * (g + k.wd * w); return;
    case update_rule::momentum:
      if (k.nesterov) {
        T gi = g + k.wd * w;
        *s0 = k.mu * *s0 + gi;
        w -= k.lr * (gi + k.mu * *s0);
      } else {
        *s0 = k.mu * *s0 + g + k.wd * w;
        w -= k.lr * *s0;
      }
      return;
    case update_rule::adagrad: {
      T gi = g + k.wd * w;
      *s0 += gi * gi;
      w -= k.lr * gi / (update_sqrt(*s0) + k.eps);
      return;
    }
    case update_rule::adam: {
      T gi = g + k.l2 * w;
      *s0 = k.mu * *s0 + k.one_b1 * gi;
      *s1 = k.b2 * *s1 + k.one_b2 * gi * gi;
      w = w * k.shrink - k.lr * (*s0 * k.c1) / (update_sqrt(*s1 * k.c2) + k.eps);
      return;
    }
  }
}

/// FTRL-proximal (McMahan et al.) for one element: z and n are its two
/// slots; the weight follows from them. beta, l1, l2 as usual.
struct ftrl_hyper {
  double lr = 0.05, beta = 1, l1 = 0, l2 = 0;
};
template <class T>
LUOSHU_UPDATE_HD inline void ftrl_element(const ftrl_hyper& h, T& w, T g, T& z, T& n) {
  const double nn = static_cast<double>(n) + static_cast<double>(g) * g;
  const double sigma = (update_sqrt(nn) - update_sqrt(static_cast<double>(n))) / h.lr;
  const double zz = static_cast<double>(z) + g - sigma * static_cast<double>(w);
  z = static_cast<T>(zz);
  n = static_cast<T>(nn);
  const double az = zz < 0 ? -zz : zz;
  w = az <= h.l1 ? T(0)
                 : static_cast<T>(-(zz - (zz < 0 ? -h.l1 : h.l1)) / ((h.beta + update_sqrt(nn)) / h.lr + h.l2));
}

#ifndef __CUDACC__ // host loops (CPU kernels, PS shards); CUDA kernels call update_element
/// Updates n elements of w in place from gradient g and the rule's slots,
/// with coefficients made once (make_coeffs) for many calls.
template <class T>
void apply_update(const update_coeffs<T>& k, T* w, const T* g, T* s0, T* s1, int64_t n) {
  // One loop per slot layout, so each vectorizes.
  switch (k.rule) {
    case update_rule::sgd:
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) update_element<T>(k, w[i], g[i], nullptr, nullptr);
      return;
    case update_rule::momentum:
    case update_rule::adagrad:
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) update_element<T>(k, w[i], g[i], s0 + i, nullptr);
      return;
    case update_rule::adam:
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) update_element<T>(k, w[i], g[i], s0 + i, s1 + i);
      return;
  }
}

/// Updates n elements of w in place from gradient g and the rule's slots.
template <class T>
void apply_update(update_rule rule, const update_hyper& h, T* w, const T* g, T* s0, T* s1, int64_t n) {
  apply_update<T>(make_coeffs<T>(rule, h), w, g, s0, s1, n);
}
#endif

} // namespace luoshu::ops
