#include "graph/transformer.hpp"

#include <cstdint>
#include <vector>

namespace luoshu::models {

namespace {

/// A luoshu_error naming the building block when a condition fails.
void require(bool ok, const std::string& what, const std::string& why) {
  if (!ok) throw luoshu_error(what + ": " + why);
}

/// The last dim of x (known, or an error naming `what`).
int64_t last_dim(expr x, const std::string& what) {
  require(x.valid(), what, "use of an empty expression");
  require(x.shape().rank() == 3, what, "needs tokens [batch, T, features] (rank 3), got " + x.shape().to_string());
  int64_t d = x.shape()[2];
  require(d > 0, what, "needs a known feature size, got " + x.shape().to_string());
  return d;
}

expr dense(expr x, int64_t in, int64_t out, const std::string& prefix, const std::string& w, const std::string& b) {
  graph& g = x.g();
  return linear(x, g.variable(prefix + w, {in, out}, init::xavier_uniform(), x.type()),
                g.variable(prefix + b, {out}, init::zeros(), x.type()));
}

expr norm(expr x, int64_t d, double eps, const std::string& prefix) {
  graph& g = x.g();
  return layer_norm(x, g.variable(prefix + "gamma", {d}, init::constant(1), x.type()),
                    g.variable(prefix + "beta", {d}, init::zeros(), x.type()), eps);
}

/// [?, T, heads * dh] -> [?, heads, T, dh]
expr split_heads(expr x, int64_t t, int64_t heads, int64_t dh) {
  return transpose(reshape(x, shape{-1, t, heads, dh}), {0, 2, 1, 3});
}

/// Dropout with a seed of its own, from the base seed and a name (FNV-1a:
/// the same on every build); identity when the rate is 0.
expr drop(expr x, double rate, uint64_t seed, const std::string& name) {
  if (rate == 0) return x;
  uint64_t h = 1469598103934665603ull ^ seed;
  for (char c : name) h = (h ^ static_cast<uint8_t>(c)) * 1099511628211ull;
  return dropout(x, rate, h);
}

} // namespace

expr multi_head_attention(expr x_q, expr x_kv, int64_t heads, int64_t d_model, const std::string& prefix, expr mask,
                          bool causal) {
  const std::string what = "multi_head_attention '" + prefix + "'";
  int64_t dq = last_dim(x_q, what), dkv = last_dim(x_kv, what);
  require(heads > 0 && d_model > 0 && d_model % heads == 0, what,
          "d_model " + std::to_string(d_model) + " must be a positive multiple of heads " + std::to_string(heads));
  int64_t tq = x_q.shape()[1], tk = x_kv.shape()[1], dh = d_model / heads;
  require(tq > 0 && tk > 0, what,
          "needs known sequence lengths, got " + x_q.shape().to_string() + " and " + x_kv.shape().to_string());
  expr q = split_heads(dense(x_q, dq, d_model, prefix, "wq", "bq"), tq, heads, dh);
  expr k = split_heads(dense(x_kv, dkv, d_model, prefix, "wk", "bk"), tk, heads, dh);
  expr v = split_heads(dense(x_kv, dkv, d_model, prefix, "wv", "bv"), tk, heads, dh);
  expr a = attention(q, k, v, {.mask = mask, .causal = causal});              // [?, heads, Tq, dh]
  expr merged = reshape(transpose(a, {0, 2, 1, 3}), shape{-1, tq, d_model}); // [?, Tq, d_model]
  return dense(merged, d_model, d_model, prefix, "wo", "bo");
}

expr transformer_encoder_layer(expr x, const transformer_options& o, const std::string& prefix, expr mask) {
  const std::string what = "transformer_encoder_layer '" + prefix + "'";
  int64_t d = last_dim(x, what);
  require(d == o.d_model, what, "tokens have " + std::to_string(d) + " features, d_model is " + std::to_string(o.d_model));
  require(o.ffn > 0, what, "ffn must be > 0, got " + std::to_string(o.ffn));
  require(o.dropout >= 0 && o.dropout < 1, what, "dropout must be in [0, 1), got " + std::to_string(o.dropout));
  auto attn = [&](expr h) {
    return drop(multi_head_attention(h, h, o.heads, o.d_model, prefix + "attn/", mask), o.dropout, o.seed,
                prefix + "attn");
  };
  auto ffn = [&](expr h) {
    expr hidden = drop(gelu(dense(h, o.d_model, o.ffn, prefix, "ffn/w1", "ffn/b1")), o.dropout, o.seed, prefix + "ffn1");
    return drop(dense(hidden, o.ffn, o.d_model, prefix, "ffn/w2", "ffn/b2"), o.dropout, o.seed, prefix + "ffn2");
  };
  if (o.pre_norm) {
    expr h = x + attn(norm(x, d, o.eps, prefix + "ln1/"));
    return h + ffn(norm(h, d, o.eps, prefix + "ln2/"));
  }
  expr h = norm(x + attn(x), d, o.eps, prefix + "ln1/");
  return norm(h + ffn(h), d, o.eps, prefix + "ln2/");
}

namespace {

/// The mean of h [?, T, d] over the tokens a key-padding mask keeps (every
/// token without one, or with a mask that depends on the query or head).
expr pool_tokens(expr h, int64_t t, expr mask) {
  if (!mask.valid()) return mean(h, {1});
  // A key-padding mask: broadcast right-aligned to [?, heads, Tq, T] like
  // attention's, it varies along the keys (and the batch) only: [T],
  // [1, T], [1, 1, T], [?, 1, 1, T].
  std::vector<int64_t> ms = mask.shape().dims();
  if (ms.size() > 4) return mean(h, {1});
  ms.insert(ms.begin(), 4 - ms.size(), 1);
  const bool key_padding = ms[3] == t && ms[2] == 1 && ms[1] == 1;
  if (!key_padding) return mean(h, {1});
  graph& g = h.g();
  // Kept: nonzero (u8), or an additive bias above -100 (a key behind -100
  // weighs at most e^-100 of a kept one: blocked, in effect).
  expr keep = mask.type() == dtype::u8 ? not_equal(mask, g.scalar(0, dtype::u8))
                                       : greater(mask, g.scalar(-100, mask.type()));
  expr w = cast(reshape(keep, {ms[0], t, 1}), h.type()); // [?, T, 1]
  // A sequence with no token kept pools to zeros.
  return sum(h * w, {1}) / maximum(sum(w, {1}), g.scalar(1, h.type()));
}

} // namespace

expr transformer_classifier(expr x, const transformer_classifier_options& o, const std::string& prefix, expr mask) {
  const std::string what = "transformer_classifier '" + prefix + "'";
  int64_t f = last_dim(x, what), t = x.shape()[1], d = o.layer.d_model;
  require(t > 0, what, "needs a known sequence length, got " + x.shape().to_string());
  require(d > 0, what, "d_model must be > 0, got " + std::to_string(d));
  require(o.layers > 0, what, "needs at least one encoder layer, got " + std::to_string(o.layers));
  require(o.outputs > 0, what, "outputs must be > 0, got " + std::to_string(o.outputs));
  graph& g = x.g();
  expr h = dense(x, f, d, prefix, "embed/w", "embed/b") +
           g.variable(prefix + "pos", {t, d}, init::normal(0, 0.02), x.type());
  h = drop(h, o.layer.dropout, o.layer.seed, prefix + "embed");
  for (int64_t i = 0; i < o.layers; ++i)
    h = transformer_encoder_layer(h, o.layer, prefix + "layer" + std::to_string(i + 1) + "/", mask);
  if (o.layer.pre_norm) h = norm(h, d, o.layer.eps, prefix + "final_ln/");
  return dense(pool_tokens(h, t, mask), d, o.outputs, prefix, "head/w", "head/b");
}

} // namespace luoshu::models
