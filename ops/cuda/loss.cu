// CUDA kernels: loss ops (see gpu.cuh for how kernels are written).

#include "ops/cuda/gpu.cuh"

namespace luoshu::LUOSHU_GPU_NS {

void register_loss(kernel_registry&) {}

} // namespace luoshu::LUOSHU_GPU_NS
