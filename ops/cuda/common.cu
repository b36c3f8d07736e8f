// Host-side helpers shared by the CUDA kernels (both builds; see gpu.cuh).

#include "ops/cuda/gpu.cuh"

namespace luoshu::LUOSHU_GPU_NS {

void unsupported(const kernel_call& c, dtype t) {
  throw luoshu_error(std::string("op '") + name(c.n.op) + "' has no CUDA kernel for dtype " + name(t));
}

void check_launch(const kernel_call& c) {
#ifndef LUOSHU_CUDA_EMULATE
  cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess)
    throw luoshu_error(std::string("op '") + name(c.n.op) + "': CUDA kernel launch failed: " + cudaGetErrorString(e));
#else
  (void)c;
#endif
}

index_view indices(const kernel_call& c, const tensor& t) {
  if (t.type() != dtype::i32 && t.type() != dtype::i64)
    throw luoshu_error(std::string("op '") + name(c.n.op) + "': indices must be i32 or i64, got " + name(t.type()));
  return {t.raw(), t.type() == dtype::i64};
}

namespace {
void check_rank(const kernel_call& c, int r) {
  if (r > max_rank)
    throw luoshu_error(std::string("op '") + name(c.n.op) + "': rank " + std::to_string(r) +
                       " is above the CUDA kernels' limit of " + std::to_string(max_rank));
}
} // namespace

strided broadcast_view(const kernel_call& c, const shape& out, const shape& in) {
  check_rank(c, out.rank());
  strided v;
  v.rank = out.rank();
  int64_t stride = 1;
  for (int d = out.rank() - 1; d >= 0; --d) {
    int id = d - (out.rank() - in.rank());
    v.dims[d] = out[d];
    if (id < 0) {
      v.strides[d] = 0;
      continue;
    }
    v.strides[d] = in[id] == 1 && out[d] != 1 ? 0 : stride;
    stride *= in[id];
  }
  return v;
}

strided transpose_view(const kernel_call& c, const shape& in, const std::vector<int64_t>& perm) {
  check_rank(c, in.rank());
  int64_t in_strides[max_rank] = {};
  int64_t s = 1;
  for (int d = in.rank() - 1; d >= 0; --d) {
    in_strides[d] = s;
    s *= in[d];
  }
  strided v;
  v.rank = in.rank();
  for (int d = 0; d < in.rank(); ++d) {
    auto p = static_cast<int>(perm[static_cast<size_t>(d)]);
    v.dims[d] = in[p];
    v.strides[d] = in_strides[p];
  }
  return v;
}

int32_t launch_tags::next(const std::string& node_name, const char* op_name) {
  names_.push_back("node '" + node_name + "' (op " + op_name + ")");
  return static_cast<int32_t>(names_.size());
}

std::string launch_tags::message(const device_error& e) const {
  std::string who = e.tag >= 1 && static_cast<size_t>(e.tag) <= names_.size()
                        ? names_[static_cast<size_t>(e.tag - 1)]
                        : std::string("a kernel");
  switch (e.code) {
    case index_out_of_range:
      return who + ": index " + std::to_string(e.value) + " is out of range [0, " + std::to_string(e.bound) + ")";
    case integer_division_by_zero: return who + ": integer division by zero";
    case label_out_of_range:
      return who + ": label " + std::to_string(e.value) + " is out of range [0, " + std::to_string(e.bound) + ")";
    default: return who + ": device error code " + std::to_string(e.code);
  }
}

void launch_tags::clear() { names_.clear(); }

void register_families(kernel_registry& r) {
  register_elementwise(r);
  register_activation(r);
  register_matmul(r);
  register_conv(r);
  register_rnn(r);
  register_norm(r);
  register_layer_norm(r);
  register_attention(r);
  register_reduce(r);
  register_shape(r);
  register_embedding(r);
  register_loss(r);
  register_optimizer(r);
}

tensor scratch(const kernel_call& c, dtype t, int64_t n) {
  if (!c.ctx.stream) throw luoshu_error(std::string("op '") + name(c.n.op) + "': scratch memory needs a stream");
  size_t bytes = static_cast<size_t>(n) * size_of(t);
  return tensor(c.ctx.stream->allocate(bytes == 0 ? 1 : bytes), 0, t, shape{n});
}

} // namespace luoshu::LUOSHU_GPU_NS
