// A seeded mutation fuzzer over every wire message type: valid encodings
// are bit-flipped, overwritten, truncated, extended and word-swapped, and
// each decode must come back as a value or an error — never a crash, a hang
// or a runaway allocation (run under ASan/UBSan to see the first two). A
// value that decodes must encode and decode again to the same bytes. A
// second, structure-aware pass rewrites graph nodes with wild ops, inputs
// and attributes, to drive hostile values into graph::add's inference.

#include "transport/codec.hpp"

#include <gtest/gtest.h>

#include <capnp/message.h>
#include <capnp/serialize.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <iostream>
#include <iterator>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "graph.capnp.h"
#include "tests/transport/samples.hpp"

namespace luoshu::transport {
namespace {

using namespace luoshu::transport::test;
namespace w = luoshu::transport::wire;

/// Decodes `bytes`: 0 on an error (which must carry the prefix), 1 on a
/// value, which is then re-encoded and must decode and re-encode the same.
using check_fn = std::function<int(std::span<const char>)>;

template <class Decode, class Encode>
check_fn checker(Decode decode, Encode encode) {
  return [=](std::span<const char> bytes) -> int {
    auto r = decode(bytes);
    if (!r.ok()) {
      const std::string& m = r.err().message;
      EXPECT_EQ(m.rfind("transport: malformed ", 0), 0u) << m;
      EXPECT_TRUE(std::all_of(m.begin(), m.end(), [](char ch) { return ch >= 0x20 && ch < 0x7f; }))
          << "error messages escape hostile bytes: " << m;
      return 0;
    }
    auto again = encode(*r);
    auto r2 = decode(std::span<const char>(again.data(), again.size()));
    EXPECT_TRUE(r2.ok()) << "a decoded value must re-encode to valid bytes: "
                         << (r2.ok() ? "" : r2.err().message);
    if (r2.ok()) {
      EXPECT_EQ(encode(*r2), again) << "re-encoding is not stable";
    }
    return 1;
  };
}

// A run is deterministic. For a wider manual search, LUOSHU_FUZZ_SEED picks
// another seed and LUOSHU_FUZZ_SCALE multiplies the iteration counts.
uint64_t seed(uint64_t fixed) {
  const char* s = std::getenv("LUOSHU_FUZZ_SEED");
  return s ? std::strtoull(s, nullptr, 0) : fixed;
}
int scale() {
  const char* s = std::getenv("LUOSHU_FUZZ_SCALE");
  return s ? std::clamp(std::atoi(s), 1, 1000) : 1;
}

struct corpus_entry {
  std::string what;
  wire_bytes valid;
  check_fn check;
};

std::vector<corpus_entry> corpus() {
  std::mt19937_64 rng(17);
  std::vector<corpus_entry> c;
  auto tensor_enc = [](const tensor_message& m) { return encode(m); };
  auto tensor_check = checker(decode_tensor_message, tensor_enc);
  c.push_back({"join request", encode(sample_join_request()),
               checker(decode_join_request, [](const join_request& m) { return encode(m); })});
  c.push_back({"join reply", encode(sample_join_reply()),
               checker(decode_join_reply, [](const join_reply& m) { return encode(m); })});
  c.push_back({"barrier request", encode(sample_barrier_request()),
               checker(decode_barrier_request, [](const barrier_request& m) { return encode(m); })});
  for (int d = 0; d < dtype_count; ++d)
    c.push_back({std::string("tensor ") + name(static_cast<dtype>(d)),
                 encode(tensor_message{"grad/w", 42, random_tensor(static_cast<dtype>(d), {3, 2}, rng)}),
                 tensor_check});
  c.push_back({"tensor 0-d", encode(tensor_message{"s", 1, tensor::scalar<float>(1.5f)}), tensor_check});
  c.push_back({"tensor empty", encode(tensor_message{"e", 1, tensor(dtype::f64, {0, 4})}), tensor_check});

  auto ps_check = checker(decode_ps_request, [](const ps_request& m) { return encode(m); });
  c.push_back({"ps push", encode(sample_ps_push(rng)), ps_check});
  c.push_back({"ps create", encode(sample_ps_create()), ps_check});
  c.push_back({"ps reply", encode(sample_ps_reply(rng)),
               checker(decode_ps_reply, [](const ps_reply& m) { return encode(m); })});

  auto collective_check = checker(decode_collective_message, [](const collective_message& m) { return encode(m); });
  c.push_back({"collective chunk", encode(sample_collective_chunk()), collective_check});
  c.push_back({"collective hello", encode(sample_collective_hello()), collective_check});
  c.push_back({"collective abort", encode(sample_collective_abort()), collective_check});

  auto graph_check = checker(decode_graph, [](const std::unique_ptr<graph>& g) { return encode_graph(*g); });
  // A small graph (mutations hit its structure often) and an MLP with its
  // gradients and sgd updates.
  graph small;
  auto x = small.placeholder("x", dtype::f32, {shape::unknown, 3});
  auto weight = small.variable("w", {3, 2}, init::uniform(-1, 1));
  small.constant(tensor::from<int32_t>({2}, {4, 5}), "k");
  sum(softmax(matmul(x, weight)), {1}, true);
  c.push_back({"graph small", encode_graph(small), graph_check});
  mlp m;
  c.push_back({"graph mlp", encode_graph(m.g), graph_check});
  return c;
}

/// One to four mutations of `b`. Size changes are rarer than in-place
/// ones, which get past the size checks and reach the content checks.
void mutate(wire_bytes& b, std::mt19937_64& rng) {
  auto pick = [&](size_t n) { return n == 0 ? size_t{0} : static_cast<size_t>(rng() % n); };
  static constexpr int kinds[16] = {0, 0, 0, 1, 1, 1, 2, 3, 4, 4, 5, 5, 5, 6, 6, 0};
  int count = 1 + static_cast<int>(rng() % 4);
  for (int k = 0; k < count; ++k) {
    switch (kinds[rng() % 16]) {
      case 0: // bit flip
        if (!b.empty()) b[pick(b.size())] ^= static_cast<char>(1u << (rng() % 8));
        break;
      case 1: // byte overwrite (often with the interesting 0x00 / 0xff)
        if (!b.empty()) {
          static constexpr unsigned char special[] = {0x00, 0xff, 0x7f, 0x80, 0x01};
          b[pick(b.size())] = static_cast<char>(rng() % 2 ? special[rng() % 5] : rng());
        }
        break;
      case 2: // truncation, mostly to a whole number of words
        if (!b.empty()) {
          size_t n = pick(b.size());
          if (rng() % 4 != 0) n -= n % 8;
          b.resize(n);
        }
        break;
      case 3: { // extension with random bytes
        size_t n = 1 + pick(64);
        if (rng() % 4 != 0) n = (n + 7) / 8 * 8;
        for (size_t i = 0; i < n; ++i) b.push_back(static_cast<char>(rng()));
        break;
      }
      case 4: // swap two 8-byte words
        if (b.size() >= 16) {
          size_t words = b.size() / 8, i = pick(words), j = pick(words);
          std::swap_ranges(b.begin() + static_cast<long>(i * 8), b.begin() + static_cast<long>(i * 8 + 8),
                           b.begin() + static_cast<long>(j * 8));
        }
        break;
      case 5: // overwrite a word with a small or extreme integer (hits sizes, offsets, counts)
        if (b.size() >= 8) {
          static constexpr uint64_t special[] = {0, 1, 0xffffffffull, 0xffffffffffffffffull,
                                                 0x7fffffffffffffffull, 0x0000000100000000ull};
          uint64_t v = rng() % 2 ? special[rng() % 6] : rng() % 4096;
          std::memcpy(b.data() + pick(b.size() / 8) * 8, &v, 8);
        }
        break;
      case 6: // duplicate a word somewhere else (copies pointers)
        if (b.size() >= 16) {
          size_t words = b.size() / 8, i = pick(words), j = pick(words);
          std::memmove(b.data() + j * 8, b.data() + i * 8, 8);
        }
        break;
    }
  }
}

TEST(WireFuzz, MutationsDecodeToValueOrError) {
  auto c = corpus();
  // Every corpus entry is valid to start with.
  for (const auto& e : c) ASSERT_EQ(e.check({e.valid.data(), e.valid.size()}), 1) << e.what;

  const int per_entry = 5000 * scale();
  std::mt19937_64 rng(seed(0x5eed1u));
  std::vector<int> ok(c.size()), err(c.size());
  double slowest_ms = 0;
  std::string slowest_what;
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < per_entry; ++i) {
    for (size_t k = 0; k < c.size(); ++k) {
      wire_bytes b = c[k].valid;
      mutate(b, rng);
      const auto t0 = std::chrono::steady_clock::now();
      int r = c[k].check({b.data(), b.size()});
      const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
      if (ms > slowest_ms) {
        slowest_ms = ms;
        slowest_what = c[k].what;
      }
      (r == 1 ? ok : err)[k]++;
    }
  }
  const double total_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  int total_ok = 0, total_err = 0;
  for (size_t k = 0; k < c.size(); ++k) {
    std::cout << "  " << c[k].what << ": ok " << ok[k] << ", error " << err[k] << "\n";
    total_ok += ok[k];
    total_err += err[k];
    // Most mutations must be caught, and each message type sees both outcomes.
    EXPECT_GT(err[k], 0) << c[k].what;
  }
  std::cout << "fuzz: " << total_ok + total_err << " mutated inputs, ok " << total_ok << ", error "
            << total_err << ", " << total_s << " s, slowest decode " << slowest_ms << " ms ("
            << slowest_what << ")" << std::endl;
  EXPECT_GE(total_ok + total_err, 10000);
  EXPECT_GT(total_ok, 0) << "some mutations (e.g. of tensor bytes) must still decode";
  // A decode is linear in its input: none may take long (a hang would).
  EXPECT_LT(slowest_ms, 2000.0);
}

TEST(WireFuzz, RandomBytesDecodeToValueOrError) {
  auto c = corpus();
  std::mt19937_64 rng(0xbadc0deu);
  int ok = 0, err = 0;
  for (int i = 0; i < 2000; ++i) {
    wire_bytes b(8 * (1 + rng() % 32));
    for (auto& ch : b) ch = static_cast<char>(rng());
    // Plausible headers half the time: one segment of the remaining size.
    if (rng() % 2) {
      uint32_t zero = 0, words = static_cast<uint32_t>(b.size() / 8 - 1);
      std::memcpy(b.data(), &zero, 4);
      std::memcpy(b.data() + 4, &words, 4);
    }
    for (const auto& e : c) (e.check({b.data(), b.size()}) == 1 ? ok : err)++;
  }
  std::cout << "random: ok " << ok << ", error " << err << std::endl;
  EXPECT_GT(err, 0);
}

/// A graph with every op_attrs member in use (and a constant).
wire_bytes attrs_graph() {
  graph g;
  auto x = g.placeholder("x", dtype::f32, {shape::unknown, 4});
  auto y = g.placeholder("y", dtype::f32, {4, 4});
  auto ids = g.placeholder("ids", dtype::i64, {5});
  sum(y, {1}, true);
  slice(y, {1, -3}, {INT64_MAX, 3});
  pad(y, {0, 1}, {2, 0}, 1.5);
  reshape(x, {-1, 2});
  clamp(y, -0.5, 0.75);
  softmax(y, 0);
  matmul(y, y, true, true);
  dropout(y, 0.25, 99);
  cast(y, dtype::i64);
  gather(y, ids, 1);
  one_hot(ids, 6);
  transpose(y, {1, 0});
  concat({y, y, y}, 1);
  broadcast_to(g.constant(tensor::from<float>({4}, {1, 2, 3, 4}), "c"), {3, 4});
  g.variable("v", {3, 2}, init::he_uniform(), dtype::f64, false);
  return encode_graph(g);
}

/// Values that break naive arithmetic on dims and axes.
int64_t wild_int(std::mt19937_64& rng) {
  static constexpr int64_t v[] = {0, 1, 2, 3, 6, -1, -2, -3, -17, 17, int64_t{1} << 24, int64_t{1} << 48,
                                  (int64_t{1} << 48) + 1, -(int64_t{1} << 48), int64_t{1} << 62,
                                  INT64_MAX, INT64_MIN, INT64_MAX - 1, INT64_MIN + 1};
  return rng() % 3 == 0 ? static_cast<int64_t>(rng()) : v[rng() % std::size(v)];
}

double wild_double(std::mt19937_64& rng) {
  static constexpr double v[] = {0.0, -0.0, 0.5, 1.0, -1.0, 1e300, -1e300,
                                 std::numeric_limits<double>::quiet_NaN(),
                                 std::numeric_limits<double>::infinity(),
                                 -std::numeric_limits<double>::infinity()};
  return v[rng() % std::size(v)];
}

void wild_list(capnp::List<int64_t>::Builder l, std::mt19937_64& rng) {
  for (uint i = 0; i < l.size(); ++i) l.set(i, rng() % 2 ? wild_int(rng) : static_cast<int64_t>(rng() % 5) - 1);
}

/// Rewrites node k of a graph message: another op, other inputs, wild
/// attributes and (half the time) another declared dtype and shape. This
/// drives hostile values into graph::add's shape inference.
void mutate_node(w::Graph::Builder g, std::mt19937_64& rng) {
  auto nodes = g.getNodes();
  const uint k = static_cast<uint>(rng() % nodes.size());
  auto n = nodes[k];
  op_kind op = static_cast<op_kind>(rng() % op_count);
  if (rng() % 4 != 0) n.setOp(name(op));
  if (rng() % 4 != 0) {
    // Mostly as many inputs as the op takes, so inference runs.
    int arity = info(op).arity < 0 ? 1 + static_cast<int>(rng() % 4) : info(op).arity;
    auto in = n.initInputs(static_cast<uint>(rng() % 4 == 0 ? rng() % 5 : static_cast<uint64_t>(arity)));
    for (uint i = 0; i < in.size(); ++i)
      in.set(i, rng() % 10 == 0 ? static_cast<int32_t>(rng()) : static_cast<int32_t>(rng() % (k + 1)));
  }
  auto a = n.getAttrs();
  switch (rng() % 3) {
    case 0: wild_list(a.initAxes(static_cast<uint>(rng() % 5)), rng); break;
    case 1: wild_list(a.initAxes2(static_cast<uint>(rng() % 5)), rng); break;
    default: wild_list(a.initTarget(static_cast<uint>(rng() % 5)), rng); break;
  }
  if (rng() % 2) a.setAxis(wild_int(rng));
  if (rng() % 2) a.setAlpha(wild_double(rng));
  if (rng() % 2) a.setBeta(wild_double(rng));
  if (rng() % 4 == 0) a.setTo(static_cast<uint8_t>(rng() % 9));
  a.setKeepdims(rng() % 2);
  a.setTransA(rng() % 2);
  a.setTransB(rng() % 2);
  a.setFlag(rng() % 2);
  if (rng() % 2) {
    n.setDtype(static_cast<uint8_t>(rng() % 8));
    wild_list(n.initShape(static_cast<uint>(rng() % 4)), rng);
  }
}

TEST(WireFuzz, StructuredMutationsReachShapeInference) {
  std::vector<wire_bytes> bases{attrs_graph(), encode_graph(mlp().g)};
  for (const auto& b : bases) ASSERT_TRUE(decode_graph(bytes_of(b)).ok());
  auto check = checker(decode_graph, [](const std::unique_ptr<graph>& g) { return encode_graph(*g); });
  std::mt19937_64 rng(seed(0xa77u));
  const int iterations = 20000 * scale();
  int ok = 0, err = 0, inferred = 0;
  for (int i = 0; i < iterations; ++i) {
    const wire_bytes& base = bases[static_cast<size_t>(i) % bases.size()];
    auto words = kj::heapArray<capnp::word>(base.size() / sizeof(capnp::word));
    std::memcpy(words.begin(), base.data(), base.size());
    capnp::MallocMessageBuilder mb;
    capnp::initMessageBuilderFromFlatArrayCopy(words.asPtr(), mb);
    int edits = 1 + static_cast<int>(rng() % 3);
    for (int e = 0; e < edits; ++e) mutate_node(mb.getRoot<w::Graph>(), rng);
    auto flat = capnp::messageToFlatArray(mb);
    auto chars = flat.asChars();
    auto r = decode_graph({chars.begin(), chars.size()});
    // Errors raised by graph::add (shape inference) or by the declared-shape check.
    if (!r.ok() && (r.err().message.find(": op '") != std::string::npos ||
                    r.err().message.find("infers to") != std::string::npos))
      ++inferred;
    (check({chars.begin(), chars.size()}) == 1 ? ok : err)++;
  }
  std::cout << "structured: ok " << ok << ", error " << err << " (" << inferred
            << " after shape inference ran)" << std::endl;
  EXPECT_GT(inferred, 1000) << "the mutations must reach graph::add";
  EXPECT_GT(err, 0);
}

} // namespace
} // namespace luoshu::transport
