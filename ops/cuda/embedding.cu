// CUDA kernels: embedding lookup, dropout (see gpu.cuh for how kernels are
// written). Same semantics as ops/cpu/embedding.cpp: dropout draws the CPU's
// counter-based mask (ops/random.hpp) for the same seed and step.

#include "ops/cuda/elementwise.cuh"
#include "ops/random.hpp"

namespace luoshu::LUOSHU_GPU_NS {

namespace {

/// out[i, :] = table[ids[i], :], copying elements of E (any dtype of that
/// size); an id outside [0, rows) is a device error and its row is skipped.
template <class E>
void gather_rows(const kernel_call& c) {
  const tensor &table = c.in[0], &ids_t = c.in[1];
  int64_t rows = table.dim(0);
  int64_t width = rows ? table.numel() / rows : 0;
  int64_t w1 = width ? width : 1; // ids are checked even when rows are empty
  index_view ids = indices(c, ids_t);
  error_sink e = errors(c);
  const E* in = static_cast<const E*>(table.raw()); // bits of any dtype of this size
  E* out = static_cast<E*>(c.out.raw());
  parallel_for(c, ids_t.numel() * w1, [=] LUOSHU_HD(int64_t i) {
    int64_t r = i / w1, j = i % w1;
    int64_t id = ids[r];
    if (id < 0 || id >= rows) {
      if (j == 0) e.out_of_range(id, rows);
      return;
    }
    if (j < width) out[r * width + j] = in[id * width + j];
  });
}

void k_embedding(const kernel_call& c) {
  switch (size_of(c.in[0].type())) {
    case 1: gather_rows<uint8_t>(c); return;
    case 2: gather_rows<uint16_t>(c); return;
    case 4: gather_rows<uint32_t>(c); return;
    case 8: gather_rows<uint64_t>(c); return;
    default: unsupported(c, c.in[0].type());
  }
}

/// An embedding_bag node's padding id. Plain value: captured by kernels.
struct bag_pad {
  bool has = false;
  int64_t id = 0;
  LUOSHU_HD bool operator()(int64_t v) const { return has && v == id; }
};
bag_pad pad_of(const kernel_call& c) { return {!c.n.attrs.axes.empty(), c.n.attrs.axes.empty() ? 0 : c.n.attrs.axes[0]}; }

// embedding_bag(table [n, d], ids [B, L]) -> [B, d]: one thread per output
// element; an id outside [0, n) that is not padding is a device error.
struct embedding_bag_k {
  template <class T>
  static void run(const kernel_call& c) {
    const tensor &table = c.in[0], &ids_t = c.in[1];
    int64_t rows = table.dim(0), d = table.dim(1), bags = ids_t.dim(0), l = ids_t.dim(1);
    index_view ids = indices(c, ids_t);
    error_sink e = errors(c);
    bag_pad pad = pad_of(c);
    bool mean = c.n.attrs.flag;
    const T* t = ptr<T>(table);
    T* out = ptr<T>(c.out);
    int64_t d1 = d ? d : 1; // ids are checked even when rows are empty
    parallel_for(c, bags * d1, [=] LUOSHU_HD(int64_t i) {
      int64_t b = i / d1, j = i % d1;
      T s = 0;
      int64_t n = 0;
      for (int64_t k = 0; k < l; ++k) {
        int64_t v = ids[b * l + k];
        if (pad(v)) continue;
        if (v < 0 || v >= rows) {
          if (j == 0) e.out_of_range(v, rows);
          continue;
        }
        ++n;
        if (j < d) s += t[v * d + j];
      }
      if (j < d) out[b * d + j] = mean && n > 1 ? s / static_cast<T>(n) : s;
    });
  }
};

// embedding_bag_grad(dy [B, d], ids [B, L]) -> [B * L, d]
struct embedding_bag_grad_k {
  template <class T>
  static void run(const kernel_call& c) {
    const tensor &dy_t = c.in[0], &ids_t = c.in[1];
    int64_t d = dy_t.dim(1), l = ids_t.dim(1);
    index_view ids = indices(c, ids_t);
    bag_pad pad = pad_of(c);
    bool mean = c.n.attrs.flag;
    const T* dy = ptr<T>(dy_t);
    T* out = ptr<T>(c.out);
    parallel_for(c, c.out.numel(), [=] LUOSHU_HD(int64_t i) {
      int64_t pos = i / d, j = i % d, b = pos / l;
      if (pad(ids[pos])) {
        out[i] = T(0);
        return;
      }
      int64_t n = 1;
      if (mean) {
        n = 0;
        for (int64_t k = 0; k < l; ++k) n += pad(ids[b * l + k]) ? 0 : 1;
      }
      out[i] = dy[b * d + j] / static_cast<T>(n);
    });
  }
};

// embedding_bag_rows(ids [B, L]) -> i64 [B * L]: padding replaced by the
// first non-padding id (found by a min-reduction over positions).
void k_embedding_bag_rows(const kernel_call& c) {
  const tensor& ids_t = c.in[0];
  int64_t k = ids_t.numel();
  index_view ids = indices(c, ids_t);
  bag_pad pad = pad_of(c);
  int64_t* out = ptr<int64_t>(c.out);
  tensor first_t = scratch(c, dtype::i64, 1);
  int64_t* first = ptr<int64_t>(first_t);
  parallel_for(c, 1, [=] LUOSHU_HD(int64_t) { *first = k; });
  parallel_for(c, k, [=] LUOSHU_HD(int64_t i) {
    if (pad(ids[i])) return;
#if defined(__CUDA_ARCH__)
    atomicMin(reinterpret_cast<unsigned long long*>(first), static_cast<unsigned long long>(i));
#else
    if (i < *first) *first = i;
#endif
  });
  parallel_for(c, k, [=] LUOSHU_HD(int64_t i) {
    int64_t v = ids[i];
    out[i] = pad(v) ? (*first < k ? ids[*first] : 0) : v;
  });
}

/// dropout and dropout_grad: x * mask / (1 - rate); identity when not
/// training or rate is 0.
struct dropout_k {
  template <class T>
  static void run(const kernel_call& c) {
    double rate = c.n.attrs.alpha;
    uint64_t key = ops::dropout_key(c.n.attrs.seed, c.ctx.step);
    T scale = static_cast<T>(1.0 / (1.0 - rate));
    const T* in = ptr<T>(c.in[0]);
    T* out = ptr<T>(c.out);
    parallel_for(c, c.out.numel(), [=] LUOSHU_HD(int64_t i) {
      out[i] = ops::dropout_keep(key, static_cast<uint64_t>(i), rate) ? in[i] * scale : T(0);
    });
  }
};

void k_dropout(const kernel_call& c) {
  if (!c.ctx.training || c.n.attrs.alpha == 0) return copy_input(c);
  dispatch_float<dropout_k>(c, c.in[0].type());
}

} // namespace

void register_embedding(kernel_registry& r) {
  auto cuda = device::kind_t::cuda;
  r.add(op_kind::embedding, cuda, k_embedding);
  r.add(op_kind::embedding_bag, cuda, [](const kernel_call& c) { dispatch_float<embedding_bag_k>(c, c.out.type()); });
  r.add(op_kind::embedding_bag_grad, cuda,
        [](const kernel_call& c) { dispatch_float<embedding_bag_grad_k>(c, c.out.type()); });
  r.add(op_kind::embedding_bag_rows, cuda, k_embedding_bag_rows);
  r.add(op_kind::dropout, cuda, k_dropout);
  r.add(op_kind::dropout_grad, cuda, k_dropout);
}

} // namespace luoshu::LUOSHU_GPU_NS
