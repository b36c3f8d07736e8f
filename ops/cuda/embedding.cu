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
  r.add(op_kind::dropout, cuda, k_dropout);
  r.add(op_kind::dropout_grad, cuda, k_dropout);
}

} // namespace luoshu::LUOSHU_GPU_NS
