// CUDA kernel: attention_probs (ops/attention.hpp; see gpu.cuh for how
// kernels are written). The raw scores q k^T of every (batch, head) come from
// one strided batched GEMM (cuBLAS) into the output; then one thread per
// query row scales, masks and softmaxes it in place, the CPU's row function.
// TODO(perf): a block per row (the rows are short but many).

#include "ops/attention.hpp"
#include "ops/cuda/gpu.cuh"

namespace luoshu::LUOSHU_GPU_NS {

namespace {

template <class T, class M>
void softmax_rows(const kernel_call& c, const ops::attn_geom& g, const M* mask) {
  T* p = ptr<T>(c.out);
  int64_t tk = g.tk;
  parallel_for(c, g.b * g.h * g.tq, [=] LUOSHU_HD(int64_t r) { ops::attention_softmax_row(g, r, p + r * tk, mask); });
}

struct attention_probs_k {
  template <class T>
  static void run(const kernel_call& c) {
    const bool has_mask = c.in.size() == 3;
    ops::attn_geom g = ops::attention_geom(c.in[0].shape(), c.in[1].shape(), has_mask ? &c.in[2].shape() : nullptr,
                                           has_mask ? c.in[2].type() : dtype::u8, c.n.attrs);
    if (c.out.numel() == 0) return;
    gemm<T>(c, false, true, g.tq, g.tk, g.d, ptr<T>(c.in[0]), g.d, ptr<T>(c.in[1]), g.d, ptr<T>(c.out), g.tk, T(0),
            g.b * g.h, g.tq * g.d, g.tk * g.d, g.tq * g.tk);
    if (!has_mask) softmax_rows<T, T>(c, g, static_cast<const T*>(nullptr));
    else if (g.mask_kind == 1) softmax_rows<T, uint8_t>(c, g, ptr<uint8_t>(c.in[2]));
    else softmax_rows<T, T>(c, g, ptr<T>(c.in[2]));
  }
};

void k_attention_probs(const kernel_call& c) { dispatch_float<attention_probs_k>(c, c.out.type()); }

} // namespace

void register_attention(kernel_registry& r) { r.add(op_kind::attention_probs, device::kind_t::cuda, k_attention_probs); }

} // namespace luoshu::LUOSHU_GPU_NS
