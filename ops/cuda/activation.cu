// CUDA kernels: activation ops (see gpu.cuh for how kernels are written).

#include "ops/cuda/gpu.cuh"

namespace luoshu::LUOSHU_GPU_NS {

void register_activation(kernel_registry&) {}

} // namespace luoshu::LUOSHU_GPU_NS
