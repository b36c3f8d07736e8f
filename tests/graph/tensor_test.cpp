// Tests of the value types: dtype, shape and tensor.

#include "graph/tensor.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "graph/error.hpp"

namespace luoshu {
namespace {

TEST(Dtype, SizesAndNames) {
  EXPECT_EQ(size_of(dtype::f32), 4u);
  EXPECT_EQ(size_of(dtype::f64), 8u);
  EXPECT_EQ(size_of(dtype::i32), 4u);
  EXPECT_EQ(size_of(dtype::i64), 8u);
  EXPECT_EQ(size_of(dtype::u8), 1u);
  EXPECT_EQ(size_of(dtype::f16), 2u);
  EXPECT_EQ(size_of(dtype::bf16), 2u);
  EXPECT_STREQ(name(dtype::f32), "f32");
  EXPECT_STREQ(name(dtype::f64), "f64");
  EXPECT_STREQ(name(dtype::i32), "i32");
  EXPECT_STREQ(name(dtype::i64), "i64");
  EXPECT_STREQ(name(dtype::u8), "u8");
  EXPECT_STREQ(name(dtype::f16), "f16");
  EXPECT_STREQ(name(dtype::bf16), "bf16");
  EXPECT_TRUE(is_float(dtype::f16));
  EXPECT_FALSE(is_float(dtype::i64));
  EXPECT_TRUE(is_integer(dtype::u8));
  EXPECT_FALSE(is_integer(dtype::f32));
}

TEST(Dtype, ParsesShortAndLongNames) {
  for (int i = 0; i < dtype_count; ++i) {
    auto t = static_cast<dtype>(i);
    auto parsed = parse_dtype(name(t));
    ASSERT_TRUE(parsed.has_value()) << name(t);
    EXPECT_EQ(*parsed, t);
  }
  EXPECT_EQ(parse_dtype("float32"), dtype::f32);
  EXPECT_EQ(parse_dtype("float64"), dtype::f64);
  EXPECT_EQ(parse_dtype("double"), dtype::f64);
  EXPECT_EQ(parse_dtype("int64"), dtype::i64);
  EXPECT_EQ(parse_dtype("uint8"), dtype::u8);
  EXPECT_EQ(parse_dtype("bfloat16"), dtype::bf16);
  EXPECT_FALSE(parse_dtype("f128").has_value());
  EXPECT_FALSE(parse_dtype("").has_value());
  EXPECT_FALSE(parse_dtype("F32").has_value());
}

TEST(Shape, NumelKnownAndToString) {
  shape s{2, 3, 4};
  EXPECT_EQ(s.rank(), 3);
  EXPECT_EQ(s.numel(), 24);
  EXPECT_TRUE(s.known());
  EXPECT_EQ(s.to_string(), "[2, 3, 4]");

  shape u{2, shape::unknown};
  EXPECT_FALSE(u.known());
  EXPECT_EQ(u.numel(), -1);
  EXPECT_EQ(u.to_string(), "[2, ?]");

  shape scalar;
  EXPECT_EQ(scalar.rank(), 0);
  EXPECT_EQ(scalar.numel(), 1);
  EXPECT_TRUE(scalar.known());
  EXPECT_EQ(scalar.to_string(), "[]");

  shape empty{3, 0};
  EXPECT_EQ(empty.numel(), 0);
  EXPECT_TRUE(empty.known());

  EXPECT_EQ(shape({2, 3}), shape(std::vector<int64_t>{2, 3}));
  EXPECT_NE(shape({2, 3}), shape({3, 2}));
}

TEST(Shape, NormalizeAxis) {
  EXPECT_EQ(normalize_axis(-1, 3, "t"), 2);
  EXPECT_EQ(normalize_axis(0, 3, "t"), 0);
  EXPECT_THROW(normalize_axis(3, 3, "t"), luoshu_error);
  EXPECT_THROW(normalize_axis(-4, 3, "t"), luoshu_error);
}

TEST(Tensor, FromZerosAndScalar) {
  auto t = tensor::from<float>({2, 3}, {1, 2, 3, 4, 5, 6});
  EXPECT_EQ(t.type(), dtype::f32);
  EXPECT_EQ(t.shape(), shape({2, 3}));
  EXPECT_EQ(t.numel(), 6);
  EXPECT_EQ(t.nbytes(), 24u);
  EXPECT_EQ(t.rank(), 2);
  EXPECT_EQ(t.dim(1), 3);
  EXPECT_TRUE(t.defined());
  EXPECT_EQ(t.to_doubles(), (std::vector<double>{1, 2, 3, 4, 5, 6}));
  EXPECT_EQ(t.item(4), 5.0);
  EXPECT_THROW(t.item(6), luoshu_error);

  auto z = tensor::zeros(dtype::i64, {3, 2});
  EXPECT_EQ(z.type(), dtype::i64);
  for (auto v : z.span<int64_t>()) EXPECT_EQ(v, 0);

  auto s = tensor::scalar<double>(2.5);
  EXPECT_EQ(s.type(), dtype::f64);
  EXPECT_EQ(s.rank(), 0);
  EXPECT_EQ(s.numel(), 1);
  EXPECT_EQ(s.item(), 2.5);

  EXPECT_FALSE(tensor().defined());
}

TEST(Tensor, FromRejectsWrongCountAndUnknownShape) {
  EXPECT_THROW(tensor::from<float>({2, 3}, {1, 2, 3}), luoshu_error);
  EXPECT_THROW(tensor(dtype::f32, shape{2, shape::unknown}), luoshu_error);
}

TEST(Tensor, DataWithWrongDtypeThrows) {
  auto t = tensor::from<float>({2}, {1, 2});
  EXPECT_NO_THROW(t.data<float>());
  try {
    t.data<double>();
    FAIL() << "data<double>() on an f32 tensor did not throw";
  } catch (const luoshu_error& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find("f32"), std::string::npos) << msg;
    EXPECT_NE(msg.find("f64"), std::string::npos) << msg;
  }
  EXPECT_THROW(t.data<int32_t>(), luoshu_error);
  EXPECT_THROW(t.span<int64_t>(), luoshu_error);
}

TEST(Tensor, ReshapedSharesStorage) {
  auto t = tensor::from<int32_t>({2, 3}, {1, 2, 3, 4, 5, 6});
  auto r = t.reshaped({3, 2});
  EXPECT_EQ(r.shape(), shape({3, 2}));
  EXPECT_EQ(r.storage(), t.storage());
  EXPECT_EQ(r.raw(), t.raw());
  r.data<int32_t>()[5] = 60;
  EXPECT_EQ(t.data<int32_t>()[5], 60);
  EXPECT_THROW(t.reshaped({4, 2}), luoshu_error);
}

TEST(Tensor, CloneIsDeep) {
  auto t = tensor::from<double>({2, 2}, {1, 2, 3, 4});
  auto c = t.clone();
  EXPECT_NE(c.storage(), t.storage());
  EXPECT_NE(c.raw(), t.raw());
  EXPECT_EQ(c.shape(), t.shape());
  EXPECT_EQ(c.type(), t.type());
  c.data<double>()[0] = 100;
  EXPECT_EQ(t.data<double>()[0], 1);
  EXPECT_EQ(c.to_doubles(), (std::vector<double>{100, 2, 3, 4}));

  // A copy of the handle is shallow.
  tensor alias = t;
  alias.data<double>()[1] = -2;
  EXPECT_EQ(t.data<double>()[1], -2);
}

TEST(Tensor, CastConvertsValues) {
  auto t = tensor::from<float>({4}, {1.75f, -2.5f, 0.f, 255.f});
  auto i = t.cast(dtype::i32);
  EXPECT_EQ(i.type(), dtype::i32);
  EXPECT_EQ(i.shape(), t.shape());
  EXPECT_EQ(i.data<int32_t>()[0], 1);  // truncates toward zero
  EXPECT_EQ(i.data<int32_t>()[1], -2);
  EXPECT_EQ(i.data<int32_t>()[3], 255);

  auto d = tensor::from<int64_t>({3}, {7, -8, 1ll << 40}).cast(dtype::f64);
  EXPECT_EQ(d.type(), dtype::f64);
  EXPECT_EQ(d.to_doubles(), (std::vector<double>{7, -8, 1099511627776.0}));

  auto u = tensor::from<int32_t>({2}, {3, 200}).cast(dtype::u8);
  EXPECT_EQ(u.data<uint8_t>()[1], 200);

  // Casting to the same dtype is still a deep copy.
  auto same = t.cast(dtype::f32);
  EXPECT_NE(same.raw(), t.raw());
  EXPECT_EQ(same.to_doubles(), t.to_doubles());
}

TEST(Tensor, FillConvertsToDtype) {
  auto t = tensor(dtype::i32, shape{3});
  t.fill(4.9);
  EXPECT_EQ(t.to_doubles(), (std::vector<double>{4, 4, 4}));
}

TEST(Tensor, ToStringPrintsHeaderAndNestedValues) {
  auto t = tensor::from<int32_t>({2, 3}, {1, 2, 3, 4, 5, 6});
  std::string s = t.to_string();
  EXPECT_EQ(s.rfind("tensor(i32, [2, 3], cpu)", 0), 0u) << s;
  EXPECT_NE(s.find("[[1, 2, 3],"), std::string::npos) << s;
  EXPECT_NE(s.find("[4, 5, 6]]"), std::string::npos) << s;

  auto f = tensor::from<float>({2}, {0.5f, -1.25f});
  std::string fs = f.to_string();
  EXPECT_EQ(fs.rfind("tensor(f32, [2], cpu)", 0), 0u) << fs;
  EXPECT_NE(fs.find("[0.5, -1.25]"), std::string::npos) << fs;

  auto sc = tensor::scalar<int64_t>(42);
  std::string ss = sc.to_string();
  EXPECT_EQ(ss.rfind("tensor(i64, [], cpu)", 0), 0u) << ss;
  EXPECT_NE(ss.find("42"), std::string::npos) << ss;

  EXPECT_NE(tensor().to_string().find("undefined"), std::string::npos);
}

TEST(Tensor, ToStringElidesLongDims) {
  std::vector<int32_t> v(10);
  for (int i = 0; i < 10; ++i) v[static_cast<size_t>(i)] = i;
  auto t = tensor::from<int32_t>({10}, v);
  std::string s = t.to_string();
  EXPECT_NE(s.find("[0, 1, 2, ..., 7, 8, 9]"), std::string::npos) << s;
  EXPECT_EQ(s.find("5"), std::string::npos) << s; // inner values are elided

  // Short dims print in full.
  auto shorter = tensor::from<int32_t>({6}, {0, 1, 2, 3, 4, 5});
  EXPECT_NE(shorter.to_string().find("[0, 1, 2, 3, 4, 5]"), std::string::npos);

  // edge_items picks how many items each end keeps; outer dims elide too.
  std::vector<int32_t> m(5 * 5);
  for (int i = 0; i < 25; ++i) m[static_cast<size_t>(i)] = i;
  std::string ms = tensor::from<int32_t>({5, 5}, m).to_string(1);
  EXPECT_NE(ms.find("[[0, ..., 4],"), std::string::npos) << ms;
  EXPECT_NE(ms.find("[20, ..., 24]]"), std::string::npos) << ms;
  EXPECT_EQ(ms.find("12"), std::string::npos) << ms; // middle rows are elided
  EXPECT_NE(ms.find("...,\n"), std::string::npos) << ms;
}

} // namespace
} // namespace luoshu
