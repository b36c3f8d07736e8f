#pragma once
// Transformer building blocks of the model zoo (Vaswani et al., 2017):
// multi-head attention, an encoder layer, and an encoder classifier over
// token sequences. Every function creates its variables under `prefix`
// with the input's dtype: weights Xavier-uniform, biases zero, layer-norm
// gains one and offsets zero.

#include <cstdint>
#include <string>

#include "graph/builder.hpp"

namespace luoshu::models {

/// Multi-head attention of queries x_q [?, Tq, Dq] over keys/values
/// x_kv [?, Tk, Dkv] (pass the same expression twice for self-attention):
/// q, k and v are linear projections to d_model (prefix + wq/bq, wk/bk,
/// wv/bv), split into `heads` heads of d_model / heads (reshape and
/// transpose to [?, heads, T, d_model / heads]), attended to with
/// attention() (scale 1 / sqrt(d_model / heads)), merged back and
/// projected by prefix + wo/bo: [?, Tq, d_model].
/// mask: optional, broadcast to [?, heads, Tq, Tk] (see attention_options;
/// e.g. a key-padding mask [?, 1, 1, Tk] of u8); causal: query i sees
/// keys j <= i only. Tq, Tk and the feature sizes must be known; d_model
/// must be divisible by heads.
expr multi_head_attention(expr x_q, expr x_kv, int64_t heads, int64_t d_model, const std::string& prefix,
                          expr mask = {}, bool causal = false);

/// One Transformer encoder layer's shape and regularisation.
struct transformer_options {
  int64_t d_model = 64; ///< token width (the input's last dim must be d_model)
  int64_t heads = 4;    ///< attention heads; d_model % heads == 0
  int64_t ffn = 128;    ///< feed-forward hidden width
  double dropout = 0.1; ///< on the attention and feed-forward outputs and the feed-forward hidden layer
  /// Pre-LN (x + f(LN(x)), as in GPT-2 and most recent models; trains
  /// without warm-up) or post-LN (LN(x + f(x)), the original paper's).
  bool pre_norm = true;
  double eps = 1e-5;     ///< layer-norm epsilon
  uint64_t seed = 1;     ///< dropout seeds are derived from it and the layer's prefix
};

/// A Transformer encoder layer on x [?, T, d_model]: self-attention
/// (multi_head_attention, variables prefix + "attn/...") and a GELU
/// feed-forward block (prefix + "ffn/w1", b1 [d_model, ffn], w2, b2
/// [ffn, d_model]), each with a residual connection, dropout and layer
/// norm (prefix + "ln1/gamma", "ln1/beta", "ln2/..."). Returns [?, T, d_model].
expr transformer_encoder_layer(expr x, const transformer_options& o, const std::string& prefix, expr mask = {});

/// A Transformer encoder classifier's shape.
struct transformer_classifier_options {
  transformer_options layer = {}; ///< every encoder layer's options
  int64_t layers = 2;        ///< encoder layers
  int64_t outputs = 10;      ///< logits per example (classes)
};

/// Logits [?, outputs] for token sequences x [?, T, F]: each token is
/// projected to d_model (prefix + "embed/w", "embed/b") and a learned
/// positional embedding added (prefix + "pos" [T, d_model], N(0, 0.02)),
/// then dropout and `layers` encoder layers (prefix + "layer1/", ...), a
/// final layer norm with pre-LN (prefix + "final_ln/..."), the mean over the
/// tokens, and a linear head (prefix + "head/w", "head/b"). With a
/// key-padding mask ([?, 1, 1, T], [1, 1, T], [1, T] or [T]: u8 nonzero, or
/// an additive bias above -100, keeps a token) the mean is over the kept
/// tokens only (zeros for a sequence with none); with another mask (one
/// that depends on the query, e.g. [T, T]) it is over every token.
expr transformer_classifier(expr x, const transformer_classifier_options& o, const std::string& prefix = "",
                            expr mask = {});

} // namespace luoshu::models
