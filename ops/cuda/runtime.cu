#include "ops/cuda/runtime.hpp"

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>

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
  if (e != cudaSuccess) {
    cudaGetLastError(); // not sticky: clear it so later launches are not blamed
    return std::string("device ") + std::to_string(i) + ": " + cudaGetErrorString(e);
  }
  return std::string(p.name) + ", " + std::to_string(p.totalGlobalMem / (1024.0 * 1024 * 1024)).substr(0, 5) +
         " GiB, sm_" + std::to_string(p.major) + std::to_string(p.minor);
}

namespace {
__global__ void fill_random(float* p, int64_t n, uint64_t seed) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    uint64_t z = (static_cast<uint64_t>(i) + seed) * 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 31)) * 0xbf58476d1ce4e5b9ull;
    p[i] = static_cast<float>(z >> 40) * 0x1.0p-24f - 0.5f;
  }
}
} // namespace

double cublas_sgemm_seconds(int dev, int64_t m, int64_t n, int64_t k, int iters, int rounds, std::string& error) {
  auto fail = [&](const std::string& what) {
    error = what;
    return -1.0;
  };
  if (dev < 0 || dev >= device_count()) return fail("cuda:" + std::to_string(dev) + " does not exist");
  cudaSetDevice(dev);
  float *a = nullptr, *b = nullptr, *c = nullptr;
  if (cudaMalloc(&a, sizeof(float) * m * k) != cudaSuccess || cudaMalloc(&b, sizeof(float) * k * n) != cudaSuccess ||
      cudaMalloc(&c, sizeof(float) * m * n) != cudaSuccess) {
    cudaFree(a);
    cudaFree(b);
    return fail("out of device memory");
  }
  cudaStream_t s;
  cudaStreamCreate(&s);
  fill_random<<<1024, 256, 0, s>>>(a, m * k, 1);
  fill_random<<<1024, 256, 0, s>>>(b, k * n, 2);
  cublasHandle_t h;
  cublasCreate(&h);
  cublasSetStream(h, s);
  const float one = 1, zero = 0;
  auto call = [&] {
    return cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, static_cast<int>(n), static_cast<int>(m), static_cast<int>(k), &one,
                       b, static_cast<int>(n), a, static_cast<int>(k), &zero, c, static_cast<int>(n));
  };
  double best = -1;
  cudaEvent_t e0, e1;
  cudaEventCreate(&e0);
  cudaEventCreate(&e1);
  bool ok = call() == CUBLAS_STATUS_SUCCESS && call() == CUBLAS_STATUS_SUCCESS; // warm-up
  for (int r = 0; ok && r < rounds; ++r) {
    cudaEventRecord(e0, s);
    for (int i = 0; i < iters; ++i) ok = ok && call() == CUBLAS_STATUS_SUCCESS;
    cudaEventRecord(e1, s);
    cudaEventSynchronize(e1);
    float ms = 0;
    cudaEventElapsedTime(&ms, e0, e1);
    double sec = ms / 1000.0 / iters;
    best = best < 0 ? sec : std::min(best, sec);
  }
  cudaError_t err = cudaStreamSynchronize(s);
  cudaEventDestroy(e0);
  cudaEventDestroy(e1);
  cublasDestroy(h);
  cudaStreamDestroy(s);
  cudaFree(a);
  cudaFree(b);
  cudaFree(c);
  if (!ok) return fail("cuBLAS sgemm failed");
  if (err != cudaSuccess) return fail(cudaGetErrorString(err));
  return best;
}

} // namespace luoshu::cuda
