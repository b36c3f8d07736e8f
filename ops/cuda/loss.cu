// CUDA kernels: losses and metrics (see gpu.cuh for how kernels are
// written). Same formulas as ops/cpu/loss.cpp; a label outside [0, classes)
// is a device error and its row is skipped.

#include "ops/cuda/elementwise.cuh"

namespace luoshu::LUOSHU_GPU_NS {

namespace {

/// Row i's label, or -1 after reporting it when out of [0, k).
LUOSHU_HD inline int64_t checked_label(index_view labels, int64_t i, int64_t k, error_sink e) {
  int64_t y = labels[i];
  if (y >= 0 && y < k) return y;
  e.bad_label(y, k);
  return -1;
}

/// The fields the row kernels read: logits [n, k] and labels [n].
struct rows_of {
  int64_t n, k;
  index_view labels;
  error_sink e;
};
rows_of rows(const kernel_call& c) {
  return {c.in[0].dim(0), c.in[0].dim(1), indices(c, c.in[1]), errors(c)};
}

struct sce_k {
  template <class T>
  static void run(const kernel_call& c) {
    rows_of v = rows(c);
    const T* x = ptr<T>(c.in[0]);
    T* out = ptr<T>(c.out);
    parallel_for(c, v.n, [=] LUOSHU_HD(int64_t i) {
      int64_t y = checked_label(v.labels, i, v.k, v.e);
      if (y < 0) return;
      const T* row = x + i * v.k;
      T m;
      T s = exp_sum(row, v.k, int64_t{1}, m, static_cast<T*>(nullptr));
      out[i] = m + g_log(s) - row[y];
    });
  }
};

struct sce_grad_k {
  template <class T>
  static void run(const kernel_call& c) {
    rows_of v = rows(c);
    const T* x = ptr<T>(c.in[0]);
    const T* g = ptr<T>(c.in[2]);
    T* out = ptr<T>(c.out);
    parallel_for(c, v.n, [=] LUOSHU_HD(int64_t i) {
      int64_t y = checked_label(v.labels, i, v.k, v.e);
      if (y < 0) return;
      const T* row = x + i * v.k;
      T* o = out + i * v.k;
      T m;
      T s = exp_sum(row, v.k, int64_t{1}, m, o);
      T scale = g[i] / s;
      for (int64_t j = 0; j < v.k; ++j) o[j] *= scale;
      o[y] -= g[i];
    });
  }
};

/// max(x, 0) - x t + log1p(e^-|x|)
LUOSHU_SCALAR_OP(op_bce, (T x, T t), (x > 0 ? x : T(0)) - x * t + g_log1p(g_exp(-g_abs(x))))

/// The fraction of rows whose first argmax is the label (f32 scalar), as
/// the CPU counts it: an out-of-range label is a miss, not an error.
struct accuracy_k {
  template <class T>
  static void run(const kernel_call& c) {
    rows_of v = rows(c);
    int64_t n = v.n, k = v.k;
    index_view labels = v.labels;
    const T* x = ptr<T>(c.in[0]);
    tensor hits_t = scratch(c, dtype::i32, 1);
    int32_t* hits = ptr<int32_t>(hits_t);
    float* out = ptr<float>(c.out);
    parallel_for(c, 1, [=] LUOSHU_HD(int64_t) { *hits = 0; });
    parallel_for(c, n, [=] LUOSHU_HD(int64_t i) {
      const T* row = x + i * k;
      int64_t best = 0;
      for (int64_t j = 1; j < k; ++j)
        if (row[j] > row[best]) best = j;
      if (best == labels[i]) g_atomic_add(hits, int32_t{1});
    });
    parallel_for(c, 1, [=] LUOSHU_HD(int64_t) {
      *out = n ? static_cast<float>(*hits) / static_cast<float>(n) : 0.0f;
    });
  }
};

} // namespace

void register_loss(kernel_registry& r) {
  auto cuda = device::kind_t::cuda;
  r.add(op_kind::softmax_cross_entropy, cuda, float_kernel<sce_k>);
  r.add(op_kind::softmax_cross_entropy_grad, cuda, float_kernel<sce_grad_k>);
  r.add(op_kind::bce_with_logits, cuda, float_kernel<binary_k<op_bce>>);
  r.add(op_kind::accuracy, cuda, float_kernel<accuracy_k>);
}

} // namespace luoshu::LUOSHU_GPU_NS
