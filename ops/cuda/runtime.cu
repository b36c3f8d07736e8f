#include "ops/cuda/runtime.hpp"

#include <cuda_runtime.h>

namespace luoshu::cuda {

bool built_with_cuda() { return true; }

int device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError(); // clear the sticky "no device/driver" error
    return 0;
  }
  return n;
}

std::string describe_device(int i) {
  cudaDeviceProp p{};
  cudaError_t e = cudaGetDeviceProperties(&p, i);
  if (e != cudaSuccess) return std::string("device ") + std::to_string(i) + ": " + cudaGetErrorString(e);
  return std::string(p.name) + ", " + std::to_string(p.totalGlobalMem / (1024.0 * 1024 * 1024)).substr(0, 5) +
         " GiB, sm_" + std::to_string(p.major) + std::to_string(p.minor);
}

} // namespace luoshu::cuda
