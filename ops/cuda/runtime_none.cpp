#include "ops/cuda/runtime.hpp"

namespace luoshu::cuda {

bool built_with_cuda() { return false; }
int device_count() { return 0; }
std::string describe_device(int i) {
  return "device " + std::to_string(i) + ": this build has no CUDA support (-Dcuda=disabled)";
}

} // namespace luoshu::cuda
