#pragma once
// What the CUDA runtime reports about devices. Safe to call in every build:
// without CUDA support, or without a GPU, it reports zero devices.

#include <string>

namespace luoshu::cuda {

/// Whether this build includes the CUDA backend.
bool built_with_cuda();
/// Usable CUDA devices (0 without a driver or GPU).
int device_count();
/// "NVIDIA H100 80GB HBM3, 79.1 GiB, sm_90" for device i, or why not.
std::string describe_device(int i);

} // namespace luoshu::cuda
