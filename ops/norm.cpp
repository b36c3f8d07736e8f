// Batch normalization over the channels (dim 1) of x [N, C] or
// [N, C, H, W]; M = N (x [N, C]) or N H W values per channel.
//   batch_norm_stats(x, running_mean, running_var) -> [2, C]: row 0 the
//     mean, row 1 the (biased) variance that normalize x. Training
//     (kernel_context::training): the batch's, and the running statistics
//     (inputs 1 and 2, non-trainable variables: the builder checks) are
//     updated in place, as in PyTorch:
//       running = (1 - momentum) running + momentum batch,
//     with the unbiased variance (M / (M - 1)) for the running one.
//     Inference: the running statistics themselves, unchanged.
//   batch_norm(x, gamma [C], beta [C], stats) -> y = (x - mean) / sqrt(var + eps) gamma + beta.
//   batch_norm_param_grad(dy, x, stats) -> [2, C]: row 0 dgamma = sum(dy xhat),
//     row 1 dbeta = sum(dy), sums over the M values of each channel.
//   batch_norm_input_grad(dy, x, gamma, stats, param_grad) -> dx:
//     training: gamma / sqrt(var + eps) (dy - dbeta / M - xhat dgamma / M)
//     (the statistics depend on x); inference: gamma / sqrt(var + eps) dy.
// Attributes: eps (attrs.eps, > 0), momentum (attrs.alpha, in [0, 1]).
//
// The statistics are a node of their own so that backward reads the mean
// and variance forward computed (no second pass over x for them); the
// gradient's two nodes make the two passes over (dy, x) that a fused
// backward makes too: one reduction, one elementwise map. No gradient flows
// into the statistics node: batch_norm's rule includes the path through
// them.

#include <cmath>

#include "graph/graph.hpp"
#include "ops/families.hpp"
#include "ops/grad_util.hpp"
#include "ops/infer_util.hpp"

namespace luoshu::ops {

namespace {

void check_norm_attrs(const node& n) {
  if (!(n.attrs.eps > 0) || !std::isfinite(n.attrs.eps))
    throw luoshu_error("batch_norm epsilon must be a positive number, got " + std::to_string(n.attrs.eps));
  if (!(n.attrs.alpha >= 0 && n.attrs.alpha <= 1))
    throw luoshu_error("batch_norm momentum must be in [0, 1], got " + std::to_string(n.attrs.alpha));
}

/// Checks x (a float [N, C] or [N, C, H, W]) and returns C.
int64_t channels_of(const type_shape& x, const char* what) {
  require_float(x, what);
  if (x.shape.rank() != 2 && x.shape.rank() != 4)
    throw luoshu_error(std::string(what) + " must be [N, C] or [N, C, H, W], got " + x.shape.to_string());
  return x.shape[1];
}

/// A per-channel vector [C] of x's dtype.
void require_channel_vector(const type_shape& v, const type_shape& x, int64_t c, const char* what) {
  if (v.type != x.type)
    throw luoshu_error(std::string(what) + " is " + name(v.type) + " but the input is " + name(x.type));
  if (v.shape.rank() != 1 || !dims_agree(v.shape[0], c))
    throw luoshu_error(std::string(what) + " must be [C] = [" + (c < 0 ? "?" : std::to_string(c)) +
                       "] (one value per channel of input " + x.shape.to_string() + "), got " +
                       v.shape.to_string());
}

/// A [2, C] per-channel pair of x's dtype (statistics or parameter gradients).
void require_channel_pair(const type_shape& v, const type_shape& x, int64_t c, const char* what) {
  if (v.type != x.type)
    throw luoshu_error(std::string(what) + " is " + name(v.type) + " but the input is " + name(x.type));
  if (v.shape.rank() != 2 || !dims_agree(v.shape[0], 2) || !dims_agree(v.shape[1], c))
    throw luoshu_error(std::string(what) + " must be [2, " + (c < 0 ? "?" : std::to_string(c)) + "], got " +
                       v.shape.to_string());
}

void require_same_shape(const type_shape& a, const type_shape& b, const char* what) {
  bool ok = a.type == b.type && a.shape.rank() == b.shape.rank();
  for (int i = 0; ok && i < a.shape.rank(); ++i) ok = dims_agree(a.shape[i], b.shape[i]);
  if (!ok)
    throw luoshu_error(std::string(what) + " " + name(a.type) + a.shape.to_string() + " does not match the input " +
                       name(b.type) + b.shape.to_string());
}

// batch_norm_stats(x, running_mean, running_var)
type_shape infer_stats(const node& n, std::span<const type_shape> in) {
  check_norm_attrs(n);
  int64_t c = channels_of(in[0], "input");
  require_channel_vector(in[1], in[0], c, "running mean");
  require_channel_vector(in[2], in[0], c, "running variance");
  return {in[0].type, shape{2, c}};
}

// batch_norm(x, gamma, beta, stats)
type_shape infer_batch_norm(const node& n, std::span<const type_shape> in) {
  check_norm_attrs(n);
  int64_t c = channels_of(in[0], "input");
  require_channel_vector(in[1], in[0], c, "scale (gamma)");
  require_channel_vector(in[2], in[0], c, "shift (beta)");
  require_channel_pair(in[3], in[0], c, "statistics");
  return in[0];
}

// batch_norm_param_grad(dy, x, stats)
type_shape infer_param_grad(const node& n, std::span<const type_shape> in) {
  check_norm_attrs(n);
  int64_t c = channels_of(in[1], "input");
  require_same_shape(in[0], in[1], "output gradient");
  require_channel_pair(in[2], in[1], c, "statistics");
  return {in[1].type, shape{2, c}};
}

// batch_norm_input_grad(dy, x, gamma, stats, param_grad)
type_shape infer_input_grad(const node& n, std::span<const type_shape> in) {
  check_norm_attrs(n);
  int64_t c = channels_of(in[1], "input");
  require_same_shape(in[0], in[1], "output gradient");
  require_channel_vector(in[2], in[1], c, "scale (gamma)");
  require_channel_pair(in[3], in[1], c, "statistics");
  require_channel_pair(in[4], in[1], c, "parameter gradients");
  return in[1];
}

void grad_batch_norm(grad_ctx& c) {
  const op_attrs& a = c.n().attrs;
  expr x = c.in(0), gamma = c.in(1), stats = c.in(3), dy = c.dy;
  // dgamma and dbeta are needed for dx too (training mode).
  expr pg = c.g.add(op_kind::batch_norm_param_grad, {dy.id(), x.id(), stats.id()}, a);
  const int64_t ch = x.shape()[1];
  if (c.needs[0])
    c.dense(0, c.g.add(op_kind::batch_norm_input_grad, {dy.id(), x.id(), gamma.id(), stats.id(), pg.id()}, a));
  if (c.needs[1]) c.dense(1, reshape(slice(pg, {0, 0}, {1, INT64_MAX}), shape{ch}));
  if (c.needs[2]) c.dense(2, reshape(slice(pg, {1, 0}, {2, INT64_MAX}), shape{ch}));
}

} // namespace

void describe_norm(op_table& t) {
  t.set(op_kind::batch_norm_stats, op_flag_no_grad, infer_stats, nullptr);
  t.set(op_kind::batch_norm, 0, infer_batch_norm, grad_batch_norm);
  t.set(op_kind::batch_norm_param_grad, 0, infer_param_grad, nullptr);
  t.set(op_kind::batch_norm_input_grad, 0, infer_input_grad, nullptr);
}

} // namespace luoshu::ops
