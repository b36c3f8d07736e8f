#pragma once
// The CUDA kernels built for the host (tests only; see ops/cuda/gpu.cuh):
// a backend whose "cuda" memory is host memory and whose kernels run as
// host loops, so the kernels' indexing and the executor's device path can
// be tested on machines without a GPU.

#include "ops/kernel.hpp"

namespace luoshu::cuda_emu {

/// Registers every CUDA kernel, built for the host, and the emulated backend
/// under device kind cuda.
void register_kernels(kernel_registry& r);

} // namespace luoshu::cuda_emu
