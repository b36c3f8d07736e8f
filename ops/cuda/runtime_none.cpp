#include "ops/cuda/runtime.hpp"

#include "ops/kernel.hpp"

namespace luoshu::cuda {

bool built_with_cuda() { return false; }
int device_count() { return 0; }
std::string describe_device(int i) {
  return "device " + std::to_string(i) + ": this build has no CUDA support (-Dcuda=disabled)";
}

} // namespace luoshu::cuda

namespace luoshu::cuda {
void register_kernels(kernel_registry&) {} // nothing to register without CUDA
} // namespace luoshu::cuda
