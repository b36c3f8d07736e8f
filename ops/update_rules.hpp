#pragma once
// The optimizer update formulas, written once: the dense and sparse update
// kernels and (later) the parameter-server shards all call these.

#include <cmath>
#include <cstdint>

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

/// Updates n elements of w in place from gradient g and the rule's slots
/// (s0: velocity / accumulator / adam m; s1: adam v).
template <class T>
void apply_update(update_rule rule, const update_hyper& h, T* w, const T* g, T* s0, T* s1, int64_t n) {
  const T lr = static_cast<T>(h.lr), wd = static_cast<T>(h.weight_decay);
  switch (rule) {
    case update_rule::sgd:
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) w[i] -= lr * (g[i] + wd * w[i]);
      return;
    case update_rule::momentum: {
      const T mu = static_cast<T>(h.momentum);
      if (h.nesterov) {
#pragma omp simd
        for (int64_t i = 0; i < n; ++i) {
          T gi = g[i] + wd * w[i];
          s0[i] = mu * s0[i] + gi;
          w[i] -= lr * (gi + mu * s0[i]);
        }
      } else {
#pragma omp simd
        for (int64_t i = 0; i < n; ++i) {
          s0[i] = mu * s0[i] + g[i] + wd * w[i];
          w[i] -= lr * s0[i];
        }
      }
      return;
    }
    case update_rule::adagrad: {
      const T eps = static_cast<T>(h.eps);
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) {
        T gi = g[i] + wd * w[i];
        s0[i] += gi * gi;
        w[i] -= lr * gi / (std::sqrt(s0[i]) + eps);
      }
      return;
    }
    case update_rule::adam: {
      const T b1 = static_cast<T>(h.momentum), b2 = static_cast<T>(h.beta2), eps = static_cast<T>(h.eps);
      // 1 - beta in double: rounding beta to f32 first would skew v by ~1e-5.
      const T one_b1 = static_cast<T>(1.0 - h.momentum), one_b2 = static_cast<T>(1.0 - h.beta2);
      const double t = static_cast<double>(h.step);
      const T c1 = static_cast<T>(1.0 / (1.0 - std::pow(h.momentum, t)));
      const T c2 = static_cast<T>(1.0 / (1.0 - std::pow(h.beta2, t)));
      const T l2 = h.decoupled ? T(0) : wd;
      const T shrink = h.decoupled ? T(1) - lr * wd : T(1);
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) {
        T gi = g[i] + l2 * w[i];
        s0[i] = b1 * s0[i] + one_b1 * gi;
        s1[i] = b2 * s1[i] + one_b2 * gi * gi;
        w[i] = w[i] * shrink - lr * (s0[i] * c1) / (std::sqrt(s1[i] * c2) + eps);
      }
      return;
    }
  }
}

} // namespace luoshu::ops
