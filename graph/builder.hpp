#pragma once
// The builder API: free functions over `expr` that read like the math,
//   auto h = relu(matmul(x, w1) + b1);
// Every call infers its output's dtype and shape at once and throws
// luoshu_error naming the op, the node and the input shapes on a mismatch.

#include <array>
#include <optional>
#include <vector>

#include "graph/graph.hpp"

namespace luoshu {

namespace init {
inline initializer zeros() { return {initializer::kind_t::zeros, 0, 0}; }
inline initializer constant(double v) { return {initializer::kind_t::constant, v, 0}; }
inline initializer uniform(double lo, double hi) { return {initializer::kind_t::uniform, lo, hi}; }
inline initializer normal(double mean, double stddev) { return {initializer::kind_t::normal, mean, stddev}; }
/// Normal, redrawn until within two standard deviations of the mean.
inline initializer truncated_normal(double mean, double stddev) {
  return {initializer::kind_t::truncated_normal, mean, stddev};
}
/// Glorot: U(-a, a), a = gain * sqrt(6 / (fan_in + fan_out)).
inline initializer xavier_uniform(double gain = 1) { return {initializer::kind_t::xavier_uniform, gain, 0}; }
/// Glorot: N(0, gain * sqrt(2 / (fan_in + fan_out))).
inline initializer xavier_normal(double gain = 1) { return {initializer::kind_t::xavier_normal, gain, 0}; }
/// Kaiming: U(-a, a), a = gain * sqrt(3 / fan_in); gain sqrt(2) suits relu.
inline initializer he_uniform(double gain = 1.4142135623730951) { return {initializer::kind_t::he_uniform, gain, 0}; }
/// Kaiming: N(0, gain / sqrt(fan_in)).
inline initializer he_normal(double gain = 1.4142135623730951) { return {initializer::kind_t::he_normal, gain, 0}; }
} // namespace init

// elementwise (NumPy broadcasting)
expr operator+(expr a, expr b);
expr operator-(expr a, expr b);
expr operator*(expr a, expr b);
expr operator/(expr a, expr b);
expr operator+(expr a, double b);
expr operator-(expr a, double b);
expr operator*(expr a, double b);
expr operator/(expr a, double b);
expr operator+(double a, expr b);
expr operator-(double a, expr b);
expr operator*(double a, expr b);
expr operator/(double a, expr b);
expr operator-(expr a);
expr add(expr a, expr b);
expr sub(expr a, expr b);
expr mul(expr a, expr b);
expr div(expr a, expr b);
expr pow(expr a, expr b);
expr pow(expr a, double b);
expr maximum(expr a, expr b);
expr minimum(expr a, expr b);
expr equal(expr a, expr b);
expr not_equal(expr a, expr b);
expr less(expr a, expr b);
expr less_equal(expr a, expr b);
expr greater(expr a, expr b);
expr greater_equal(expr a, expr b);
/// cond (u8, nonzero = true) ? a : b, all three broadcast together.
expr where(expr cond, expr a, expr b);
expr neg(expr x);
expr abs(expr x);
expr exp(expr x);
expr log(expr x);
expr sqrt(expr x);
expr rsqrt(expr x);
expr square(expr x);
expr sign(expr x);
expr clamp(expr x, double lo, double hi);
expr cast(expr x, dtype to);
expr identity(expr x);
/// Identity forward; no gradient flows through it.
expr stop_gradient(expr x);

// activations
expr relu(expr x);
expr leaky_relu(expr x, double slope = 0.01);
expr elu(expr x, double alpha = 1.0);
/// Exact (erf) GELU.
expr gelu(expr x);
expr sigmoid(expr x);
expr tanh(expr x);
expr softplus(expr x);
expr softmax(expr x, int64_t axis = -1);
expr log_softmax(expr x, int64_t axis = -1);

// matrix products
/// [m, k] x [k, n] -> [m, n] (after the optional transposes).
expr matmul(expr a, expr b, bool trans_a = false, bool trans_b = false);
/// [batch, m, k] x [batch, k, n] -> [batch, m, n].
expr batch_matmul(expr a, expr b, bool trans_a = false, bool trans_b = false);
/// x [.., in] times w [in, out] plus b [out].
expr linear(expr x, expr w, expr b);

// convolution and pooling over NCHW tensors
/// Options of conv2d, as in PyTorch (symmetric padding; {h, w} pairs).
struct conv2d_options {
  std::array<int64_t, 2> stride = {1, 1};
  std::array<int64_t, 2> padding = {0, 0};
  std::array<int64_t, 2> dilation = {1, 1};
  int64_t groups = 1;
};
/// x [n, c, h, w] convolved (cross-correlation, as in PyTorch) with
/// w [o, c / groups, kh, kw]: [n, o, oh, ow], oh = (h + 2 pad - dilation (kh - 1) - 1) / stride + 1.
/// f32 runs oneDNN; f64 plain loops.
expr conv2d(expr x, expr w, const conv2d_options& o = {});
/// conv2d plus a per-output-channel bias b [o], added inside the convolution
/// (one node; its gradient is conv2d_bias_grad).
expr conv2d(expr x, expr w, expr b, const conv2d_options& o = {});
/// Options of max_pool2d and avg_pool2d (floor mode; padding at most half the kernel).
struct pool2d_options {
  std::array<int64_t, 2> kernel = {2, 2};
  std::array<int64_t, 2> stride = {0, 0}; ///< 0 = the kernel size (PyTorch's default)
  std::array<int64_t, 2> padding = {0, 0};
  /// avg_pool2d only: divide by kh * kw even where the window covers padding (PyTorch's default).
  bool count_include_pad = true;
};
/// Largest element of each window of x [n, c, h, w] (padding never wins);
/// the gradient goes to the first largest element of each window.
expr max_pool2d(expr x, const pool2d_options& o = {});
/// Mean of each window of x [n, c, h, w].
expr avg_pool2d(expr x, const pool2d_options& o = {});

// recurrent layers over whole sequences
/// An LSTM over x [B, T, I] (batch first, zero initial state): the hidden
/// states h [B, T, H]. Gates as PyTorch's nn.LSTM, in blocks of H columns
/// i, f, g, o: w_x [I, 4H], w_h [H, 4H], b [4H] (PyTorch's b_ih + b_hh).
/// The op node (`lstm`) outputs a workspace [B, T, 6H] that backward reads
/// (h, cell states and gate activations; see ops/rnn.cpp); the returned h
/// is a `slice` of it. The last step: models::last_step(h).
expr lstm(expr x, expr w_x, expr w_h, expr b);
/// A GRU over x [B, T, I] (batch first, zero initial state): h [B, T, H].
/// PyTorch's nn.GRU: gates r, z, n with w_x [I, 3H], w_h [H, 3H], b_x [3H],
/// b_h [3H]; n = tanh(x W_xn + b_xn + r (h W_hn + b_hn)),
/// h' = (1 - z) n + z h. The op node (`gru`) outputs a workspace [B, T, 5H];
/// h is a `slice` of it.
expr gru(expr x, expr w_x, expr w_h, expr b_x, expr b_h);

// normalization
/// Options of batch_norm (PyTorch's defaults).
struct batch_norm_options {
  double eps = 1e-5;      ///< added to the variance
  double momentum = 0.1;  ///< weight of the batch in the running statistics' update
};
/// Batch normalization of x [N, C] or [N, C, H, W] per channel (dim 1):
/// y = (x - mean) / sqrt(var + eps) * gamma + beta, gamma and beta [C].
/// Training (run_options::training): mean and biased variance of the batch
/// (over N, or N H W), and the running statistics are updated in place,
///   running = (1 - momentum) running + momentum batch
/// (the unbiased variance for running_var), as in PyTorch; inference: the
/// running statistics. running_mean and running_var [C] must be
/// non-trainable variables (checkpoints keep them, optimizers skip them);
/// models::batch_norm_layer makes all four variables. Gradients flow to x,
/// gamma and beta. f32 normalizes with oneDNN on the CPU.
expr batch_norm(expr x, expr gamma, expr beta, expr running_mean, expr running_var,
                const batch_norm_options& o = {});

// layer normalization and attention
/// Layer normalization over the last axis of x [..., D]:
/// (x - mean) / sqrt(var + eps) * gamma + beta with gamma, beta [D] and the
/// biased variance, as in PyTorch. f32 runs oneDNN's layer normalization.
expr layer_norm(expr x, expr gamma, expr beta, double eps = 1e-5);
/// Options of scaled dot-product attention.
struct attention_options {
  /// Optional, broadcast (right-aligned) to the scores [B, heads, Tq, Tk]:
  /// u8 = boolean (nonzero: may attend), or q's float dtype = added to the
  /// scaled scores (use -inf or a large negative number to block).
  expr mask = {};
  /// Query i attends to keys j <= i only (top-left aligned, PyTorch's is_causal).
  bool causal = false;
  /// Multiplies q k^T; 0 = 1 / sqrt(d).
  double scale = 0;
};
/// softmax(q k^T * scale + mask) over the keys, fused in one op
/// (attention_probs) for q [B, heads, Tq, d] and k [B, heads, Tk, d]:
/// [B, heads, Tq, Tk]. A query with no key left to attend to gets zeros.
expr attention_probs(expr q, expr k, const attention_options& o = {});
/// Scaled dot-product attention: attention_probs(q, k) times v [B, heads,
/// Tk, dv] (a batch_matmul): [B, heads, Tq, dv]. The backward pass reuses
/// the probabilities. Tq, Tk, heads and dv must be known.
expr attention(expr q, expr k, expr v, const attention_options& o = {});

// reductions; empty axes = all axes
expr sum(expr x, std::vector<int64_t> axes = {}, bool keepdims = false);
expr mean(expr x, std::vector<int64_t> axes = {}, bool keepdims = false);
expr max(expr x, std::vector<int64_t> axes = {}, bool keepdims = false);
expr min(expr x, std::vector<int64_t> axes = {}, bool keepdims = false);
/// Euclidean norm over the axes.
expr norm(expr x, std::vector<int64_t> axes = {}, bool keepdims = false);
/// Index (i64) of the largest element along an axis.
expr argmax(expr x, int64_t axis = -1, bool keepdims = false);
/// Sums x down to ref's shape (the inverse of broadcasting).
expr sum_to_like(expr x, expr ref);

// shape
/// New shape; one dim may be -1 (inferred).
expr reshape(expr x, luoshu::shape s);
expr reshape_like(expr x, expr ref);
/// Permutes axes; empty perm reverses them.
expr transpose(expr x, std::vector<int64_t> perm = {});
expr concat(const std::vector<expr>& xs, int64_t axis = 0);
/// Splits into pieces of the given sizes along an axis (one slice each).
std::vector<expr> split(expr x, const std::vector<int64_t>& sizes, int64_t axis = 0);
/// x[begins[i]:ends[i]] per axis; negative values count from the end, and
/// an end of shape::unknown (-1 is not special: use INT64_MAX) means "to the end".
expr slice(expr x, std::vector<int64_t> begins, std::vector<int64_t> ends);
expr pad(expr x, std::vector<int64_t> before, std::vector<int64_t> after, double value = 0);
expr broadcast_to(expr x, luoshu::shape s);
expr broadcast_like(expr x, expr ref);
expr squeeze(expr x, std::vector<int64_t> axes = {});
expr unsqueeze(expr x, std::vector<int64_t> axes);
/// Slices of x along `axis` picked by integer indices; output shape is
/// x.shape[:axis] + indices.shape + x.shape[axis+1:].
expr gather(expr x, expr indices, int64_t axis = 0);
expr one_hot(expr indices, int64_t depth, dtype t = dtype::f32);

// embeddings and regularisation
/// Rows of table [n, d] picked by integer ids [...]: output [..., d]. Its
/// gradient w.r.t. the table is sparse (the touched rows only).
expr embedding(expr table, expr ids);
/// Options of embedding_bag.
struct embedding_bag_options {
  bool mean = false; ///< average the bag's rows (else sum them)
  /// Ids equal to this one add nothing and are not counted by the mean.
  std::optional<int64_t> padding_id = {};
};
/// Bags of rows of table [n, d]: ids [B, L] (B bags of L ids, i32 or i64)
/// -> [B, d], each bag's rows summed or averaged; a bag of padding only is
/// zero. Any other id outside [0, n) is an error naming it. The table's
/// gradient is sparse like embedding()'s: one row per id, padding positions
/// given (with zero values) to a row the batch reads anyway, so padding
/// touches no other row (a batch of padding only gives zeros for row 0).
expr embedding_bag(expr table, expr ids, const embedding_bag_options& o = {});
/// Zeroes elements with probability `rate` while training and scales the
/// rest by 1/(1-rate); identity in inference mode. The mask depends on the
/// seed and the step number only.
expr dropout(expr x, double rate, uint64_t seed);

// losses (per example unless `mean`) and metrics
/// Cross-entropy of softmax(logits [n, c]) against integer labels [n]: [n].
expr softmax_cross_entropy(expr logits, expr labels);
/// Elementwise binary cross-entropy of sigmoid(logits) against targets in [0, 1].
/// mse_loss, l1_loss and huber_loss are elementwise too: take mean() of them.
expr bce_with_logits(expr logits, expr targets);
expr mse_loss(expr pred, expr target);
expr l1_loss(expr pred, expr target);
expr huber_loss(expr pred, expr target, double delta = 1.0);
/// Fraction (f32 scalar) of rows whose argmax equals the label.
expr accuracy(expr logits, expr labels);

} // namespace luoshu
