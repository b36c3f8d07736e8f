// The wire codecs: exact round trips of every message type and of graphs
// (which must also run identically after decoding), and hostile input, each
// piece of which must come back as an error naming what is wrong.

#include "transport/codec.hpp"

#include <gtest/gtest.h>

#include <capnp/message.h>
#include <capnp/serialize.h>

#include <climits>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "control.capnp.h"
#include "graph.capnp.h"
#include "graph/autodiff.hpp"
#include "graph/executor.hpp"
#include "graph/variables.hpp"
#include "ops/kernel.hpp"
#include "tensor.capnp.h"
#include "tests/transport/samples.hpp"

namespace luoshu::transport {
namespace {

using namespace luoshu::transport::test;
namespace w = luoshu::transport::wire;

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

template <class T>
T ok_or_fail(result<T> r) {
  EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.err().message);
  if (!r.ok()) throw luoshu_error(r.err().message);
  return std::move(r).value();
}

/// The error of a decode that must fail, checked to carry the prefix.
template <class T>
std::string err_of(const result<T>& r, const char* what) {
  EXPECT_FALSE(r.ok()) << "decoding succeeded";
  if (r.ok()) return {};
  EXPECT_TRUE(contains(r.err().message, std::string("transport: malformed ") + what + ": "))
      << r.err().message;
  return r.err().message;
}

wire_bytes flat(capnp::MallocMessageBuilder& mb) {
  auto words = capnp::messageToFlatArray(mb);
  auto chars = words.asChars();
  return wire_bytes(chars.begin(), chars.end());
}

/// A message built from scratch with the generated types.
template <class Root, class Fill>
wire_bytes craft(Fill&& fill) {
  capnp::MallocMessageBuilder mb;
  fill(mb.initRoot<Root>());
  return flat(mb);
}

/// A valid encoding changed by `edit` (which gets the root builder).
template <class Root, class Edit>
wire_bytes edited(const wire_bytes& valid, Edit&& edit) {
  auto words = kj::heapArray<capnp::word>(valid.size() / sizeof(capnp::word));
  std::memcpy(words.begin(), valid.data(), valid.size());
  capnp::MallocMessageBuilder mb;
  capnp::initMessageBuilderFromFlatArrayCopy(words.asPtr(), mb);
  edit(mb.getRoot<Root>());
  return flat(mb);
}

bool same_bits(double a, double b) { return std::memcmp(&a, &b, sizeof a) == 0; }

void expect_same_attrs(const op_attrs& a, const op_attrs& b, const std::string& where) {
  EXPECT_EQ(a.axes, b.axes) << where;
  EXPECT_EQ(a.axes2, b.axes2) << where;
  EXPECT_EQ(a.target, b.target) << where;
  EXPECT_TRUE(same_bits(a.alpha, b.alpha)) << where;
  EXPECT_TRUE(same_bits(a.beta, b.beta)) << where;
  EXPECT_TRUE(same_bits(a.eps, b.eps)) << where;
  EXPECT_TRUE(same_bits(a.decay, b.decay)) << where;
  EXPECT_EQ(a.axis, b.axis) << where;
  EXPECT_EQ(a.keepdims, b.keepdims) << where;
  EXPECT_EQ(a.trans_a, b.trans_a) << where;
  EXPECT_EQ(a.trans_b, b.trans_b) << where;
  EXPECT_EQ(a.flag, b.flag) << where;
  EXPECT_EQ(a.seed, b.seed) << where;
  EXPECT_EQ(a.to, b.to) << where;
  EXPECT_EQ(a.init.kind, b.init.kind) << where;
  EXPECT_TRUE(same_bits(a.init.a, b.init.a)) << where;
  EXPECT_TRUE(same_bits(a.init.b, b.init.b)) << where;
  EXPECT_TRUE(same_tensor(a.value, b.value)) << where;
}

void expect_same_graph(const graph& a, const graph& b) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    const node& x = a.at(static_cast<node_id>(i));
    const node& y = b.at(static_cast<node_id>(i));
    const std::string where = "node " + std::to_string(i) + " '" + x.name + "'";
    EXPECT_EQ(x.op, y.op) << where;
    EXPECT_EQ(x.name, y.name) << where;
    EXPECT_EQ(x.inputs, y.inputs) << where;
    EXPECT_EQ(x.type, y.type) << where;
    EXPECT_EQ(x.shape, y.shape) << where;
    expect_same_attrs(x.attrs, y.attrs, where);
  }
}

std::unique_ptr<graph> round_trip(const graph& g) {
  auto bytes = encode_graph(g);
  auto decoded = ok_or_fail(decode_graph(bytes_of(bytes)));
  expect_same_graph(g, *decoded);
  // Encoding is deterministic: the decoded graph encodes to the same bytes.
  EXPECT_EQ(encode_graph(*decoded), bytes);
  return decoded;
}

kernel_registry cpu_kernels() {
  kernel_registry r;
  cpu::register_kernels(r);
  return r;
}

// --- round trips ----------------------------------------------------------------

TEST(WireRoundTrip, JoinRequest) {
  for (auto role : {node_role::coordinator, node_role::server, node_role::worker}) {
    auto m = sample_join_request();
    m.self.role = role;
    m.token = std::string("with\0nul and \xc3\xa9", 15);
    EXPECT_EQ(ok_or_fail(decode_join_request(bytes_of(encode(m)))), m);
  }
  join_request empty;
  EXPECT_EQ(ok_or_fail(decode_join_request(bytes_of(encode(empty)))), empty);
  auto longest = sample_join_request();
  longest.token.assign(max_name_bytes, 't');
  longest.self.name.assign(max_name_bytes, 'n');
  EXPECT_EQ(ok_or_fail(decode_join_request(bytes_of(encode(longest)))), longest);
}

TEST(WireRoundTrip, JoinReply) {
  auto m = sample_join_reply();
  EXPECT_EQ(ok_or_fail(decode_join_reply(bytes_of(encode(m)))), m);
  join_reply accepted{true, "", 0, 1, std::numeric_limits<int64_t>::max()};
  EXPECT_EQ(ok_or_fail(decode_join_reply(bytes_of(encode(accepted)))), accepted);
  join_reply empty;
  EXPECT_EQ(ok_or_fail(decode_join_reply(bytes_of(encode(empty)))), empty);
}

TEST(WireRoundTrip, BarrierRequest) {
  auto m = sample_barrier_request();
  EXPECT_EQ(ok_or_fail(decode_barrier_request(bytes_of(encode(m)))), m);
  barrier_request empty;
  EXPECT_EQ(ok_or_fail(decode_barrier_request(bytes_of(encode(empty)))), empty);
}

TEST(WireRoundTrip, TensorsOfEveryDtypeAndShape) {
  std::mt19937_64 rng(7);
  const std::vector<shape> shapes = {shape{}, shape{0}, shape{5}, shape{2, 3}, shape{3, 0, 2},
                                     shape{2, 1, 3, 1, 2}};
  for (int d = 0; d < dtype_count; ++d) {
    for (const auto& s : shapes) {
      tensor_message m{"t/" + std::to_string(d), -17 + d, random_tensor(static_cast<dtype>(d), s, rng)};
      auto back = ok_or_fail(decode_tensor_message(bytes_of(encode(m))));
      EXPECT_EQ(back.name, m.name);
      EXPECT_EQ(back.step, m.step);
      EXPECT_TRUE(same_tensor(back.value, m.value)) << name(static_cast<dtype>(d)) << s.to_string();
      EXPECT_NE(back.value.raw(), m.value.raw()) << "decoding must copy";
    }
  }
}

TEST(WireRoundTrip, ZeroDimensionalTensorKeepsItsValue) {
  tensor_message m{"scalar", 3, tensor::scalar<double>(-2.5)};
  auto back = ok_or_fail(decode_tensor_message(bytes_of(encode(m))));
  EXPECT_EQ(back.value.rank(), 0);
  EXPECT_EQ(back.value.item(), -2.5);
}

TEST(WireRoundTrip, UndefinedTensor) {
  tensor_message m{"nothing", 1, tensor()};
  auto back = ok_or_fail(decode_tensor_message(bytes_of(encode(m))));
  EXPECT_FALSE(back.value.defined());
  EXPECT_EQ(back.name, "nothing");
}

TEST(WireRoundTrip, LargeTensor) {
  std::mt19937_64 rng(11);
  tensor_message m{"activations", 123456789, random_tensor(dtype::f32, {2048, 1024}, rng)};
  auto bytes = encode(m);
  EXPECT_LT(bytes.size(), m.value.nbytes() + 256) << "one copy of the data plus a small header";
  auto back = ok_or_fail(decode_tensor_message(bytes_of(bytes)));
  EXPECT_TRUE(same_tensor(back.value, m.value));
  EXPECT_EQ(reinterpret_cast<uintptr_t>(back.value.raw()) % 64, 0u);
}

TEST(WireRoundTrip, TensorViewSendsOnlyItsBytes) {
  std::mt19937_64 rng(3);
  tensor base = random_tensor(dtype::i32, {4, 4}, rng);
  tensor view(base.storage(), 8 * sizeof(int32_t), dtype::i32, {2, 4}); // rows 2 and 3
  auto back = ok_or_fail(decode_tensor_message(bytes_of(encode(tensor_message{"v", 0, view}))));
  EXPECT_TRUE(same_tensor(back.value, view));
  EXPECT_EQ(std::memcmp(back.value.raw(), base.data<int32_t>() + 8, 8 * sizeof(int32_t)), 0);
}

TEST(WireRoundTrip, UnalignedInput) {
  auto bytes = encode(tensor_message{"x", 1, tensor::from<float>({3}, {1, 2, 3})});
  std::vector<char> shifted(bytes.size() + 1);
  std::memcpy(shifted.data() + 1, bytes.data(), bytes.size());
  auto back = ok_or_fail(decode_tensor_message({shifted.data() + 1, bytes.size()}));
  EXPECT_EQ(back.value.to_doubles(), (std::vector<double>{1, 2, 3}));
}

TEST(WireEncode, DeviceTensorIsRefused) {
  std::vector<float> host(4);
  auto st = std::make_shared<storage>(host.data(), host.size() * sizeof(float), device::cuda(0),
                                      [](void*) {});
  tensor t(st, 0, dtype::f32, {4});
  EXPECT_THROW(encode(tensor_message{"gpu", 0, t}), luoshu_error);
}

TEST(Roles, NamesParseBack) {
  for (auto r : {node_role::coordinator, node_role::server, node_role::worker}) {
    node_role back = node_role::worker;
    ASSERT_TRUE(parse_role(name(r), back)) << name(r);
    EXPECT_EQ(back, r);
  }
  node_role unchanged = node_role::server;
  EXPECT_FALSE(parse_role("boss", unchanged));
  EXPECT_FALSE(parse_role("", unchanged));
  EXPECT_EQ(unchanged, node_role::server);
  EXPECT_STREQ(name(node_role::coordinator), "coordinator");
}

// --- graphs ---------------------------------------------------------------------

TEST(WireGraph, MlpRunsIdenticallyAfterDecoding) {
  optimizer_config cfg;
  cfg.kind = optimizer_config::kind_t::adamw;
  cfg.weight_decay = 0.01;
  cfg.clip_norm = 1.0;
  mlp m(cfg);
  auto g2 = round_trip(m.g);
  ASSERT_GT(g2->size(), 50u);

  std::mt19937_64 rng(5);
  std::uniform_real_distribution<float> u(-1, 1);
  std::vector<float> xs(8 * 6);
  for (auto& v : xs) v = u(rng);
  tensor x = tensor::from<float>({8, 6}, xs);
  tensor labels = tensor::from<int64_t>({8}, {0, 1, 2, 0, 1, 2, 1, 0});

  auto kr = cpu_kernels();
  variable_store vars1(99), vars2(99);
  executor ex1(m.g, vars1, kr), ex2(*g2, vars2, kr);
  auto find = [&](const expr& e) {
    expr f = g2->find(e.name());
    EXPECT_TRUE(f.valid()) << e.name();
    return f;
  };
  std::vector<expr> updates2;
  for (const auto& u2 : m.ops.updates) updates2.push_back(find(u2));
  for (int step = 0; step < 4; ++step) {
    tensor lr = tensor::scalar<float>(0.05f);
    auto r1 = ex1.run({{m.x, x}, {m.labels, labels}, {m.ops.lr, lr}}, {m.loss, m.ops.grad_norm},
                      m.ops.updates, {true, step});
    auto r2 = ex2.run({{find(m.x), x}, {find(m.labels), labels}, {find(m.ops.lr), lr}},
                      {find(m.loss), find(m.ops.grad_norm)}, updates2, {true, step});
    ASSERT_TRUE(r1.ok()) << r1.err().message;
    ASSERT_TRUE(r2.ok()) << r2.err().message;
    for (size_t i = 0; i < r1->size(); ++i)
      EXPECT_TRUE(same_tensor((*r1)[i], (*r2)[i])) << "step " << step << " fetch " << i;
  }
  // Every variable and optimizer slot ends bit-identical.
  ASSERT_EQ(vars1.all().size(), vars2.all().size());
  for (const auto& [name, value] : vars1.all()) {
    ASSERT_TRUE(vars2.contains(name)) << name;
    EXPECT_TRUE(same_tensor(value, vars2.get(name))) << name;
  }
  EXPECT_GE(vars1.all().size(), 12u) << "four parameters and their adam slots";
}

TEST(WireGraph, EveryOpAttributeSurvives) {
  graph g;
  std::mt19937_64 rng(1);
  auto x = g.placeholder("x", dtype::f32, {shape::unknown, 4});
  auto y = g.placeholder("y", dtype::f32, {4, 4});
  sum(y, {1}, true);                                      // axes, keepdims
  slice(y, {1, -3}, {INT64_MAX, 3});                      // axes, axes2
  pad(y, {0, 1}, {2, 0}, 1.5);                            // axes, axes2, alpha
  reshape(x, {-1, 2});                                    // target
  clamp(y, -0.5, 0.75);                                   // alpha, beta
  softmax(y, 0);                                          // axis
  matmul(y, y, true, true);                               // trans_a, trans_b
  dropout(y, 0.25, 0xfedcba9876543210ull);                // alpha, seed
  cast(y, dtype::i64);                                    // to
  auto img = g.placeholder("img", dtype::f32, {shape::unknown, 4, 9, 8});
  auto filt = g.placeholder("filt", dtype::f32, {6, 2, 3, 2});
  auto conv = conv2d(img, filt, {.stride = {2, 1}, .padding = {1, 0}, .dilation = {1, 3}, .groups = 2}); // axes, axis
  auto mp = max_pool2d(img, {.kernel = {3, 2}, .stride = {1, 2}, .padding = {1, 0}}); // axes, axes2
  auto ap = avg_pool2d(img, {.kernel = {2, 2}, .count_include_pad = false});         // axes, axes2, flag
  gradients(sum(conv) + sum(mp) + sum(ap), {img, filt}); // their gradient ops carry the same attributes
  auto seq = g.placeholder("seq", dtype::f32, {shape::unknown, 5, 3});
  auto wx = g.placeholder("wx", dtype::f32, {3, 8}), wh = g.placeholder("wh", dtype::f32, {2, 8});
  auto gx = g.placeholder("gx", dtype::f32, {3, 6}), gh = g.placeholder("gh", dtype::f32, {2, 6});
  auto lb = g.placeholder("lb", dtype::f32, {8}), gb = g.placeholder("gb", dtype::f32, {6});
  auto rec = lstm(seq, wx, wh, lb) + gru(seq, gx, gh, gb, gb); // slices of the workspaces: axes, axes2
  gradients(sum(rec), {seq, wx, wh, lb, gx, gh, gb});          // rnn_weight_grad / rnn_bias_grad: flag
  auto bn = batch_norm(img, g.placeholder("gamma", dtype::f32, {4}), g.placeholder("beta", dtype::f32, {4}),
                       g.variable("bn_mean", {4}, init::zeros(), dtype::f32, false),
                       g.variable("bn_var", {4}, init::constant(1), dtype::f32, false),
                       {.eps = 2.5e-4, .momentum = 0.03}); // eps, alpha (stats and normalization)
  gradients(sum(bn), {img});                              // batch_norm_param_grad, batch_norm_input_grad
  auto tok = g.placeholder("tok", dtype::f32, {shape::unknown, 2, 5, 4});
  auto gam = g.placeholder("gam", dtype::f32, {4});
  auto ln = layer_norm(tok, gam, gam, 0.125); // eps
  auto km = g.placeholder("km", dtype::u8, {shape::unknown, 1, 1, 5});
  auto at = attention(tok, ln, tok, {.mask = km, .causal = true, .scale = 0.75}); // alpha, flag; 3 inputs
  auto tab = g.placeholder("tab", dtype::f32, {7, 4});
  auto bag = embedding_bag(tab, g.placeholder("bag_ids", dtype::i64, {shape::unknown, 3}),
                           {.mean = true, .padding_id = -1}); // flag, axes
  gradients(sum(at) + sum(bag), {tok, gam, tab}); // layer_norm, attention and bag gradient ops
  g.constant(random_tensor(dtype::f64, {2, 3}, rng), "c"); // value
  g.constant(tensor::scalar<uint8_t>(7), "c8");
  g.variable("frozen", {2}, init::constant(3), dtype::f64, false); // flag false
  using kind = initializer::kind_t;
  for (int k = 0; k <= static_cast<int>(kind::he_normal); ++k) {
    std::string var_name = "init"; // not "v" + ...: GCC 12 warns falsely (-Wrestrict) on that
    var_name += std::to_string(k);
    g.variable(var_name, {3, 2}, {static_cast<kind>(k), 0.5 + k, -1.0 / (k + 1)});
  }

  // One node with every member set to an unusual value (identity reads none).
  op_attrs all;
  all.axes = {INT64_MIN, -1, 0, INT64_MAX};
  all.axes2 = {3, 2, 1};
  all.target = shape{shape::unknown, 7, 0};
  all.alpha = std::numeric_limits<double>::quiet_NaN();
  all.beta = -0.0;
  all.eps = std::numeric_limits<double>::denorm_min();
  all.decay = -std::numeric_limits<double>::infinity();
  all.axis = INT64_MIN;
  all.keepdims = all.trans_a = all.trans_b = all.flag = true;
  all.seed = UINT64_MAX;
  all.to = dtype::bf16;
  all.init = {kind::truncated_normal, 1e300, -1e-300};
  all.value = random_tensor(dtype::f16, {2, 2}, rng);
  g.add(op_kind::identity, {y.id()}, all, "every attribute");

  // Optimizer updates: eps, decay, flag and the rest of adamw's attributes.
  optimizer_config cfg;
  cfg.kind = optimizer_config::kind_t::adamw;
  cfg.weight_decay = 0.125;
  cfg.eps = 1e-7;
  auto weight = g.variable("w", {4, 2}, init::normal(0, 0.1));
  minimize(mean(square(matmul(x, weight))), cfg, {weight});

  round_trip(g);
}

TEST(WireGraph, EmptyGraph) {
  graph g;
  auto back = ok_or_fail(decode_graph(bytes_of(encode_graph(g))));
  EXPECT_EQ(back->size(), 0u);
}

// --- hostile input ---------------------------------------------------------------

/// A small graph: x, y placeholders [2, 3]; s = x + y; r = relu(s).
wire_bytes small_graph() {
  graph g;
  auto x = g.placeholder("x", dtype::f32, {2, 3});
  auto y = g.placeholder("y", dtype::f32, {2, 3});
  relu((x + y).named("s")).named("r");
  return encode_graph(g);
}

std::string graph_error(const wire_bytes& b) { return err_of(decode_graph(bytes_of(b)), "graph"); }

TEST(WireHostile, OddSizesAndEmptyInput) {
  std::vector<char> junk(40, 0);
  for (size_t n : {1, 2, 3, 5, 7, 9, 15, 17, 33}) {
    std::span<const char> s(junk.data(), n);
    EXPECT_TRUE(contains(err_of(decode_join_request(s), "join request"), "multiple of 8"));
    EXPECT_TRUE(contains(err_of(decode_tensor_message(s), "tensor message"), "multiple of 8"));
    EXPECT_TRUE(contains(err_of(decode_graph(s), "graph"), "multiple of 8"));
  }
  EXPECT_TRUE(contains(err_of(decode_barrier_request({}), "barrier request"), "empty"));
  EXPECT_TRUE(contains(err_of(decode_join_reply({}), "join reply"), "empty"));
}

TEST(WireHostile, TruncationAtEveryLength) {
  auto check = [](const wire_bytes& b, auto decode, const char* what) {
    ASSERT_TRUE(decode(bytes_of(b)).ok()) << what;
    for (size_t n = 0; n < b.size(); ++n)
      err_of(decode(std::span<const char>(b.data(), n)), what);
  };
  check(encode(sample_join_request()), decode_join_request, "join request");
  check(encode(sample_join_reply()), decode_join_reply, "join reply");
  check(encode(sample_barrier_request()), decode_barrier_request, "barrier request");
  check(encode(tensor_message{"t", 2, tensor::from<int64_t>({2, 2}, {1, 2, 3, 4})}),
        decode_tensor_message, "tensor message");
  check(small_graph(), decode_graph, "graph");
}

TEST(WireHostile, TrailingBytes) {
  auto b = encode(sample_barrier_request());
  b.resize(b.size() + 8, 0);
  EXPECT_TRUE(contains(err_of(decode_barrier_request(bytes_of(b)), "barrier request"),
                       "8 bytes after the end"));
}

TEST(WireHostile, SegmentTableLies) {
  auto b = encode(sample_barrier_request());
  // Segment count - 1 in the first word: claim 1000 segments.
  uint32_t many = 999;
  std::memcpy(b.data(), &many, sizeof many);
  err_of(decode_barrier_request(bytes_of(b)), "barrier request");
  // First segment size: far larger than the input.
  b = encode(sample_barrier_request());
  uint32_t huge = 1u << 28;
  std::memcpy(b.data() + 4, &huge, sizeof huge);
  err_of(decode_barrier_request(bytes_of(b)), "barrier request");
}

wire_bytes tensor_msg(uint8_t code, const std::vector<int64_t>& dims, size_t data_bytes) {
  return craft<w::TensorMessage>([&](w::TensorMessage::Builder b) {
    b.setName("t");
    auto t = b.initTensor();
    t.setDtype(code);
    auto s = t.initShape(static_cast<uint>(dims.size()));
    for (size_t i = 0; i < dims.size(); ++i) s.set(static_cast<uint>(i), dims[i]);
    t.initData(static_cast<uint>(data_bytes));
  });
}

std::string tensor_error(const wire_bytes& b) {
  return err_of(decode_tensor_message(bytes_of(b)), "tensor message");
}

TEST(WireHostile, TensorDtypeCodes) {
  EXPECT_TRUE(decode_tensor_message(bytes_of(tensor_msg(6, {3}, 6))).ok()); // bf16
  for (int code : {7, 8, 100, 255})
    EXPECT_TRUE(contains(tensor_error(tensor_msg(static_cast<uint8_t>(code), {3}, 12)),
                         "unknown dtype code " + std::to_string(code)));
}

TEST(WireHostile, TensorShapeDataMismatch) {
  EXPECT_TRUE(contains(tensor_error(tensor_msg(0, {2, 3}, 20)), "needs 24 bytes of data, got 20"));
  EXPECT_TRUE(contains(tensor_error(tensor_msg(3, {2, 3}, 24)), "needs 48 bytes"));
  EXPECT_TRUE(contains(tensor_error(tensor_msg(4, {}, 0)), "needs 1 bytes"));
  EXPECT_TRUE(contains(tensor_error(tensor_msg(0, {0}, 8)), "needs 0 bytes"));
  EXPECT_TRUE(contains(tensor_error(tensor_msg(0, {-1}, 0)), "negative dim -1"));
  EXPECT_TRUE(contains(tensor_error(tensor_msg(0, {4, INT64_MIN}, 0)), "negative dim"));
}

TEST(WireHostile, TensorDimsThatOverflow) {
  const int64_t big = int64_t{1} << 40;
  EXPECT_TRUE(contains(tensor_error(tensor_msg(0, {big, big}, 0)), "overflows"));
  // numel fits, numel * 4 bytes does not.
  EXPECT_TRUE(contains(tensor_error(tensor_msg(0, {int64_t{1} << 62}, 0)), "overflows"));
  // A zero dim makes numel 0, but the other dims' product still overflows.
  EXPECT_TRUE(contains(tensor_error(tensor_msg(0, {0, INT64_MAX, 2}, 0)), "overflows"));
  // Wraps to a small product modulo 2^64 if multiplied naively: 2^32 * 2^32 * 3.
  EXPECT_TRUE(contains(tensor_error(tensor_msg(4, {int64_t{1} << 32, int64_t{1} << 32, 3}, 0)), "overflows"));
}

TEST(WireHostile, TensorRankLimit) {
  EXPECT_TRUE(decode_tensor_message(bytes_of(tensor_msg(0, std::vector<int64_t>(16, 1), 4))).ok());
  EXPECT_TRUE(contains(tensor_error(tensor_msg(0, std::vector<int64_t>(17, 1), 4)), "rank 17"));
}

TEST(WireHostile, LongTexts) {
  auto m = sample_join_request();
  m.self.host.assign(max_name_bytes + 1, 'h');
  EXPECT_TRUE(contains(err_of(decode_join_request(bytes_of(encode(m))), "join request"),
                       "member host is 4097 bytes (limit 4096)"));
  auto r = sample_join_reply();
  r.reason.assign(max_reason_bytes + 1, 'r');
  err_of(decode_join_reply(bytes_of(encode(r))), "join reply");
  r.reason.assign(max_reason_bytes, 'r');
  EXPECT_TRUE(decode_join_reply(bytes_of(encode(r))).ok());
  tensor_message t{std::string(max_name_bytes + 1, 'n'), 0, tensor()};
  err_of(decode_tensor_message(bytes_of(encode(t))), "tensor message");
}

TEST(WireHostile, ControlValuesOutOfRange) {
  auto req = encode(sample_join_request());
  auto bad_role = edited<w::JoinRequest>(req, [](w::JoinRequest::Builder b) {
    b.getSelf().setRole(static_cast<w::Role>(3));
  });
  EXPECT_TRUE(contains(err_of(decode_join_request(bytes_of(bad_role)), "join request"), "role 3"));
  auto bad_rank = edited<w::JoinRequest>(req, [](w::JoinRequest::Builder b) { b.getSelf().setRank(-2); });
  err_of(decode_join_request(bytes_of(bad_rank)), "join request");
  auto bad_world = edited<w::JoinRequest>(req, [](w::JoinRequest::Builder b) { b.setWorldSize(-1); });
  err_of(decode_join_request(bytes_of(bad_world)), "join request");
  auto bad_beat = edited<w::JoinReply>(encode(sample_join_reply()),
                                       [](w::JoinReply::Builder b) { b.setHeartbeatMs(-5); });
  err_of(decode_join_reply(bytes_of(bad_beat)), "join reply");
  // A text that is not NUL-terminated is caught by Cap'n Proto's own checks.
  auto b = encode(sample_barrier_request());
  auto pos = std::string(b.begin(), b.end()).find("epoch-1/end");
  ASSERT_NE(pos, std::string::npos);
  b[pos + 11] = 'X';
  err_of(decode_barrier_request(bytes_of(b)), "barrier request");
}

TEST(WireHostile, GraphUnknownOpName) {
  auto b = edited<w::Graph>(small_graph(), [](w::Graph::Builder g) { g.getNodes()[3].setOp("frobnicate"); });
  EXPECT_TRUE(contains(graph_error(b), "node 3: unknown op 'frobnicate'"));
  auto binary = edited<w::Graph>(small_graph(), [](w::Graph::Builder g) {
    g.getNodes()[0].setOp(capnp::Text::Reader("re\x01lu", 5));
  });
  EXPECT_TRUE(contains(graph_error(binary), "unknown op 're\\x01lu'"));
}

TEST(WireHostile, GraphInputReferences) {
  for (int32_t bad : {3, 2, 100, -1, INT32_MIN}) {
    auto b = edited<w::Graph>(small_graph(), [&](w::Graph::Builder g) { g.getNodes()[2].getInputs().set(1, bad); });
    EXPECT_TRUE(contains(graph_error(b), "input " + std::to_string(bad) + " is not an earlier node")) << bad;
  }
}

TEST(WireHostile, GraphWrongArity) {
  auto b = edited<w::Graph>(small_graph(), [](w::Graph::Builder g) {
    auto in = g.getNodes()[3].initInputs(2);
    in.set(0, 0);
    in.set(1, 1);
  });
  EXPECT_TRUE(contains(graph_error(b), "takes 1 inputs, got 2"));
  auto none = edited<w::Graph>(small_graph(), [](w::Graph::Builder g) { g.getNodes()[2].initInputs(0); });
  EXPECT_TRUE(contains(graph_error(none), "takes 2 inputs, got 0"));
}

TEST(WireHostile, GraphDeclaredTypeOrShapeMismatch) {
  auto shape_b = edited<w::Graph>(small_graph(), [](w::Graph::Builder g) {
    auto s = g.getNodes()[3].initShape(2);
    s.set(0, 3);
    s.set(1, 2);
  });
  EXPECT_TRUE(contains(graph_error(shape_b), "is declared f32[3, 2] but infers to f32[2, 3]"));
  auto type_b = edited<w::Graph>(small_graph(), [](w::Graph::Builder g) { g.getNodes()[2].setDtype(1); });
  EXPECT_TRUE(contains(graph_error(type_b), "is declared f64[2, 3] but infers to f32[2, 3]"));
  // A placeholder whose target disagrees makes the add's shapes mismatch.
  auto bcast = edited<w::Graph>(small_graph(), [](w::Graph::Builder g) {
    for (auto s : {g.getNodes()[1].getShape(), g.getNodes()[1].getAttrs().getTarget()}) s.set(1, 5);
  });
  EXPECT_TRUE(contains(graph_error(bcast), "do not broadcast"));
  auto bad_code = edited<w::Graph>(small_graph(), [](w::Graph::Builder g) { g.getNodes()[1].setDtype(42); });
  EXPECT_TRUE(contains(graph_error(bad_code), "unknown dtype code 42"));
}

TEST(WireHostile, GraphNamesAndLimits) {
  auto dup = edited<w::Graph>(small_graph(), [](w::Graph::Builder g) { g.getNodes()[1].setName("x"); });
  EXPECT_TRUE(contains(graph_error(dup), "already used"));
  auto empty = edited<w::Graph>(small_graph(), [](w::Graph::Builder g) { g.getNodes()[1].setName(""); });
  EXPECT_TRUE(contains(graph_error(empty), "has no name"));
  auto rank17 = edited<w::Graph>(small_graph(), [](w::Graph::Builder g) {
    auto s = g.getNodes()[0].initShape(17);
    for (uint i = 0; i < 17; ++i) s.set(i, 1);
  });
  EXPECT_TRUE(contains(graph_error(rank17), "rank 17"));
  auto huge = edited<w::Graph>(small_graph(), [](w::Graph::Builder g) {
    auto t = g.getNodes()[0].getAttrs().initTarget(3);
    for (uint i = 0; i < 3; ++i) t.set(i, int64_t{1} << 30);
  });
  EXPECT_TRUE(contains(graph_error(huge), "more than"));
  auto below = edited<w::Graph>(small_graph(), [](w::Graph::Builder g) { g.getNodes()[0].getShape().set(0, -2); });
  EXPECT_TRUE(contains(graph_error(below), "dim -2"));
  auto init = edited<w::Graph>(small_graph(), [](w::Graph::Builder g) {
    g.getNodes()[0].getAttrs().getInit().setKind(9);
  });
  EXPECT_TRUE(contains(graph_error(init), "unknown initializer kind 9"));
}

TEST(WireHostile, GraphSourceInvariants) {
  graph g;
  g.constant(tensor::from<float>({2}, {1, 2}), "c");
  g.variable("v", {2, 2}, init::zeros());
  auto x = g.placeholder("x", dtype::f32, {2, 2});
  pad(x, {1, 0}, {0, 1});
  auto valid = encode_graph(g);
  ASSERT_TRUE(decode_graph(bytes_of(valid)).ok());

  auto wrong_value = edited<w::Graph>(valid, [](w::Graph::Builder b) {
    auto t = b.getNodes()[0].getAttrs().getValue().initShape(2);
    t.set(0, 1);
    t.set(1, 2);
  });
  EXPECT_TRUE(contains(graph_error(wrong_value), "does not match its declared f32[2]"));
  auto no_value = edited<w::Graph>(valid, [](w::Graph::Builder b) {
    b.getNodes()[0].getAttrs().disownValue();
  });
  EXPECT_TRUE(contains(graph_error(no_value), "a constant without a value"));
  auto bad_value = edited<w::Graph>(valid, [](w::Graph::Builder b) {
    b.getNodes()[0].getAttrs().getValue().setDtype(200);
  });
  EXPECT_TRUE(contains(graph_error(bad_value), "unknown dtype code 200"));
  auto unknown_var = edited<w::Graph>(valid, [](w::Graph::Builder b) {
    b.getNodes()[1].getAttrs().getTarget().set(0, -1);
    b.getNodes()[1].getShape().set(0, -1);
  });
  EXPECT_TRUE(contains(graph_error(unknown_var), "fully known shape"));
  auto huge_pad = edited<w::Graph>(valid, [](w::Graph::Builder b) {
    b.getNodes()[3].getAttrs().getAxes2().set(1, INT64_MAX);
  });
  EXPECT_TRUE(contains(graph_error(huge_pad), "pad amount"));
}

TEST(WireHostile, GraphUpdateOfANonVariable) {
  graph g;
  auto var = g.variable("w", {3}, init::zeros());
  auto c = g.constant(tensor::from<float>({3}, {1, 2, 3}), "c");
  auto lr = g.constant(tensor::scalar<float>(0.5f), "lr");
  g.add(op_kind::sgd_update, {var.id(), c.id(), lr.id()}, {}, "w/update");
  auto valid = encode_graph(g);
  ASSERT_TRUE(decode_graph(bytes_of(valid)).ok());
  auto b = edited<w::Graph>(valid, [](w::Graph::Builder gb) { gb.getNodes()[3].getInputs().set(0, 1); });
  EXPECT_TRUE(contains(graph_error(b), "updates node 1, which is not a variable"));
}

TEST(WireHostile, GraphBatchNormUpdatesOnlyNonTrainableVariables) {
  // batch_norm_stats writes its running statistics while training: the
  // decoder refuses one pointed at a fed input or a trainable variable.
  graph g;
  auto x = g.placeholder("x", dtype::f32, {4, 3});     // node 0
  auto fed = g.placeholder("fed", dtype::f32, {3});    // node 1
  auto weight = g.variable("weight", {3}, init::zeros()); // node 2, trainable
  auto rm = g.variable("rm", {3}, init::zeros(), dtype::f32, false); // node 3
  auto rv = g.variable("rv", {3}, init::constant(1), dtype::f32, false); // node 4
  op_attrs a;
  a.eps = 1e-5;
  a.alpha = 0.1;
  g.add(op_kind::batch_norm_stats, {x.id(), rm.id(), rv.id()}, a, "stats"); // node 5
  (void)fed;
  (void)weight;
  auto valid = encode_graph(g);
  ASSERT_TRUE(decode_graph(bytes_of(valid)).ok());
  auto from_feed = edited<w::Graph>(valid, [](w::Graph::Builder gb) { gb.getNodes()[5].getInputs().set(1, 1); });
  EXPECT_TRUE(contains(graph_error(from_feed), "updates node 1 (its running mean), which is not a non-trainable variable"));
  auto trainable = edited<w::Graph>(valid, [](w::Graph::Builder gb) { gb.getNodes()[5].getInputs().set(2, 2); });
  EXPECT_TRUE(contains(graph_error(trainable), "updates node 2 (its running variance), which is not a non-trainable variable"));
}

TEST(WireHostile, GraphSliceGradRanks) {
  // slice_grad's inference indexes the slice by the gradient's rank: the
  // decoder refuses a gradient whose rank differs before inference runs.
  graph g;
  auto x = g.placeholder("x", dtype::f32, {2, 3});
  auto dy = g.placeholder("dy", dtype::f32, {1, 3});
  g.placeholder("dy3", dtype::f32, {1, 3, 4});
  op_attrs s;
  s.axes = {0};
  s.axes2 = {1};
  g.add(op_kind::slice_grad, {dy.id(), x.id()}, s, "dx");
  auto valid = encode_graph(g);
  ASSERT_TRUE(decode_graph(bytes_of(valid)).ok());
  auto b = edited<w::Graph>(valid, [](w::Graph::Builder gb) { gb.getNodes()[3].getInputs().set(0, 2); });
  EXPECT_TRUE(contains(graph_error(b), "the gradient's rank 3 differs from the sliced input's 2"));
}

} // namespace
} // namespace luoshu::transport

namespace luoshu::transport {
namespace {

using namespace luoshu::transport::test;

TEST(WirePs, RequestsAndRepliesRoundTrip) {
  std::mt19937_64 rng(3);
  for (const ps_request& m : {sample_ps_push(rng), sample_ps_create()}) {
    auto back = decode_ps_request(bytes_of(encode(m)));
    ASSERT_TRUE(back.ok()) << back.err().message;
    EXPECT_TRUE(*back == m) << name(m.op);
  }
  ps_request f;
  f.op = ps_op::func;
  f.func = "clip_rows";
  f.args = {0.5};
  f.path = "/ckpt";
  auto fb = decode_ps_request(bytes_of(encode(f)));
  ASSERT_TRUE(fb.ok());
  EXPECT_TRUE(*fb == f);
  ps_reply r = sample_ps_reply(rng);
  r.error = "table 'x': row 5 is out of range [0, 3)";
  auto rb = decode_ps_reply(bytes_of(encode(r)));
  ASSERT_TRUE(rb.ok()) << rb.err().message;
  EXPECT_EQ(rb->seq, r.seq);
  EXPECT_EQ(rb->error, r.error);
  EXPECT_TRUE(same_tensor(rb->values, r.values));
  EXPECT_EQ(rb->partial, r.partial);
  EXPECT_EQ(rb->staleness, r.staleness);
}

TEST(WirePs, MalformedRequestsAreRefusedNamingTheProblem) {
  std::mt19937_64 rng(4);
  auto refused = [](const ps_request& m, const std::string& what) {
    auto r = decode_ps_request(bytes_of(encode(m)));
    ASSERT_FALSE(r.ok()) << "accepted: " << what;
    EXPECT_NE(r.err().message.find(what), std::string::npos) << r.err().message;
  };
  ps_request push = sample_ps_push(rng);
  push.values = random_tensor(dtype::f32, {2, 4}, rng); // 3 keys
  refused(push, "for 3 keys");
  push.values = random_tensor(dtype::i64, {3, 4}, rng);
  refused(push, "want f32/f64");
  push.values = tensor();
  refused(push, "push_pull without values");
  ps_request neg = sample_ps_push(rng);
  neg.worker = -2;
  refused(neg, "worker -2 is negative");
  ps_request c = sample_ps_create();
  c.spec.width = 0;
  refused(c, "has width 0");
  c = sample_ps_create();
  c.spec.type = dtype::i32;
  refused(c, "f32 or f64 only");
  c = sample_ps_create();
  c.spec.sparse = false;
  c.spec.rows = 0;
  refused(c, "has no rows");
}

TEST(WireCollective, MessagesRoundTrip) {
  for (const collective_message& m : {sample_collective_chunk(), sample_collective_hello(), sample_collective_abort()}) {
    auto back = decode_collective_message(bytes_of(encode(m)));
    ASSERT_TRUE(back.ok()) << back.err().message;
    EXPECT_EQ(back->kind, m.kind);
    EXPECT_EQ(back->chunk, m.kind == collective_message::kind_t::chunk ? m.chunk : collective_chunk{});
    EXPECT_EQ(back->hello, m.kind == collective_message::kind_t::hello ? m.hello : collective_hello{});
    EXPECT_EQ(back->abort, m.kind == collective_message::kind_t::abort ? m.abort : collective_abort{});
  }
}

TEST(WireCollective, MalformedMessagesAreRefusedNamingTheProblem) {
  auto refused = [](const collective_message& m, const std::string& what) {
    auto r = decode_collective_message(bytes_of(encode(m)));
    ASSERT_FALSE(r.ok()) << "accepted: " << what;
    EXPECT_NE(r.err().message.find(what), std::string::npos) << r.err().message;
  };
  collective_message c = sample_collective_chunk();
  c.chunk.offset = 3900;
  c.chunk.count = 200; // past the 4001 elements
  refused(c, "outside a buffer of 4001 elements");
  c = sample_collective_chunk();
  c.chunk.offset = ~uint64_t{0};
  refused(c, "outside a buffer");
  c = sample_collective_chunk();
  c.chunk.total = uint64_t{1} << 62; // x 8 bytes overflows
  c.chunk.count = 1;
  refused(c, "exceeds the limit");
  c = sample_collective_chunk();
  c.chunk.type = static_cast<dtype>(dtype_count);
  refused(c, "unknown dtype code");
  c = sample_collective_chunk();
  c.chunk.reduce = static_cast<reduce_op>(9);
  refused(c, "unknown reduce op 9");
  c = sample_collective_chunk();
  c.chunk.kind = static_cast<collective_kind>(7);
  refused(c, "unknown collective kind 7");
  c = sample_collective_chunk();
  c.chunk.slot = -2;
  refused(c, "shared-memory slot -2");
  collective_message h = sample_collective_hello();
  h.hello.rank = 4;
  refused(h, "rank 4 of 4");
  h.hello.rank = -1;
  refused(h, "rank -1 of 4");
  h = sample_collective_hello();
  h.hello.group = std::string(max_name_bytes + 1, 'g');
  refused(h, "collective group is");
  h = sample_collective_hello();
  h.hello.shm_name = std::string(max_name_bytes + 1, 's');
  refused(h, "shared-memory name is");
  collective_message a = sample_collective_abort();
  a.abort.failed_rank = -5;
  refused(a, "failed rank -5");
}

} // namespace
} // namespace luoshu::transport
