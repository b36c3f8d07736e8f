#include "ops/cpu/gemm.hpp"

#include <oneapi/dnnl/dnnl.h>

#include <algorithm>
#include <string>

#include "ops/cpu/cpu_util.hpp"

namespace luoshu::cpu {

void gemm(const kernel_call& c, bool ta, bool tb, int64_t m, int64_t n, int64_t k, const float* a, int64_t lda,
          const float* b, int64_t ldb, float beta, float* out, int64_t ldc) {
  if (m == 0 || n == 0) return;
  if (k == 0) {
    if (beta == 0)
      for (int64_t i = 0; i < m; ++i) std::fill(out + i * ldc, out + i * ldc + n, 0.0f);
    return;
  }
  dnnl_status_t st = dnnl_sgemm(ta ? 'T' : 'N', tb ? 'T' : 'N', m, n, k, 1.0f, a, lda, b, ldb, beta, out, ldc);
  if (st != dnnl_success)
    throw luoshu_error("oneDNN sgemm failed (status " + std::to_string(static_cast<int>(st)) + ") in node '" +
                       c.n.name + "'");
}

void gemm(const kernel_call&, bool ta, bool tb, int64_t m, int64_t n, int64_t k, const double* a, int64_t lda,
          const double* b, int64_t ldb, double beta, double* out, int64_t ldc) {
  parallel_for(m, n * k + 1, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      double* ci = out + i * ldc;
      if (beta == 0) std::fill(ci, ci + n, 0.0);
      for (int64_t p = 0; p < k; ++p) {
        double av = ta ? a[p * lda + i] : a[i * lda + p];
        for (int64_t j = 0; j < n; ++j) ci[j] += av * (tb ? b[j * ldb + p] : b[p * ldb + j]);
      }
    }
  });
}

} // namespace luoshu::cpu
