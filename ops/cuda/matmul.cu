// CUDA kernels: matmul, batch_matmul, linear (cuBLAS through gemm(); see
// gpu.cuh). Same layouts as the CPU kernels: row-major, optional transposes.

#include "ops/cuda/gpu.cuh"

namespace luoshu::LUOSHU_GPU_NS {

namespace {

struct matmul_k {
  template <class T>
  static void run(const kernel_call& c) {
    const tensor &a = c.in[0], &b = c.in[1];
    const bool ta = c.n.attrs.trans_a, tb = c.n.attrs.trans_b;
    const bool batched = c.n.op == op_kind::batch_matmul;
    const int o = batched ? 1 : 0; // first matrix dim
    const int64_t batch = batched ? c.out.dim(0) : 1, m = c.out.dim(o), n = c.out.dim(o + 1);
    const int64_t k = ta ? a.dim(o) : a.dim(o + 1);
    gemm<T>(c, ta, tb, m, n, k, ptr<T>(a), ta ? m : k, ptr<T>(b), tb ? k : n, ptr<T>(c.out), n, T(0), batch, m * k,
            k * n, m * n);
  }
};

struct linear_k {
  template <class T>
  static void run(const kernel_call& c) {
    const tensor &x = c.in[0], &w = c.in[1], &bias = c.in[2];
    const int64_t k = w.dim(0), n = w.dim(1);
    const int64_t m = k == 0 ? 0 : x.numel() / k;
    T* out = ptr<T>(c.out);
    const T* bv = ptr<T>(bias);
    parallel_for(c, m * n, [=] LUOSHU_HD(int64_t i) { out[i] = bv[i % n]; });
    gemm<T>(c, false, false, m, n, k, ptr<T>(x), k, ptr<T>(w), n, out, n, T(1));
  }
};

void k_matmul(const kernel_call& c) { dispatch_float<matmul_k>(c, c.in[0].type()); }
void k_linear(const kernel_call& c) { dispatch_float<linear_k>(c, c.in[0].type()); }

} // namespace

void register_matmul(kernel_registry& r) {
  const auto cuda = device::kind_t::cuda;
  r.add(op_kind::matmul, cuda, k_matmul);
  r.add(op_kind::batch_matmul, cuda, k_matmul);
  r.add(op_kind::linear, cuda, k_linear);
}

} // namespace luoshu::LUOSHU_GPU_NS
