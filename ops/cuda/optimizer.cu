// CUDA kernels: dense and sparse optimizer updates (in place) and
// sparse_square_sum, with the formulas of ops/update_rules.hpp.
//
// The learning rate and Adam's step counter live on the device, so each
// update first runs a one-thread kernel that reads them (and bumps the
// counter) and writes the step's coefficients to scratch memory; the update
// kernel reads them from there. Nothing is copied back to the host.
//
// Sparse updates sum repeated rows first, exactly as the CPU does: the
// positions are sorted stably by row, each run of equal rows is summed in
// position order and its row is updated once.

#include "ops/cuda/gpu.cuh"
#include "ops/update_ops.hpp"

namespace luoshu::LUOSHU_GPU_NS {

namespace {

/// Reads a scalar of dtype f32/f64/i32/i64 on the device.
struct scalar_view {
  const void* p;
  dtype t;
  LUOSHU_HD double operator()() const {
    switch (t) {
      case dtype::f64: return *static_cast<const double*>(p);
      case dtype::i32: return *static_cast<const int32_t*>(p);
      case dtype::i64: return static_cast<double>(*static_cast<const int64_t*>(p));
      default: return *static_cast<const float*>(p);
    }
  }
};

/// Sorted keys and positions of a sparse gradient's rows (i32/i64 indices).
struct sorted_rows {
  tensor keys, pos;
};
sorted_rows sort_rows(const kernel_call& c, const tensor& idx) {
  const int64_t k = idx.numel();
  tensor raw = scratch(c, dtype::i64, k);
  int64_t* r = ptr<int64_t>(raw);
  const index_view iv = indices(c, idx);
  parallel_for(c, k, [=] LUOSHU_HD(int64_t i) { r[i] = iv[i]; });
  sorted_rows s{scratch(c, dtype::i64, k), scratch(c, dtype::i64, k)};
  sort_positions(c, r, ptr<int64_t>(s.keys), ptr<int64_t>(s.pos), k);
  return s;
}

/// The sum, in position order, of element x of the rows in the run of equal
/// keys starting at sorted position i.
template <class T>
LUOSHU_HD T run_sum(const int64_t* keys, const int64_t* pos, int64_t k, int64_t i, const T* vals, int64_t width,
                    int64_t x) {
  T s = vals[pos[i] * width + x];
  for (int64_t j = i + 1; j < k && keys[j] == keys[i]; ++j) s += vals[pos[j] * width + x];
  return s;
}

struct update_k {
  template <class T>
  static void run(const kernel_call& c) {
    const ops::update_layout l = ops::update_layout_of(c.n.op);
    const size_t first_slot = l.first_slot(), lr_at = l.lr_at();
    const ops::update_hyper h = ops::update_hyper_of(c.n.attrs, l);
    const tensor& lr_t = c.in[lr_at];
    const scalar_view lr{lr_t.raw(), lr_t.type()};
    int64_t* step = l.rule == ops::update_rule::adam ? ptr<int64_t>(c.in[lr_at + 1]) : nullptr;
    const ops::update_rule rule = l.rule;

    tensor coeff_mem = scratch(c, dtype::u8, static_cast<int64_t>(sizeof(ops::update_coeffs<T>)));
    auto* coeffs = static_cast<ops::update_coeffs<T>*>(coeff_mem.raw());
    parallel_for(c, 1, [=] LUOSHU_HD(int64_t) {
      ops::update_hyper hh = h;
      hh.lr = lr();
      if (step) hh.step = ++*step;
      *coeffs = ops::make_coeffs<T>(rule, hh);
    });

    const tensor& var = c.in[0];
    T* w = ptr<T>(var);
    T* s0 = l.slots > 0 ? ptr<T>(c.in[first_slot]) : nullptr;
    T* s1 = l.slots > 1 ? ptr<T>(c.in[first_slot + 1]) : nullptr;
    if (!l.sparse) {
      const T* g = ptr<T>(c.in[1]);
      parallel_for(c, var.numel(), [=] LUOSHU_HD(int64_t i) {
        ops::update_element<T>(*coeffs, w[i], g[i], s0 ? s0 + i : nullptr, s1 ? s1 + i : nullptr);
      });
      return;
    }
    const tensor &idx = c.in[1], &vals = c.in[2];
    const int64_t k = idx.numel(), rows = var.dim(0), width = rows ? var.numel() / rows : 0;
    if (k == 0 || width == 0) return;
    sorted_rows sr = sort_rows(c, idx);
    const int64_t* keys = ptr<int64_t>(sr.keys);
    const int64_t* pos = ptr<int64_t>(sr.pos);
    const T* gv = ptr<T>(vals);
    const error_sink err = errors(c);
    parallel_for(c, k * width, [=] LUOSHU_HD(int64_t t) {
      const int64_t i = t / width, x = t % width;
      if (i > 0 && keys[i] == keys[i - 1]) return; // not the first of its run
      const int64_t row = keys[i];
      if (row < 0 || row >= rows) {
        if (x == 0) err.out_of_range(row, rows);
        return;
      }
      const int64_t off = row * width + x;
      ops::update_element<T>(*coeffs, w[off], run_sum(keys, pos, k, i, gv, width, x), s0 ? s0 + off : nullptr,
                             s1 ? s1 + off : nullptr);
    });
  }
};

struct square_sum_k {
  template <class T>
  static void run(const kernel_call& c) {
    const tensor &idx = c.in[0], &vals = c.in[1];
    const int64_t k = idx.numel(), width = k ? vals.numel() / k : 0, n = k * width;
    T* out = ptr<T>(c.out);
    if (n == 0) {
      parallel_for(c, 1, [=] LUOSHU_HD(int64_t) { *out = T(0); });
      return;
    }
    sorted_rows sr = sort_rows(c, idx);
    const int64_t* keys = ptr<int64_t>(sr.keys);
    const int64_t* pos = ptr<int64_t>(sr.pos);
    const T* gv = ptr<T>(vals);
    // Squares of the summed runs (0 off the run heads), then a fixed-order
    // two-level sum in double.
    tensor sq_mem = scratch(c, dtype::f64, n);
    double* sq = ptr<double>(sq_mem);
    parallel_for(c, n, [=] LUOSHU_HD(int64_t t) {
      const int64_t i = t / width, x = t % width;
      if (i > 0 && keys[i] == keys[i - 1]) {
        sq[t] = 0;
        return;
      }
      const double s = static_cast<double>(run_sum(keys, pos, k, i, gv, width, x));
      sq[t] = s * s;
    });
    constexpr int64_t chunk = 1024;
    const int64_t chunks = (n + chunk - 1) / chunk;
    tensor part_mem = scratch(c, dtype::f64, chunks);
    double* part = ptr<double>(part_mem);
    parallel_for(c, chunks, [=] LUOSHU_HD(int64_t j) {
      double s = 0;
      for (int64_t t = j * chunk; t < n && t < (j + 1) * chunk; ++t) s += sq[t];
      part[j] = s;
    });
    parallel_for(c, 1, [=] LUOSHU_HD(int64_t) {
      double s = 0;
      for (int64_t j = 0; j < chunks; ++j) s += part[j];
      *out = static_cast<T>(s);
    });
  }
};

void k_update(const kernel_call& c) { dispatch_float<update_k>(c, c.in[0].type()); }
void k_sparse_square_sum(const kernel_call& c) { dispatch_float<square_sum_k>(c, c.in[1].type()); }

} // namespace

void register_optimizer(kernel_registry& r) {
  const auto cuda = device::kind_t::cuda;
  for (auto k : {op_kind::sgd_update, op_kind::momentum_update, op_kind::adagrad_update, op_kind::adam_update,
                 op_kind::sparse_sgd_update, op_kind::sparse_momentum_update, op_kind::sparse_adagrad_update,
                 op_kind::sparse_adam_update})
    r.add(k, cuda, k_update);
  r.add(op_kind::sparse_square_sum, cuda, k_sparse_square_sum);
}

} // namespace luoshu::LUOSHU_GPU_NS
