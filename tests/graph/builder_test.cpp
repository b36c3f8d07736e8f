// Tests of the graph builder: dtype/shape inference, errors, names.

#include "graph/builder.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace luoshu {
namespace {

constexpr int64_t U = shape::unknown;

/// Runs `f`, expecting a luoshu_error, and returns its message.
template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const luoshu_error& e) {
    return e.what();
  }
  ADD_FAILURE() << "no luoshu_error was thrown";
  return {};
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

TEST(Builder, ElementwiseInfersDtypeAndBroadcastShape) {
  graph g;
  auto x = g.placeholder("x", dtype::f32, {U, 3});
  auto b = g.variable("b", {3}, init::zeros());
  auto col = g.placeholder("col", dtype::f32, {4, 1});
  auto row = g.placeholder("row", dtype::f32, {U, 3});

  auto y = x + b;
  EXPECT_EQ(y.type(), dtype::f32);
  EXPECT_EQ(y.shape(), shape({U, 3}));
  EXPECT_EQ((x * 2.0).shape(), shape({U, 3}));
  EXPECT_EQ((1.0 - x).type(), dtype::f32);
  EXPECT_EQ((-x).shape(), shape({U, 3}));
  // A known dim on one side fixes an unknown one on the other.
  EXPECT_EQ((col + row).shape(), shape({4, 3}));
  EXPECT_EQ(pow(x, 2.0).shape(), shape({U, 3}));

  // Comparisons give u8 masks; where picks the value dtype.
  auto m = greater(x, b);
  EXPECT_EQ(m.type(), dtype::u8);
  EXPECT_EQ(m.shape(), shape({U, 3}));
  auto w = where(m, x, b);
  EXPECT_EQ(w.type(), dtype::f32);
  EXPECT_EQ(w.shape(), shape({U, 3}));

  auto d = g.placeholder("d", dtype::f64, {2, 2});
  EXPECT_EQ((d * 3.0).type(), dtype::f64);
  EXPECT_EQ(exp(d).type(), dtype::f64);
  EXPECT_EQ(cast(d, dtype::i32).type(), dtype::i32);
  EXPECT_EQ(cast(d, dtype::f64), d); // no-op cast adds no node
  EXPECT_EQ(sigmoid(d).shape(), shape({2, 2}));
}

TEST(Builder, MatrixReductionAndShapeOpsInferShapes) {
  graph g;
  auto x = g.placeholder("x", dtype::f32, {U, 5});
  auto w = g.variable("w", {5, 7}, init::zeros());
  auto b = g.variable("b", {7}, init::zeros());

  auto h = relu(matmul(x, w) + b);
  EXPECT_EQ(h.shape(), shape({U, 7}));
  EXPECT_EQ(linear(x, w, b).shape(), shape({U, 7}));
  EXPECT_EQ(matmul(w, x, true, true).shape(), shape({7, U}));
  EXPECT_EQ(matmul(h, w, false, true).shape(), shape({U, 5}));

  EXPECT_EQ(sum(h).shape(), shape({}));
  EXPECT_EQ(mean(h, {1}).shape(), shape({U}));
  EXPECT_EQ(sum(h, {0}, true).shape(), shape({1, 7}));
  EXPECT_EQ(max(h, {-1}, true).shape(), shape({U, 1}));
  auto am = argmax(h);
  EXPECT_EQ(am.type(), dtype::i64);
  EXPECT_EQ(am.shape(), shape({U}));

  EXPECT_EQ(transpose(h).shape(), shape({7, U}));
  EXPECT_EQ(reshape(x, {-1, 5, 1}).shape(), shape({U, 5, 1}));
  EXPECT_EQ(reshape(w, {-1}).shape(), shape({35}));
  EXPECT_EQ(concat({h, h}, 1).shape(), shape({U, 14}));
  EXPECT_EQ(concat({w, w}, 0).shape(), shape({10, 7}));
  auto parts = split(w, {2, 3}, 0);
  ASSERT_EQ(parts.size(), 2u);
  EXPECT_EQ(parts[0].shape(), shape({2, 7}));
  EXPECT_EQ(parts[1].shape(), shape({3, 7}));
  EXPECT_EQ(unsqueeze(x, {0}).shape(), shape({1, U, 5}));
  EXPECT_EQ(squeeze(sum(h, {1}, true)).shape(), shape({U}));
  EXPECT_EQ(pad(w, {1, 0}, {2, 3}).shape(), shape({8, 10}));
  EXPECT_EQ(slice(w, {1, 0}, {3, INT64_MAX}).shape(), shape({2, 7}));

  auto ids = g.placeholder("ids", dtype::i64, {U, 2});
  auto table = g.variable("table", {10, 4}, init::zeros());
  EXPECT_EQ(embedding(table, ids).shape(), shape({U, 2, 4}));
  EXPECT_EQ(gather(table, ids).shape(), shape({U, 2, 4}));
  auto oh = one_hot(ids, 10, dtype::f64);
  EXPECT_EQ(oh.type(), dtype::f64);
  EXPECT_EQ(oh.shape(), shape({U, 2, 10}));

  auto labels = g.placeholder("labels", dtype::i64, {U});
  auto ce = softmax_cross_entropy(h, labels);
  EXPECT_EQ(ce.type(), dtype::f32);
  EXPECT_EQ(ce.shape(), shape({U}));
  auto acc = accuracy(h, labels);
  EXPECT_EQ(acc.type(), dtype::f32);
  EXPECT_EQ(acc.shape(), shape({}));

  auto a3 = g.placeholder("a3", dtype::f32, {U, 2, 3});
  auto b3 = g.placeholder("b3", dtype::f32, {U, 3, 4});
  EXPECT_EQ(batch_matmul(a3, b3).shape(), shape({U, 2, 4}));
}

TEST(Builder, ShapeMismatchNamesOpNodeAndBothShapes) {
  graph g;
  auto x = g.placeholder("x", dtype::f32, {U, 5});
  auto w = g.variable("w", {6, 7}, init::zeros());
  std::string msg = error_of([&] { matmul(x, w); });
  EXPECT_TRUE(contains(msg, "'matmul'")) << msg;
  EXPECT_TRUE(contains(msg, "node 'matmul'")) << msg;
  EXPECT_TRUE(contains(msg, "'x'")) << msg;
  EXPECT_TRUE(contains(msg, "[?, 5]")) << msg;
  EXPECT_TRUE(contains(msg, "'w'")) << msg;
  EXPECT_TRUE(contains(msg, "[6, 7]")) << msg;

  // An explicitly named node is named in the message; the failed node is not added.
  auto a = g.placeholder("a", dtype::f32, {2, 3});
  auto b = g.placeholder("b", dtype::f32, {4, 3});
  size_t before = g.size();
  msg = error_of([&] { g.add(op_kind::add, {a.id(), b.id()}, {}, "bad_sum"); });
  EXPECT_TRUE(contains(msg, "'add'")) << msg;
  EXPECT_TRUE(contains(msg, "node 'bad_sum'")) << msg;
  EXPECT_TRUE(contains(msg, "[2, 3]")) << msg;
  EXPECT_TRUE(contains(msg, "[4, 3]")) << msg;
  EXPECT_EQ(g.size(), before);
  EXPECT_FALSE(g.find("bad_sum").valid());

  // Dtype mismatches are caught too.
  auto i = g.placeholder("i", dtype::i32, {2, 3});
  msg = error_of([&] { a + i; });
  EXPECT_TRUE(contains(msg, "f32")) << msg;
  EXPECT_TRUE(contains(msg, "i32")) << msg;

  // And wrong arity.
  msg = error_of([&] { g.add(op_kind::add, {a.id()}); });
  EXPECT_TRUE(contains(msg, "2 inputs")) << msg;
}

TEST(Builder, MixingGraphsThrows) {
  graph g1, g2;
  auto a = g1.placeholder("a", dtype::f32, {2});
  auto b = g2.placeholder("b", dtype::f32, {2});
  std::string msg = error_of([&] { a + b; });
  EXPECT_TRUE(contains(msg, "different graphs")) << msg;
  EXPECT_TRUE(contains(msg, "'a'")) << msg;
  EXPECT_TRUE(contains(msg, "'b'")) << msg;
  EXPECT_THROW(concat({a, b}), luoshu_error);
  EXPECT_THROW(matmul(reshape(a, {1, 2}), reshape(b, {2, 1})), luoshu_error);
  EXPECT_THROW(add(expr(), a), luoshu_error);
}

TEST(Builder, AutoNamesAreUniqueAndNamedRenames) {
  graph g;
  auto x = g.placeholder("x", dtype::f32, {2});
  auto a = x + x;
  auto b = x + x;
  auto c = x + x;
  EXPECT_EQ(a.name(), "add");
  EXPECT_NE(a.name(), b.name());
  EXPECT_NE(b.name(), c.name());
  EXPECT_NE(a.name(), c.name());
  EXPECT_EQ(g.find(b.name()), b);

  auto r = c.named("total");
  EXPECT_EQ(r, c);
  EXPECT_EQ(c.name(), "total");
  EXPECT_EQ(g.find("total"), c);
  EXPECT_NE(g.find("total").name(), a.name());

  // Every node's name is distinct.
  std::vector<std::string> names;
  for (node_id i = 0; i < static_cast<node_id>(g.size()); ++i) names.push_back(g.at(i).name);
  std::sort(names.begin(), names.end());
  EXPECT_EQ(std::adjacent_find(names.begin(), names.end()), names.end());
  EXPECT_TRUE(contains(g.to_string(), "total = add"));
}

TEST(Builder, DuplicateNamesAreRejected) {
  graph g;
  auto x = g.placeholder("x", dtype::f32, {2});
  std::string msg = error_of([&] { g.placeholder("x", dtype::f32, {3}); });
  EXPECT_TRUE(contains(msg, "'x'")) << msg;
  EXPECT_THROW(g.variable("x", {2}, init::zeros()), luoshu_error);
  auto y = x * 2.0;
  EXPECT_THROW(y.named("x"), luoshu_error);
  EXPECT_THROW(y.named(""), luoshu_error);
  EXPECT_EQ(g.find("x"), x);
  // Renaming to its own name is a no-op, not a clash.
  EXPECT_NO_THROW(x.named("x"));
  // A freed name can be reused.
  x.named("input");
  EXPECT_FALSE(g.find("x").valid());
  EXPECT_NO_THROW(g.placeholder("x", dtype::f32, {3}));
}

TEST(Builder, VariableNeedsKnownShapeAndName) {
  graph g;
  std::string msg = error_of([&] { g.variable("w", {U, 3}, init::zeros()); });
  EXPECT_TRUE(contains(msg, "'w'")) << msg;
  EXPECT_TRUE(contains(msg, "[?, 3]")) << msg;
  EXPECT_THROW(g.variable("", {3}, init::zeros()), luoshu_error);
  auto v = g.variable("w", {2, 3}, init::constant(1), dtype::f64);
  EXPECT_EQ(v.type(), dtype::f64);
  EXPECT_EQ(v.shape(), shape({2, 3}));
}

TEST(Builder, ListsPlaceholdersAndVariables) {
  graph g;
  auto x = g.placeholder("x", dtype::f32, {U, 2});
  auto w = g.variable("w", {2, 2}, init::zeros());
  auto s = g.variable("s", {2}, init::zeros(), dtype::f32, false);
  auto y = g.placeholder("y", dtype::i64, {U});
  auto b = g.variable("b", {2}, init::zeros());
  (void)(matmul(x, w) + b);

  auto ph = g.placeholders();
  ASSERT_EQ(ph.size(), 2u);
  EXPECT_EQ(ph[0], x);
  EXPECT_EQ(ph[1], y);

  auto all = g.variables();
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all[0], w);
  EXPECT_EQ(all[1], s);
  EXPECT_EQ(all[2], b);

  auto trainable = g.variables(true);
  ASSERT_EQ(trainable.size(), 2u);
  EXPECT_EQ(trainable[0], w);
  EXPECT_EQ(trainable[1], b);
}

TEST(Builder, ConstantsAndScalars) {
  graph g;
  auto c = g.constant(tensor::from<double>({2}, {1, 2}), "c");
  EXPECT_EQ(c.type(), dtype::f64);
  EXPECT_EQ(c.shape(), shape({2}));
  EXPECT_EQ(c.name(), "c");
  auto s = g.scalar(3, dtype::i64);
  EXPECT_EQ(s.type(), dtype::i64);
  EXPECT_EQ(s.shape(), shape({}));
  EXPECT_THROW(g.constant(tensor()), luoshu_error);
}

} // namespace
} // namespace luoshu
