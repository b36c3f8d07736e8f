#pragma once
// Layer normalization over the last axis, shared by the CPU backend (f64,
// and the scale gradient in every dtype) and the CUDA backend
// (ops/cuda/layer_norm.cu): one-row reference loops.
//
//   layer_norm(x [..., D], gamma [D], beta [D]) = (x - mean) / sqrt(var + eps) * gamma + beta
// with mean and the biased variance over the last axis (PyTorch's and
// oneDNN's definition). attrs.eps = epsilon.
// Backward helpers (the statistics are recomputed from x, one pass per row,
// instead of being kept alive from the forward):
//   layer_norm_grad(dy, x, gamma) -> dx;
//   layer_norm_scale_grad(dy, x) -> dgamma [D] (dbeta is a plain sum of dy).

#include <cmath>
#include <cstdint>

#if defined(__CUDACC__)
#define LUOSHU_LN_HD __host__ __device__
#else
#define LUOSHU_LN_HD
#endif

namespace luoshu::ops {

/// Mean and biased variance of one row of d elements, accumulated in double
/// (two passes: no cancellation for rows with a large mean).
template <class T>
LUOSHU_LN_HD inline void layer_norm_moments(const T* x, int64_t d, double& mean, double& var) {
  double s = 0;
  for (int64_t j = 0; j < d; ++j) s += static_cast<double>(x[j]);
  mean = s / static_cast<double>(d);
  double v = 0;
  for (int64_t j = 0; j < d; ++j) {
    double t = static_cast<double>(x[j]) - mean;
    v += t * t;
  }
  var = v / static_cast<double>(d);
}

/// Mean and 1 / sqrt(var + eps) of one row.
template <class T>
LUOSHU_LN_HD inline void layer_norm_stats(const T* x, int64_t d, double eps, double& mean, double& rstd) {
  double var = 0;
  layer_norm_moments(x, d, mean, var);
  rstd = 1.0 / sqrt(var + eps);
}

/// y = (x - mean) * rstd * gamma + beta for one row.
template <class T>
LUOSHU_LN_HD inline void layer_norm_row(const T* x, const T* gamma, const T* beta, int64_t d, double eps, T* y) {
  double mean = 0, rstd = 0;
  layer_norm_stats(x, d, eps, mean, rstd);
  for (int64_t j = 0; j < d; ++j)
    y[j] = static_cast<T>((static_cast<double>(x[j]) - mean) * rstd * static_cast<double>(gamma[j]) +
                          static_cast<double>(beta[j]));
}

/// dx = rstd * (g - mean(g) - xhat * mean(g * xhat)) for one row, g = dy * gamma.
template <class T>
LUOSHU_LN_HD inline void layer_norm_grad_row(const T* dy, const T* x, const T* gamma, int64_t d, double eps, T* dx) {
  double mean = 0, rstd = 0;
  layer_norm_stats(x, d, eps, mean, rstd);
  double sg = 0, sgx = 0;
  for (int64_t j = 0; j < d; ++j) {
    double g = static_cast<double>(dy[j]) * static_cast<double>(gamma[j]);
    sg += g;
    sgx += g * (static_cast<double>(x[j]) - mean) * rstd;
  }
  double inv_d = 1.0 / static_cast<double>(d);
  sg *= inv_d;
  sgx *= inv_d;
  for (int64_t j = 0; j < d; ++j) {
    double xhat = (static_cast<double>(x[j]) - mean) * rstd;
    double g = static_cast<double>(dy[j]) * static_cast<double>(gamma[j]);
    dx[j] = static_cast<T>(rstd * (g - sg - xhat * sgx));
  }
}

/// acc[j] += dy[j] * xhat[j] for one row (the scale gradient's terms).
template <class T>
LUOSHU_LN_HD inline void layer_norm_scale_grad_row(const T* dy, const T* x, int64_t d, double eps, double* acc) {
  double mean = 0, rstd = 0;
  layer_norm_stats(x, d, eps, mean, rstd);
  for (int64_t j = 0; j < d; ++j)
    acc[j] += static_cast<double>(dy[j]) * (static_cast<double>(x[j]) - mean) * rstd;
}

} // namespace luoshu::ops
