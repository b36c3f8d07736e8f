#pragma once
// Small building blocks of the model zoo.

#include <climits>
#include <cmath>
#include <string>
#include <vector>

#include "graph/builder.hpp"
#include "graph/error.hpp"
#include "graph/transformer.hpp" // multi_head_attention, transformer_encoder_layer, transformer_classifier

namespace luoshu::models {

/// A multilayer perceptron on x [?, in]: linear layers of the given widths
/// (variables w1, b1, w2, b2, ... after `prefix`, with He-uniform weights
/// and zero biases) with relu between them; returns the last layer's
/// output (the logits).
inline expr mlp(expr x, const std::vector<int64_t>& widths, const std::string& prefix = "") {
  graph& g = x.g();
  expr h = x;
  int64_t in = x.shape()[x.shape().rank() - 1];
  for (size_t i = 0; i < widths.size(); ++i) {
    std::string k = std::to_string(i + 1);
    h = linear(h, g.variable(prefix + "w" + k, {in, widths[i]}, init::he_uniform()), g.variable(prefix + "b" + k, {widths[i]}, init::zeros()));
    if (i + 1 < widths.size()) h = relu(h);
    in = widths[i];
  }
  return h;
}

/// An LSTM layer over x [B, T, I]: h [B, T, hidden]. Creates the variables
/// `prefix`w_x [I, 4 hidden], `prefix`w_h [hidden, 4 hidden] and `prefix`b
/// [4 hidden], all drawn from U(-1/sqrt(hidden), 1/sqrt(hidden)) as PyTorch
/// does (PyTorch's two biases b_ih + b_hh are the one b here), in x's dtype.
inline expr lstm_layer(expr x, int64_t hidden, const std::string& prefix) {
  graph& g = x.g();
  const int64_t in = x.shape()[x.shape().rank() - 1];
  const double k = 1.0 / std::sqrt(static_cast<double>(hidden > 0 ? hidden : 1));
  return lstm(x, g.variable(prefix + "w_x", {in, 4 * hidden}, init::uniform(-k, k), x.type()),
              g.variable(prefix + "w_h", {hidden, 4 * hidden}, init::uniform(-k, k), x.type()),
              g.variable(prefix + "b", {4 * hidden}, init::uniform(-k, k), x.type()));
}

/// A GRU layer over x [B, T, I]: h [B, T, hidden]. Creates `prefix`w_x
/// [I, 3 hidden], `prefix`w_h [hidden, 3 hidden], `prefix`b_x and
/// `prefix`b_h [3 hidden], all U(-1/sqrt(hidden), 1/sqrt(hidden)) (PyTorch's
/// initialization), in x's dtype.
inline expr gru_layer(expr x, int64_t hidden, const std::string& prefix) {
  graph& g = x.g();
  const int64_t in = x.shape()[x.shape().rank() - 1];
  const double k = 1.0 / std::sqrt(static_cast<double>(hidden > 0 ? hidden : 1));
  return gru(x, g.variable(prefix + "w_x", {in, 3 * hidden}, init::uniform(-k, k), x.type()),
             g.variable(prefix + "w_h", {hidden, 3 * hidden}, init::uniform(-k, k), x.type()),
             g.variable(prefix + "b_x", {3 * hidden}, init::uniform(-k, k), x.type()),
             g.variable(prefix + "b_h", {3 * hidden}, init::uniform(-k, k), x.type()));
}

/// The last step of a sequence seq [B, T, H]: [B, H] (a slice of step
/// T - 1 and a reshape; only [B, H] is copied).
inline expr last_step(expr seq) {
  if (seq.shape().rank() != 3)
    throw luoshu_error("last_step needs a sequence [batch, steps, features], got " + seq.shape().to_string());
  const int64_t f = seq.shape()[2];
  return reshape(slice(seq, {0, -1, 0}, {INT64_MAX, INT64_MAX, INT64_MAX}), shape{-1, f});
}

/// Batch normalization of x [N, C] or [N, C, H, W] with its own variables
/// (C from x's shape, x's dtype): `prefix` + "gamma" (ones) and "beta"
/// (zeros), trainable; "running_mean" (zeros) and "running_var" (ones),
/// non-trainable, updated while training. Each data-parallel replica
/// normalizes with its own share of the batch and keeps its own running
/// statistics (no cross-replica synchronization).
inline expr batch_norm_layer(expr x, const std::string& prefix, const batch_norm_options& o = {}) {
  graph& g = x.g();
  if (x.shape().rank() != 2 && x.shape().rank() != 4)
    throw luoshu_error("batch_norm_layer '" + prefix + "': input must be [N, C] or [N, C, H, W], got " +
                       x.shape().to_string());
  const int64_t c = x.shape()[1];
  if (c <= 0)
    throw luoshu_error("batch_norm_layer '" + prefix + "': the channel count (dim 1) must be known, got " +
                       x.shape().to_string());
  const shape s{c};
  // One statement each: the variables are created in this order.
  expr gamma = g.variable(prefix + "gamma", s, init::constant(1), x.type());
  expr beta = g.variable(prefix + "beta", s, init::zeros(), x.type());
  expr mean = g.variable(prefix + "running_mean", s, init::zeros(), x.type(), false);
  expr var = g.variable(prefix + "running_var", s, init::constant(1), x.type(), false);
  return batch_norm(x, gamma, beta, mean, var, o);
}

/// The shape of a small ResNet for small images (He et al., 2016, section
/// 4.2: CIFAR-10 ResNets; 6 blocks + 2 layers: blocks 1 = ResNet-8,
/// 3 = ResNet-20).
struct resnet_options {
  int64_t classes = 10;
  /// Width of each stage; every stage after the first halves the image
  /// (a stride-2 first convolution).
  std::vector<int64_t> channels{16, 32, 64};
  /// Basic residual blocks per stage.
  int64_t blocks = 1;
  batch_norm_options bn = {};
};

/// A ResNet on images x [N, C, H, W]; returns the logits [N, classes]:
///   stem: conv3x3 (pad 1, no bias) - batch norm - relu;
///   stages of basic blocks: conv3x3 - bn - relu - conv3x3 - bn, plus the
///     shortcut (identity, or conv1x1 - bn where the shape changes), relu;
///   global average pooling, linear classifier.
/// Variables after `prefix`: stem/conv/w, stem/bn/..., stageS/blockB/conv1/w,
/// .../bn1/..., .../conv2/w, .../bn2/..., .../shortcut/w, .../shortcut/bn/...,
/// fc/w, fc/b; convolution weights He-normal, the classifier Xavier.
inline expr resnet(expr x, const resnet_options& o = {}, const std::string& prefix = "") {
  graph& g = x.g();
  if (x.shape().rank() != 4 || x.shape()[1] <= 0)
    throw luoshu_error("resnet: input must be images [N, C, H, W] with known channels, got " + x.shape().to_string());
  if (o.channels.empty()) throw luoshu_error("resnet: channels must name at least one stage");
  for (int64_t c : o.channels)
    if (c <= 0) throw luoshu_error("resnet: every stage's channel count must be positive, got " + std::to_string(c));
  if (o.blocks < 1) throw luoshu_error("resnet: blocks per stage must be >= 1, got " + std::to_string(o.blocks));
  if (o.classes < 1) throw luoshu_error("resnet: classes must be >= 1, got " + std::to_string(o.classes));
  auto conv = [&](expr in, const std::string& name, int64_t out, int64_t k, int64_t stride) {
    expr w = g.variable(prefix + name + "/w", {out, in.shape()[1], k, k}, init::he_normal(), x.type());
    return conv2d(in, w, {.stride = {stride, stride}, .padding = {k / 2, k / 2}});
  };
  auto bn = [&](expr in, const std::string& name) { return batch_norm_layer(in, prefix + name + "/", o.bn); };

  expr h = relu(bn(conv(x, "stem/conv", o.channels[0], 3, 1), "stem/bn"));
  for (size_t s = 0; s < o.channels.size(); ++s) {
    for (int64_t b = 0; b < o.blocks; ++b) {
      const std::string name = "stage" + std::to_string(s + 1) + "/block" + std::to_string(b + 1) + "/";
      const int64_t out = o.channels[s], stride = s > 0 && b == 0 ? 2 : 1;
      expr r = relu(bn(conv(h, name + "conv1", out, 3, stride), name + "bn1"));
      r = bn(conv(r, name + "conv2", out, 3, 1), name + "bn2");
      expr shortcut = h;
      if (stride != 1 || h.shape()[1] != out) shortcut = bn(conv(h, name + "shortcut", out, 1, stride), name + "shortcut/bn");
      h = relu(r + shortcut);
    }
  }
  expr pooled = mean(h, {2, 3}); // [N, C]
  const int64_t c = o.channels.back();
  expr w = g.variable(prefix + "fc/w", {c, o.classes}, init::xavier_uniform(), x.type());
  expr b = g.variable(prefix + "fc/b", {o.classes}, init::zeros(), x.type());
  return linear(pooled, w, b);
}

/// The shape of a Wide&Deep CTR model (Cheng et al., 2016).
struct wide_deep_options {
  /// Rows of both embedding tables: every id must be in [0, buckets).
  int64_t buckets = 1'000'000;
  /// Width of the deep part's embeddings.
  int64_t embedding_dim = 16;
  /// The deep MLP's hidden widths (a final 1-unit layer is added).
  std::vector<int64_t> hidden{256, 128};
};

/// Wide&Deep logits [?] from dense features [?, d] (f32) and categorical
/// ids [?, fields] (i64, one id space shared by the fields):
///   wide: the sum over fields of a scalar weight per id (table wide/emb
///         [buckets, 1], zeros) plus a linear map of the dense features
///         (wide/w [d, 1], wide/b [1]);
///   deep: per-field embeddings (deep/emb [buckets, dim], U(-0.05, 0.05))
///         concatenated with the dense features, into an MLP (deep/w1,
///         deep/b1, ...) of widths hidden + {1}.
/// Both tables are read through embedding(), so their gradients are
/// sparse and optimizers update the touched rows only. Train it with
/// bce_with_logits against 0/1 labels.
inline expr wide_deep(expr dense, expr ids, const wide_deep_options& o = {}) {
  graph& g = dense.g();
  const int64_t d = dense.shape()[dense.shape().rank() - 1];
  const int64_t fields = ids.shape()[ids.shape().rank() - 1];
  expr wide_table = g.variable("wide/emb", {o.buckets, 1}, init::zeros());
  expr wide = sum(embedding(wide_table, ids), {1, 2}) +
              reshape(linear(dense, g.variable("wide/w", {d, 1}, init::zeros()),
                             g.variable("wide/b", {1}, init::zeros())),
                      shape{-1});
  expr deep_table = g.variable("deep/emb", {o.buckets, o.embedding_dim}, init::uniform(-0.05, 0.05));
  expr deep_in = concat({reshape(embedding(deep_table, ids), shape{-1, fields * o.embedding_dim}), dense}, 1);
  std::vector<int64_t> widths = o.hidden;
  widths.push_back(1);
  return wide + reshape(mlp(deep_in, widths, "deep/"), shape{-1});
}

/// The shape of the DeepFM and DCN CTR models (the fields share one id space).
struct ctr_options {
  int64_t buckets = 1'000'000;           ///< embedding rows: every id must be in [0, buckets)
  int64_t embedding_dim = 16;            ///< width of each field's embedding
  std::vector<int64_t> hidden{256, 128}; ///< the deep MLP's hidden widths
  int64_t cross_layers = 3;              ///< DCN only: cross layers
};

/// Per-field embeddings [?, fields, dim] of ids [?, fields] from table
/// `name` [buckets, dim] (U(-0.05, 0.05); read through embedding(), so the
/// gradient is sparse and optimizers touch only the looked-up rows).
inline expr field_embeddings(expr ids, const std::string& name, int64_t buckets, int64_t dim) {
  return embedding(ids.g().variable(name, {buckets, dim}, init::uniform(-0.05, 0.05)), ids);
}

/// DeepFM logits [?] (Guo et al., 2017) from dense features [?, d] (f32)
/// and categorical ids [?, fields] (i64):
///   first order: a scalar weight per id (fm/w_ids [buckets, 1], zeros)
///     summed over fields, plus a linear map of the dense features
///     (fm/w_dense [d, 1], fm/b [1]);
///   second order (FM): the pairwise dot products of the field embeddings
///     (emb [buckets, dim]), as 0.5 * sum_k((sum_f v_fk)^2 - sum_f v_fk^2);
///   deep: the same embeddings, flattened and concatenated with the dense
///     features, into an MLP (deep/w1, deep/b1, ...) of widths hidden + {1}.
/// Train it with bce_with_logits against 0/1 labels.
inline expr deepfm(expr dense, expr ids, const ctr_options& o = {}) {
  graph& g = dense.g();
  const int64_t d = dense.shape()[dense.shape().rank() - 1];
  const int64_t fields = ids.shape()[ids.shape().rank() - 1];
  expr first = sum(embedding(g.variable("fm/w_ids", {o.buckets, 1}, init::zeros()), ids), {1, 2}) +
               reshape(linear(dense, g.variable("fm/w_dense", {d, 1}, init::zeros()), g.variable("fm/b", {1}, init::zeros())),
                       shape{-1});
  expr v = field_embeddings(ids, "emb", o.buckets, o.embedding_dim); // [?, fields, dim]
  expr second = sum(square(sum(v, {1})) - sum(square(v), {1}), {1}) * 0.5;
  std::vector<int64_t> widths = o.hidden;
  widths.push_back(1);
  expr deep_in = concat({reshape(v, shape{-1, fields * o.embedding_dim}), dense}, 1);
  return first + second + reshape(mlp(deep_in, widths, "deep/"), shape{-1});
}

/// DCN logits [?] (Deep & Cross Network, Wang et al., 2017) from dense
/// features [?, d] and categorical ids [?, fields]: x0 = the flattened
/// field embeddings (emb [buckets, dim]) and the dense features [?, n];
///   cross: x_{l+1} = x0 * (x_l w_l) + b_l + x_l, w_l [n, 1], b_l [n]
///     (cross/w1, cross/b1, ...; cross_layers of them);
///   deep: an MLP of widths hidden on x0 (relu after every layer);
///   output: a linear layer (out/w, out/b) on [x_L, deep].
inline expr dcn(expr dense, expr ids, const ctr_options& o = {}) {
  graph& g = dense.g();
  const int64_t fields = ids.shape()[ids.shape().rank() - 1];
  expr emb = field_embeddings(ids, "emb", o.buckets, o.embedding_dim);
  expr x0 = concat({reshape(emb, shape{-1, fields * o.embedding_dim}), dense}, 1);
  const int64_t n = x0.shape()[1];
  expr x = x0;
  for (int64_t l = 1; l <= o.cross_layers; ++l) {
    std::string k = std::to_string(l);
    x = x0 * matmul(x, g.variable("cross/w" + k, {n, 1}, init::uniform(-0.05, 0.05))) +
        g.variable("cross/b" + k, {n}, init::zeros()) + x;
  }
  expr deep = o.hidden.empty() ? x0 : relu(mlp(x0, o.hidden, "deep/"));
  const int64_t width = n + (o.hidden.empty() ? n : o.hidden.back());
  return reshape(linear(concat({x, deep}, 1), g.variable("out/w", {width, 1}, init::he_uniform()),
                        g.variable("out/b", {1}, init::zeros())),
                 shape{-1});
}

} // namespace luoshu::models
