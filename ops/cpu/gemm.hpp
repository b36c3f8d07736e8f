#pragma once
// The CPU kernels' one matrix product:
//
//   C[m, n] = op(A) op(B) + beta C     (row-major, leading dimensions lda,
//                                       ldb, ldc; op = transpose when asked)
//
// f32 runs oneDNN's sgemm on the shared OpenMP pool; f64 (the reference the
// gradient checks use) a plain loop on the pool, where beta must be 0 or 1.
// Errors name the node `c` runs.

#include <cstdint>

#include "ops/kernel.hpp"

namespace luoshu::cpu {

void gemm(const kernel_call& c, bool ta, bool tb, int64_t m, int64_t n, int64_t k, const float* a, int64_t lda,
          const float* b, int64_t ldb, float beta, float* out, int64_t ldc);
void gemm(const kernel_call& c, bool ta, bool tb, int64_t m, int64_t n, int64_t k, const double* a, int64_t lda,
          const double* b, int64_t ldb, double beta, double* out, int64_t ldc);

/// The same on dense operands: lda, ldb and ldc follow from the shapes.
template <class T>
void gemm(const kernel_call& c, bool ta, bool tb, int64_t m, int64_t n, int64_t k, const T* a, const T* b, T beta,
          T* out) {
  gemm(c, ta, tb, m, n, k, a, ta ? m : k, b, tb ? k : n, beta, out, n);
}

} // namespace luoshu::cpu
