#pragma once
// What the CUDA runtime reports about devices. Safe to call in every build:
// without CUDA support, or without a GPU, it reports zero devices.

#include <cstdint>
#include <string>

namespace luoshu::cuda {

/// Whether this build includes the CUDA backend.
bool built_with_cuda();
/// Usable CUDA devices (0 without a driver or GPU).
int device_count();
/// "NVIDIA H100 80GB HBM3, 79.1 GiB, sm_90" for device i, or why not.
std::string describe_device(int i);

/// For benchmarks: seconds per call of cuBLAS's f32 GEMM (no TF32) on
/// random m x k and k x n matrices on device `dev`, called directly (best
/// of `rounds` rounds of `iters` calls, timed with CUDA events). Negative
/// with `error` set when it cannot run.
double cublas_sgemm_seconds(int dev, int64_t m, int64_t n, int64_t k, int iters, int rounds, std::string& error);

} // namespace luoshu::cuda
