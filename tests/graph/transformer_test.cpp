// Tests of the Transformer building blocks (graph/transformer.hpp):
// multi-head attention against a plain-loop reference on the variables'
// values, encoder-layer gradients (pre- and post-LN) against finite
// differences, dropout in training vs inference, and errors.

#include "graph/transformer.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "graph/autodiff.hpp"
#include "graph/executor.hpp"
#include "graph/variables.hpp"
#include "ops/kernel.hpp"

namespace luoshu {
namespace {

kernel_registry cpu_kernels() {
  kernel_registry r;
  cpu::register_kernels(r);
  return r;
}

std::vector<double> wave(size_t n, double f) {
  std::vector<double> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = std::sin(f * static_cast<double>(i + 1)) * 0.8;
  return v;
}

/// x [rows, in] W [in, out] + b for row-major vectors.
std::vector<double> affine(const std::vector<double>& x, int64_t rows, int64_t in, const std::vector<double>& w,
                           const std::vector<double>& b, int64_t out) {
  std::vector<double> y(static_cast<size_t>(rows * out));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t o = 0; o < out; ++o) {
      double s = b[static_cast<size_t>(o)];
      for (int64_t i = 0; i < in; ++i) s += x[static_cast<size_t>(r * in + i)] * w[static_cast<size_t>(i * out + o)];
      y[static_cast<size_t>(r * out + o)] = s;
    }
  return y;
}

TEST(MultiHeadAttention, MatchesAPlainLoopReferenceWithAKeyPaddingMask) {
  const int64_t b = 2, tq = 3, tk = 4, dq = 3, dkv = 5, d = 4, heads = 2, dh = 2;
  graph g;
  expr xq = g.placeholder("xq", dtype::f64, {-1, tq, dq});
  expr xkv = g.placeholder("xkv", dtype::f64, {-1, tk, dkv});
  expr keep = g.placeholder("keep", dtype::u8, {-1, 1, 1, tk});
  expr y = models::multi_head_attention(xq, xkv, heads, d, "mha/", keep);
  ASSERT_EQ(y.shape(), (shape{-1, tq, d}));
  std::vector<double> xq_v = wave(b * tq * dq, 0.7), xkv_v = wave(b * tk * dkv, 1.3);
  const std::vector<uint8_t> keep_v{1, 1, 1, 1, 1, 0, 1, 0}; // batch 1 ignores keys 1 and 3
  auto kr = cpu_kernels();
  variable_store vars(/*seed=*/3);
  executor ex(g, vars, kr);
  auto r = ex.run({{xq, tensor::from<double>({b, tq, dq}, xq_v)},
                   {xkv, tensor::from<double>({b, tk, dkv}, xkv_v)},
                   {keep, tensor::from<uint8_t>({b, 1, 1, tk}, keep_v)}},
                  {y});
  ASSERT_TRUE(r.ok()) << r.err().message;
  auto var = [&](const std::string& n) { return vars.get("mha/" + n).to_doubles(); };
  for (const char* n : {"bq", "bk", "bv", "bo"}) EXPECT_EQ(var(n), std::vector<double>(static_cast<size_t>(d), 0.0)) << n;

  std::vector<double> want;
  for (int64_t bi = 0; bi < b; ++bi) {
    std::vector<double> xq_b(xq_v.begin() + bi * tq * dq, xq_v.begin() + (bi + 1) * tq * dq);
    std::vector<double> xkv_b(xkv_v.begin() + bi * tk * dkv, xkv_v.begin() + (bi + 1) * tk * dkv);
    auto q = affine(xq_b, tq, dq, var("wq"), var("bq"), d);
    auto k = affine(xkv_b, tk, dkv, var("wk"), var("bk"), d);
    auto v = affine(xkv_b, tk, dkv, var("wv"), var("bv"), d);
    std::vector<double> merged(static_cast<size_t>(tq * d), 0.0);
    for (int64_t h = 0; h < heads; ++h)
      for (int64_t i = 0; i < tq; ++i) {
        std::vector<double> p(static_cast<size_t>(tk));
        double total = 0;
        for (int64_t j = 0; j < tk; ++j) {
          double s = 0;
          for (int64_t e = 0; e < dh; ++e)
            s += q[static_cast<size_t>(i * d + h * dh + e)] * k[static_cast<size_t>(j * d + h * dh + e)];
          p[static_cast<size_t>(j)] = keep_v[static_cast<size_t>(bi * tk + j)] ? std::exp(s / std::sqrt(2.0)) : 0.0;
          total += p[static_cast<size_t>(j)];
        }
        for (int64_t e = 0; e < dh; ++e) {
          double o = 0;
          for (int64_t j = 0; j < tk; ++j) o += p[static_cast<size_t>(j)] / total * v[static_cast<size_t>(j * d + h * dh + e)];
          merged[static_cast<size_t>(i * d + h * dh + e)] = o;
        }
      }
    auto out = affine(merged, tq, d, var("wo"), var("bo"), d);
    want.insert(want.end(), out.begin(), out.end());
  }
  std::vector<double> got = (*r)[0].to_doubles();
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], want[i], 1e-12) << i;
}

/// loss = sum(layer(x) * R); analytic gradients w.r.t. x and some variables
/// against central differences.
void check_encoder_gradients(bool pre_norm) {
  const int64_t b = 2, t = 3, d = 4;
  graph g;
  expr x = g.placeholder("x", dtype::f64, {b, t, d});
  expr mask = g.placeholder("mask", dtype::f64, {t, t}); // additive, causal-like
  models::transformer_options o{.d_model = d, .heads = 2, .ffn = 6, .dropout = 0, .pre_norm = pre_norm};
  expr y = models::transformer_encoder_layer(x, o, "enc/", mask);
  ASSERT_EQ(y.shape(), (shape{b, t, d}));
  expr loss = sum(y * g.constant(tensor::from<double>({b, t, d}, wave(b * t * d, 2.1))));
  const std::vector<std::string> names{"enc/attn/wq", "enc/attn/wv", "enc/ln1/gamma", "enc/ffn/w1", "enc/ln2/beta"};
  std::vector<expr> wrt{x};
  for (const auto& n : names) wrt.push_back(g.find(n));
  auto grads = gradients(loss, wrt);
  std::vector<expr> fetch;
  for (size_t i = 0; i < grads.size(); ++i) fetch.push_back(grads[i].densified(wrt[i]));
  auto kr = cpu_kernels();
  variable_store vars(/*seed=*/5);
  executor ex(g, vars, kr);
  feed_map feeds{{x, tensor::from<double>({b, t, d}, wave(b * t * d, 0.9))},
                 {mask, tensor::from<double>({t, t}, {0, -1e9, -1e9, 0, 0, -1e9, 0, 0, 0})}};
  auto r = ex.run(feeds, fetch);
  ASSERT_TRUE(r.ok()) << r.err().message;
  auto loss_now = [&] {
    auto l = ex.run(feeds, {loss});
    EXPECT_TRUE(l.ok()) << l.err().message;
    return l.ok() ? (*l)[0].item() : 0.0;
  };
  const double eps = 1e-6;
  for (size_t w = 0; w < wrt.size(); ++w) {
    std::vector<double> analytic = (*r)[w].to_doubles(), numeric;
    for (size_t i = 0; i < analytic.size(); ++i) {
      auto bump = [&](double delta) {
        if (w == 0) {
          feeds[0].second.data<double>()[i] += delta;
        } else {
          tensor v = vars.get(names[w - 1]);
          v.data<double>()[i] += delta;
        }
      };
      bump(eps);
      double up = loss_now();
      bump(-2 * eps);
      double down = loss_now();
      bump(eps);
      numeric.push_back((up - down) / (2 * eps));
    }
    double num = 0, den = 0;
    for (size_t i = 0; i < analytic.size(); ++i) {
      num += (analytic[i] - numeric[i]) * (analytic[i] - numeric[i]);
      den += numeric[i] * numeric[i];
    }
    EXPECT_GT(den, 0) << (w == 0 ? "x" : names[w - 1]);
    EXPECT_LE(std::sqrt(num / den), 1e-6) << (pre_norm ? "pre-LN " : "post-LN ") << (w == 0 ? "x" : names[w - 1]);
  }
}

TEST(TransformerEncoderLayer, PreNormGradientsMatchFiniteDifferences) { check_encoder_gradients(true); }
TEST(TransformerEncoderLayer, PostNormGradientsMatchFiniteDifferences) { check_encoder_gradients(false); }

TEST(TransformerEncoderLayer, DropoutActsOnlyWhileTraining) {
  graph g;
  expr x = g.placeholder("x", dtype::f32, {2, 5, 8});
  expr with = models::transformer_encoder_layer(x, {.d_model = 8, .heads = 2, .ffn = 16, .dropout = 0.5}, "a/");
  expr without = models::transformer_encoder_layer(x, {.d_model = 8, .heads = 2, .ffn = 16, .dropout = 0}, "b/");
  auto kr = cpu_kernels();
  variable_store vars(/*seed=*/7);
  executor ex(g, vars, kr);
  ASSERT_TRUE(vars.initialize(g).ok());
  for (const char* n : {"attn/wq", "attn/wk", "attn/wv", "attn/wo", "ffn/w1", "ffn/w2"}) // the same weights
    vars.set(std::string("b/") + n, vars.get(std::string("a/") + n));
  std::vector<double> xv = wave(80, 0.37);
  feed_map feeds{{x, tensor::from<float>({2, 5, 8}, std::vector<float>(xv.begin(), xv.end()))}};
  auto infer = ex.run(feeds, {with, without}, {}, {.training = false});
  auto train = ex.run(feeds, {with, without}, {}, {.training = true});
  ASSERT_TRUE(infer.ok() && train.ok());
  EXPECT_EQ((*infer)[0].to_doubles(), (*infer)[1].to_doubles());
  EXPECT_NE((*train)[0].to_doubles(), (*train)[1].to_doubles());
}

TEST(Transformer, ErrorsNameTheBlockAndTheProblem) {
  graph g;
  expr x = g.placeholder("x", dtype::f32, {-1, 5, 8});
  auto expect_error = [](auto f, const std::string& want) {
    try {
      f();
      ADD_FAILURE() << "no error; wanted " << want;
    } catch (const luoshu_error& e) {
      EXPECT_NE(std::string(e.what()).find(want), std::string::npos) << e.what();
    }
  };
  expect_error([&] { models::multi_head_attention(x, x, 3, 8, "m/"); },
               "multi_head_attention 'm/': d_model 8 must be a positive multiple of heads 3");
  expect_error([&] { models::multi_head_attention(g.placeholder("flat", dtype::f32, {-1, 8}), x, 2, 8, "m2/"); },
               "needs tokens [batch, T, features] (rank 3), got [?, 8]");
  expect_error([&] { models::transformer_encoder_layer(x, {.d_model = 16}, "e/"); },
               "transformer_encoder_layer 'e/': tokens have 8 features, d_model is 16");
  expect_error([&] { models::transformer_encoder_layer(x, {.d_model = 8, .heads = 2, .dropout = 1}, "e2/"); },
               "dropout must be in [0, 1), got 1");
  expect_error([&] { models::transformer_classifier(g.placeholder("any", dtype::f32, {-1, -1, 8}), {}); },
               "needs a known sequence length");
  expect_error([&] { models::transformer_classifier(x, {.layers = 0}); }, "needs at least one encoder layer");
}

/// A key-padding mask hides the padded tokens from the classifier's pooling
/// as well as from attention: what stands in them does not change the
/// logits, with a u8 mask and with an additive one. Without a mask (or with
/// one that depends on the query) every token is pooled: there it does.
TEST(Transformer, ClassifierPoolsOnlyTheTokensAKeyPaddingMaskKeeps) {
  const int64_t b = 2, t = 4, f = 3;
  // Sequence 0 keeps 3 tokens, sequence 1 keeps 2.
  const std::vector<double> keep{1, 1, 1, 0, 1, 1, 0, 0};
  std::vector<double> x1 = wave(b * t * f, 0.7);
  std::vector<double> x2 = x1; // other values in the padded tokens only
  for (int64_t s = 0; s < b; ++s)
    for (int64_t k = 0; k < t; ++k)
      if (keep[static_cast<size_t>(s * t + k)] == 0)
        for (int64_t c = 0; c < f; ++c) x2[static_cast<size_t>((s * t + k) * f + c)] += 3.0 + static_cast<double>(c);
  models::transformer_classifier_options o{.layer = {.d_model = 4, .heads = 2, .ffn = 6, .dropout = 0},
                                           .layers = 1, .outputs = 3};
  auto kr = cpu_kernels();
  // Logits for x1 and x2 with a mask placeholder of mv's dtype and shape
  // (null: no mask).
  auto logits = [&](const tensor* mv) {
    graph g;
    expr x = g.placeholder("x", dtype::f64, {-1, t, f});
    expr mask = mv ? g.placeholder("mask", mv->type(), mv->shape()) : expr();
    expr y = models::transformer_classifier(x, o, "c/", mask);
    variable_store vars(/*seed=*/3);
    executor ex(g, vars, kr);
    std::vector<std::vector<double>> out;
    for (const std::vector<double>* in : {&x1, &x2}) {
      feed_map feeds{{x, tensor::from<double>({b, t, f}, *in)}};
      if (mv) feeds.emplace_back(mask, *mv);
      auto r = ex.run(feeds, {y});
      EXPECT_TRUE(r.ok()) << r.err().message;
      out.push_back(r.ok() ? (*r)[0].to_doubles() : std::vector<double>{});
    }
    return out;
  };
  std::vector<uint8_t> keep_u8(keep.begin(), keep.end());
  keep_u8[1] = 7; // any nonzero value keeps
  std::vector<double> bias(keep.size());
  for (size_t i = 0; i < keep.size(); ++i) bias[i] = keep[i] != 0 ? 0.0 : -1e9;
  const tensor mask_u8 = tensor::from<uint8_t>({b, 1, 1, t}, keep_u8);
  const tensor mask_add = tensor::from<double>({b, 1, 1, t}, bias);
  const auto u8 = logits(&mask_u8);
  const auto add = logits(&mask_add);
  const auto none = logits(nullptr);
  ASSERT_EQ(u8[0].size(), static_cast<size_t>(b * 3));
  for (size_t i = 0; i < u8[0].size(); ++i) {
    EXPECT_NEAR(u8[0][i], u8[1][i], 1e-12) << "u8 mask, logit " << i;
    EXPECT_NEAR(add[0][i], add[1][i], 1e-12) << "additive mask, logit " << i;
    EXPECT_NEAR(u8[0][i], add[0][i], 1e-12) << "u8 vs additive mask, logit " << i;
  }
  // The same key-padding mask for every sequence, as [T] (broadcast like
  // attention's): x3 differs from x1 in tokens 2 and 3 of both sequences.
  std::vector<double> x3 = x1;
  for (int64_t s = 0; s < b; ++s)
    for (int64_t k = 2; k < t; ++k)
      for (int64_t c = 0; c < f; ++c) x3[static_cast<size_t>((s * t + k) * f + c)] -= 2.0;
  x2.swap(x3); // logits() reads x1 and x2
  const tensor mask_t = tensor::from<uint8_t>({t}, {1, 1, 0, 0});
  const auto shared = logits(&mask_t);
  for (size_t i = 0; i < shared[0].size(); ++i) EXPECT_NEAR(shared[0][i], shared[1][i], 1e-12) << "[T] mask, logit " << i;
  x2.swap(x3);

  double moved = 0;
  for (size_t i = 0; i < none[0].size(); ++i) moved = std::max(moved, std::abs(none[0][i] - none[1][i]));
  EXPECT_GT(moved, 1e-3) << "without a mask the padded tokens are pooled too";

  // Training through the masked pooling: the padded tokens get no gradient,
  // the kept ones do.
  graph g;
  expr x = g.placeholder("x", dtype::f64, {-1, t, f});
  expr mask = g.placeholder("mask", dtype::u8, {b, 1, 1, t});
  expr loss = sum(square(models::transformer_classifier(x, o, "c/", mask)));
  expr dx = gradients(loss, {x})[0].densified(x);
  variable_store vars(/*seed=*/3);
  executor ex(g, vars, kr);
  auto r = ex.run({{x, tensor::from<double>({b, t, f}, x1)}, {mask, mask_u8}}, {dx});
  ASSERT_TRUE(r.ok()) << r.err().message;
  const std::vector<double> grad = (*r)[0].to_doubles();
  for (int64_t s = 0; s < b; ++s)
    for (int64_t k = 0; k < t; ++k) {
      double most = 0;
      for (int64_t c = 0; c < f; ++c) most = std::max(most, std::abs(grad[static_cast<size_t>((s * t + k) * f + c)]));
      if (keep[static_cast<size_t>(s * t + k)] == 0) EXPECT_EQ(most, 0.0) << "padded token " << k << " of " << s;
      else EXPECT_GT(most, 0.0) << "kept token " << k << " of " << s;
    }
}

} // namespace
} // namespace luoshu
