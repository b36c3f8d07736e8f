#pragma once
// Counter-based random numbers: a value is a pure function of (key,
// counter), so any backend reproduces the same stream and a gradient op can
// recompute a mask instead of storing it.

#include <cstdint>

// Callable from CUDA kernels too (ops/cuda/embedding.cu).
#ifdef __CUDACC__
#define LUOSHU_RANDOM_HD __host__ __device__
#else
#define LUOSHU_RANDOM_HD
#endif

namespace luoshu::ops {

/// SplitMix64 finaliser: a strong 64-bit mix.
LUOSHU_RANDOM_HD constexpr uint64_t mix64(uint64_t z) {
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

/// Uniform in [0, 1) from (key, counter), 53 bits.
LUOSHU_RANDOM_HD constexpr double uniform01(uint64_t key, uint64_t counter) {
  return static_cast<double>(mix64(key ^ mix64(counter)) >> 11) * 0x1.0p-53;
}

LUOSHU_RANDOM_HD constexpr uint64_t dropout_key(uint64_t seed, int64_t step) {
  return mix64(seed * 0x2545f4914f6cdd1dull + static_cast<uint64_t>(step));
}

LUOSHU_RANDOM_HD constexpr bool dropout_keep(uint64_t key, uint64_t i, double rate) {
  return uniform01(key, i) >= rate;
}

} // namespace luoshu::ops
