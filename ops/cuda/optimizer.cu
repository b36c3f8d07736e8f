// CUDA kernels: optimizer ops (see gpu.cuh for how kernels are written).

#include "ops/cuda/gpu.cuh"

namespace luoshu::LUOSHU_GPU_NS {

void register_optimizer(kernel_registry&) {}

} // namespace luoshu::LUOSHU_GPU_NS
