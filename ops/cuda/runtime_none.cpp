#include "ops/cuda/runtime.hpp"

#include "ops/kernel.hpp"

namespace luoshu::cuda {

bool built_with_cuda() { return false; }
int device_count() { return 0; }
std::string describe_device(int i) {
  return "device " + std::to_string(i) + ": this build has no CUDA support (-Dcuda=disabled)";
}

double cublas_sgemm_seconds(int, int64_t, int64_t, int64_t, int, int, std::string& error) {
  error = "this build has no CUDA support (-Dcuda=disabled)";
  return -1;
}

void register_kernels(kernel_registry&) {} // nothing to register without CUDA
} // namespace luoshu::cuda
