// CPU kernels: matmul, batch_matmul, linear, all through gemm
// (ops/cpu/gemm.hpp).

#include "ops/cpu/cpu_util.hpp"
#include "ops/cpu/gemm.hpp"
#include "ops/cpu/register.hpp"

namespace luoshu::cpu {

namespace {

void k_matmul(const kernel_call& c) {
  const tensor &a = c.in[0], &b = c.in[1];
  bool ta = c.n.attrs.trans_a, tb = c.n.attrs.trans_b;
  int64_t m = c.out.dim(0), n = c.out.dim(1);
  int64_t k = ta ? a.dim(0) : a.dim(1);
  dispatch_float(c, a.type(), [&](auto z) {
    using T = decltype(z);
    gemm(c, ta, tb, m, n, k, a.data<T>(), b.data<T>(), T(0), c.out.data<T>());
  });
}

void k_batch_matmul(const kernel_call& c) {
  const tensor &a = c.in[0], &b = c.in[1];
  bool ta = c.n.attrs.trans_a, tb = c.n.attrs.trans_b;
  int64_t batch = c.out.dim(0), m = c.out.dim(1), n = c.out.dim(2);
  int64_t k = ta ? a.dim(1) : a.dim(2);
  dispatch_float(c, a.type(), [&](auto z) {
    using T = decltype(z);
    auto one = [&](int64_t i) {
      gemm(c, ta, tb, m, n, k, a.data<T>() + i * m * k, b.data<T>() + i * k * n, T(0), c.out.data<T>() + i * m * n);
    };
    // Many small products (attention heads): one per task on the pool, each
    // GEMM single-threaded inside it; large ones: each GEMM uses the pool.
    if (batch == 1 || m * n * k > 64 * 64 * 64) {
      for (int64_t i = 0; i < batch; ++i) one(i);
      return;
    }
    parallel_for_checked(batch, m * n * k, [&](int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; ++i) one(i);
    });
  });
}

void k_linear(const kernel_call& c) {
  const tensor &x = c.in[0], &w = c.in[1], &bias = c.in[2];
  int64_t k = w.dim(0), n = w.dim(1);
  int64_t m = k == 0 ? 0 : x.numel() / k;
  dispatch_float(c, x.type(), [&](auto z) {
    using T = decltype(z);
    T* out = c.out.data<T>();
    const T* bv = bias.data<T>();
    parallel_for(m, n, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) std::copy(bv, bv + n, out + i * n);
    });
    gemm(c, false, false, m, n, k, x.data<T>(), w.data<T>(), T(1), out);
  });
}

} // namespace

void register_matmul(kernel_registry& r) {
  auto cpu = device::kind_t::cpu;
  r.add(op_kind::matmul, cpu, k_matmul);
  r.add(op_kind::batch_matmul, cpu, k_batch_matmul);
  r.add(op_kind::linear, cpu, k_linear);
}

} // namespace luoshu::cpu
