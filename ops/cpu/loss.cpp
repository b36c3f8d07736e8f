// CPU kernels: losses and metrics.

#include <cmath>

#include "ops/cpu/cpu_util.hpp"
#include "ops/cpu/register.hpp"

namespace luoshu::cpu {

namespace {

void check_labels(const kernel_call& c, const tensor& labels, int64_t classes) {
  const int64_t n = labels.numel();
  for (int64_t i = 0; i < n; ++i) {
    int64_t v = index_at(labels, i);
    if (v < 0 || v >= classes)
      throw luoshu_error("label " + std::to_string(v) + " at row " + std::to_string(i) +
                         " is out of range [0, " + std::to_string(classes) + ") in node '" + c.n.name + "'");
  }
}

void k_sce(const kernel_call& c) {
  const tensor &logits = c.in[0], &labels = c.in[1];
  int64_t n = logits.dim(0), k = logits.dim(1);
  check_labels(c, labels, k);
  dispatch_float(c, logits.type(), [&](auto z) {
    using T = decltype(z);
    const T* x = logits.data<T>();
    T* out = c.out.data<T>();
    parallel_for(n, k * 4, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        const T* row = x + i * k;
        T m = row[0];
        for (int64_t j = 1; j < k; ++j) m = std::max(m, row[j]);
        T s = 0;
        for (int64_t j = 0; j < k; ++j) s += std::exp(row[j] - m);
        out[i] = m + std::log(s) - row[index_at(labels, i)];
      }
    });
  });
}

void k_sce_grad(const kernel_call& c) {
  const tensor &logits = c.in[0], &labels = c.in[1], &dy = c.in[2];
  int64_t n = logits.dim(0), k = logits.dim(1);
  check_labels(c, labels, k);
  dispatch_float(c, logits.type(), [&](auto z) {
    using T = decltype(z);
    const T* x = logits.data<T>();
    const T* g = dy.data<T>();
    T* out = c.out.data<T>();
    parallel_for(n, k * 4, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        const T* row = x + i * k;
        T* o = out + i * k;
        T m = row[0];
        for (int64_t j = 1; j < k; ++j) m = std::max(m, row[j]);
        T s = 0;
        for (int64_t j = 0; j < k; ++j) {
          o[j] = std::exp(row[j] - m);
          s += o[j];
        }
        T scale = g[i] / s;
        for (int64_t j = 0; j < k; ++j) o[j] *= scale;
        o[index_at(labels, i)] -= g[i];
      }
    });
  });
}

void k_bce(const kernel_call& c) {
  const tensor &x = c.in[0], &t = c.in[1];
  dispatch_float(c, x.type(), [&](auto z) {
    using T = decltype(z);
    const T* xv = x.data<T>();
    const T* tv = t.data<T>();
    T* out = c.out.data<T>();
    parallel_for(x.numel(), 8, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        T v = xv[i];
        out[i] = (v > 0 ? v : T(0)) - v * tv[i] + std::log1p(std::exp(-std::abs(v)));
      }
    });
  });
}

void k_accuracy(const kernel_call& c) {
  const tensor &logits = c.in[0], &labels = c.in[1];
  int64_t n = logits.dim(0), k = logits.dim(1);
  int64_t hits = 0;
  dispatch_float(c, logits.type(), [&](auto z) {
    using T = decltype(z);
    const T* x = logits.data<T>();
    for (int64_t i = 0; i < n; ++i) {
      const T* row = x + i * k;
      int64_t best = 0;
      for (int64_t j = 1; j < k; ++j)
        if (row[j] > row[best]) best = j;
      hits += best == index_at(labels, i);
    }
  });
  c.out.data<float>()[0] = n ? static_cast<float>(hits) / static_cast<float>(n) : 0.0f;
}

} // namespace

void register_loss(kernel_registry& r) {
  auto cpu = device::kind_t::cpu;
  r.add(op_kind::softmax_cross_entropy, cpu, k_sce);
  r.add(op_kind::softmax_cross_entropy_grad, cpu, k_sce_grad);
  r.add(op_kind::bce_with_logits, cpu, k_bce);
  r.add(op_kind::accuracy, cpu, k_accuracy);
}

} // namespace luoshu::cpu
