// Ring collectives among communicators in one process (one actor system,
// loopback lanes, OS-chosen ports): all-reduce, all-gather(v),
// reduce-scatter and broadcast over 1, 2, 3, 4 and 8 ranks, awkward sizes
// and every dtype, in place and out of place, many collectives in flight,
// and failures: a mismatched call, a rank that leaves, a silent rank. With
// a GPU: an NCCL communicator whose id travels over the ring.

#include <gtest/gtest.h>

#include <caf/all.hpp>

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <chrono>
#include <tuple>
#include <thread>

#include "actors/collective.hpp"
#include "actors/runtime.hpp"
#include "graph/device_backend.hpp"
#include "graph/nccl.hpp"
#include "ops/cuda/runtime.hpp"
#include "ops/kernel.hpp"

using namespace luoshu;
using namespace luoshu::actors;

namespace {

struct ring {
  runtime_config cfg;
  caf::actor_system sys{cfg};
  std::vector<std::unique_ptr<communicator>> comms;
  explicit ring(int n, collective_options o = {}) {
    const bool shm = o.shm_slots > 0 && n > 1;
    auto c = communicator::create_local(sys, n, std::move(o));
    if (!c) throw std::runtime_error(c.err().message);
    comms = std::move(*c);
    // Settled by create: every rank sends through shared memory when it
    // was offered (one host here), none when it was not.
    for (auto& k : comms)
      if (k->shared_memory() != shm)
        throw std::runtime_error(shm ? "shared memory was not accepted" : "shared memory in use though not offered");
  }
  ~ring() { comms.clear(); }
};

/// Rank r's element i: small integers, so float sums are exact.
double value(int r, int64_t i) { return static_cast<double>(((i * 7 + r * 13) % 23) - 11 + r); }

tensor filled(dtype t, int64_t n, int r) {
  tensor x(t, shape{n});
  auto put = [&]<class T>(T* p) {
    for (int64_t i = 0; i < n; ++i) p[i] = static_cast<T>(value(r, i));
  };
  switch (t) {
    case dtype::f32: put(x.data<float>()); break;
    case dtype::f64: put(x.data<double>()); break;
    case dtype::i32: put(x.data<int32_t>()); break;
    case dtype::i64: put(x.data<int64_t>()); break;
    default: break;
  }
  return x;
}

double expected(reduce_op op, int n, int64_t i, dtype t) {
  double acc = value(0, i);
  for (int r = 1; r < n; ++r) {
    const double v = value(r, i);
    if (op == reduce_op::sum || op == reduce_op::mean) acc += v;
    if (op == reduce_op::max) acc = std::max(acc, v);
    if (op == reduce_op::min) acc = std::min(acc, v);
  }
  if (op == reduce_op::mean) {
    acc /= n;
    if (t == dtype::i32 || t == dtype::i64) acc = std::trunc(acc);
  }
  return acc;
}

void expect_values(const tensor& got, const std::function<double(int64_t)>& want, const std::string& what) {
  auto v = got.to_doubles();
  for (size_t i = 0; i < v.size(); ++i) {
    const double w = want(static_cast<int64_t>(i));
    if (std::abs(v[i] - w) > 1e-5 * std::max(1.0, std::abs(w))) {
      ADD_FAILURE() << what << ": element " << i << " is " << v[i] << ", expected " << w;
      return;
    }
  }
}

const dtype all_types[] = {dtype::f32, dtype::f64, dtype::i32, dtype::i64};

/// Ranks, the shared-memory slots each offers its right neighbour (0: TCP
/// only; 2: most chunks find their slot still in use and go inline), and
/// halving_doubling_max_bytes (0: every all-reduce on the ring; large:
/// every all-reduce by halving and doubling over 4 and 8 ranks).
class ranks : public ::testing::TestWithParam<std::tuple<int, uint32_t, size_t>> {
protected:
  collective_options options() const {
    collective_options o;
    o.shm_slots = std::get<1>(GetParam());
    o.halving_doubling_max_bytes = std::get<2>(GetParam());
    return o;
  }
  /// Whether this ring all-reduces by halving and doubling.
  bool hd() const { return std::get<2>(GetParam()) > 0 && std::get<0>(GetParam()) >= 4; }
};

TEST_P(ranks, AllreduceEverySizeTypeAndOpInPlaceAndNot) {
  const int n = std::get<0>(GetParam());
  collective_options o = options();
  o.chunk_bytes = 256; // many chunks per segment: the pipeline is exercised
  o.timeout = std::chrono::seconds(30);
  ring g(n, o);
  const int64_t sizes[] = {0, 1, n - 1, n, 7919, 100003};
  int round = 0;
  uint64_t calls = 0;
  for (dtype t : all_types)
    for (int64_t size : sizes)
      for (reduce_op op : {reduce_op::sum, reduce_op::mean, reduce_op::max, reduce_op::min}) {
        if (size == 100003 && op != reduce_op::sum) continue; // the large prime once per type
        const bool in_place = (round++ % 2) == 0;
        ++calls;
        std::vector<tensor> in, out(static_cast<size_t>(n));
        std::vector<collective_future> f;
        for (int r = 0; r < n; ++r) {
          in.push_back(filled(t, size, r));
          tensor& dst = in_place ? in.back() : out[static_cast<size_t>(r)];
          f.push_back(g.comms[static_cast<size_t>(r)]->allreduce(in.back(), dst, op));
        }
        for (int r = 0; r < n; ++r) {
          status st = f[static_cast<size_t>(r)].get();
          ASSERT_TRUE(st) << st.err().message;
          const tensor& res = in_place ? in[static_cast<size_t>(r)] : out[static_cast<size_t>(r)];
          ASSERT_EQ(res.numel(), size);
          ASSERT_EQ(res.type(), t);
          expect_values(res, [&](int64_t i) { return expected(op, n, i, t); },
                        std::string(name(t)) + " " + name(op) + " size " + std::to_string(size) + " rank " +
                            std::to_string(r) + (in_place ? " in place" : " out of place"));
          if (!in_place) // the input is untouched
            expect_values(in[static_cast<size_t>(r)], [&](int64_t i) { return value(r, i); }, "input kept");
        }
      }
  for (auto& c : g.comms) {
    EXPECT_EQ(c->failure(), "");
    // The payloads really took the path the parameters ask for, and the
    // all-reduces the algorithm.
    const auto st = c->stats();
    EXPECT_EQ(c->halving_doubling(), hd());
    EXPECT_EQ(st.ops, calls);
    EXPECT_EQ(st.ops_halving_doubling, hd() ? calls : 0u);
    const uint32_t slots = std::get<1>(GetParam());
    if (slots == 0) {
      EXPECT_EQ(st.bytes_sent_shm, 0u);
    } else if (n > 1) {
      EXPECT_GT(st.bytes_sent_shm, 0u);
      if (slots == 2) {
        EXPECT_LT(st.bytes_sent_shm, st.bytes_sent) << "with 2 slots some chunks go inline";
      }
    }
  }
}

TEST_P(ranks, AllgatherReduceScatterAndBroadcast) {
  const int n = std::get<0>(GetParam());
  collective_options o = options();
  // Segments up to 256 bytes (37 f32 among them) go as two halves, larger
  // ones (37 f64) in 128-byte chunks: both cuttings, with uneven all-gather
  // counts and every broadcast root.
  o.chunk_bytes = 128;
  o.split_floor_bytes = 8;
  ring g(n, o);
  for (dtype t : all_types) {
    // All-gather, equal counts, out of place.
    const int64_t count = 37;
    std::vector<tensor> in, out(static_cast<size_t>(n));
    std::vector<collective_future> f;
    for (int r = 0; r < n; ++r) in.push_back(filled(t, count, r));
    for (int r = 0; r < n; ++r) f.push_back(g.comms[static_cast<size_t>(r)]->allgather(in[static_cast<size_t>(r)], out[static_cast<size_t>(r)]));
    for (int r = 0; r < n; ++r) {
      ASSERT_TRUE(f[static_cast<size_t>(r)].get());
      ASSERT_EQ(out[static_cast<size_t>(r)].numel(), count * n);
      expect_values(out[static_cast<size_t>(r)], [&](int64_t i) { return value(static_cast<int>(i / count), i % count); },
                    "allgather " + std::string(name(t)));
    }
    // All-gather with uneven counts (some zero), in place: `in` is out's slice.
    std::vector<int64_t> counts;
    for (int r = 0; r < n; ++r) counts.push_back(r % 3 == 1 ? 0 : 5 + 11 * r);
    int64_t total = 0;
    std::vector<int64_t> start;
    for (auto c : counts) start.push_back(total), total += c;
    f.clear();
    std::vector<tensor> whole;
    for (int r = 0; r < n; ++r) {
      tensor w(t, shape{total});
      tensor mine = filled(t, counts[static_cast<size_t>(r)], r);
      tensor slice(w.storage(), static_cast<size_t>(start[static_cast<size_t>(r)]) * size_of(t), t,
                   shape{counts[static_cast<size_t>(r)]});
      if (mine.numel() != 0) std::memcpy(slice.raw(), mine.raw(), mine.nbytes());
      whole.push_back(w);
      f.push_back(g.comms[static_cast<size_t>(r)]->allgatherv(slice, whole.back(), counts));
    }
    for (int r = 0; r < n; ++r) {
      ASSERT_TRUE(f[static_cast<size_t>(r)].get());
      expect_values(whole[static_cast<size_t>(r)], [&](int64_t i) {
        int k = 0;
        while (i >= start[static_cast<size_t>(k)] + counts[static_cast<size_t>(k)]) ++k;
        return value(k, i - start[static_cast<size_t>(k)]);
      }, "allgatherv " + std::string(name(t)));
    }
    // Reduce-scatter: each rank gets its slice of the sum.
    f.clear();
    in.clear();
    out.assign(static_cast<size_t>(n), tensor());
    const int64_t part = 29;
    for (int r = 0; r < n; ++r) in.push_back(filled(t, part * n, r));
    for (int r = 0; r < n; ++r)
      f.push_back(g.comms[static_cast<size_t>(r)]->reduce_scatter(in[static_cast<size_t>(r)], out[static_cast<size_t>(r)], reduce_op::sum));
    for (int r = 0; r < n; ++r) {
      ASSERT_TRUE(f[static_cast<size_t>(r)].get());
      ASSERT_EQ(out[static_cast<size_t>(r)].numel(), part);
      expect_values(out[static_cast<size_t>(r)], [&](int64_t i) { return expected(reduce_op::sum, n, r * part + i, t); },
                    "reduce_scatter " + std::string(name(t)));
    }
    // Broadcast from every root; the others' buffers start as garbage.
    for (int root = 0; root < n; ++root) {
      f.clear();
      std::vector<tensor> buf;
      for (int r = 0; r < n; ++r) buf.push_back(filled(t, 1001, r == root ? root : 99));
      for (int r = 0; r < n; ++r)
        f.push_back(g.comms[static_cast<size_t>(r)]->broadcast(buf[static_cast<size_t>(r)], buf[static_cast<size_t>(r)], root));
      for (int r = 0; r < n; ++r) {
        ASSERT_TRUE(f[static_cast<size_t>(r)].get());
        expect_values(buf[static_cast<size_t>(r)], [&](int64_t i) { return value(root, i); },
                      "broadcast from " + std::to_string(root));
      }
    }
  }
}

TEST_P(ranks, ManyCollectivesInFlight) {
  // Issued back to back without waiting: ranks run ahead of each other and
  // chunks of later collectives arrive early.
  const int n = std::get<0>(GetParam());
  collective_options o = options();
  o.chunk_bytes = 1024;
  ring g(n, o);
  const int k = 25;
  std::vector<std::vector<tensor>> bufs(static_cast<size_t>(n));
  std::vector<std::vector<collective_future>> f(static_cast<size_t>(n));
  for (int r = 0; r < n; ++r)
    for (int j = 0; j < k; ++j) {
      bufs[static_cast<size_t>(r)].push_back(filled(dtype::f32, 1000 + 97 * j, r));
      f[static_cast<size_t>(r)].push_back(g.comms[static_cast<size_t>(r)]->allreduce(
          bufs[static_cast<size_t>(r)].back(), bufs[static_cast<size_t>(r)].back(), reduce_op::sum));
    }
  for (int r = n - 1; r >= 0; --r)
    for (int j = 0; j < k; ++j) {
      ASSERT_TRUE(f[static_cast<size_t>(r)][static_cast<size_t>(j)].get());
      expect_values(bufs[static_cast<size_t>(r)][static_cast<size_t>(j)],
                    [&](int64_t i) { return expected(reduce_op::sum, n, i, dtype::f32); }, "in flight");
    }
  EXPECT_EQ(g.comms[0]->stats().ops, static_cast<uint64_t>(k));
  EXPECT_EQ(g.comms[0]->stats().ops_halving_doubling, hd() ? static_cast<uint64_t>(k) : 0u);
}

/// Every rank count with 0, 2 and 16 slots on the ring; 4 and 8 ranks (the
/// powers of two that halving-doubling takes) also with it for every size.
std::vector<std::tuple<int, uint32_t, size_t>> ring_params() {
  std::vector<std::tuple<int, uint32_t, size_t>> out;
  for (int n : {1, 2, 3, 4, 8})
    for (uint32_t slots : {0u, 2u, 16u}) {
      out.emplace_back(n, slots, 0);
      if (n >= 4) out.emplace_back(n, slots, size_t{1} << 30);
    }
  return out;
}

INSTANTIATE_TEST_SUITE_P(collective, ranks, ::testing::ValuesIn(ring_params()), [](const auto& p) {
  return std::to_string(std::get<0>(p.param)) + "ranks_" + std::to_string(std::get<1>(p.param)) + "slots" +
         (std::get<2>(p.param) > 0 ? "_halving_doubling" : "");
});

TEST(collective, RingAndHalvingDoublingCallsKeepTheirOrder) {
  // Small all-reduces go by halving and doubling, the rest on the ring;
  // issued back to back, each must see what the one before it wrote.
  collective_options o;
  o.halving_doubling_max_bytes = 4096;
  o.chunk_bytes = 4096;
  const int n = 4;
  ring g(n, o);
  ASSERT_TRUE(g.comms[0]->halving_doubling());
  const int rounds = 8;
  const int64_t big = 30011, small = 101;
  std::vector<std::vector<tensor>> a(n), b(n);
  std::vector<std::vector<collective_future>> f(n);
  for (int j = 0; j < rounds; ++j)
    for (int r = 0; r < n; ++r) {
      auto& c = *g.comms[static_cast<size_t>(r)];
      // a: halving-doubling all-reduce, then a ring broadcast of the result
      // from a rank that must not send before its all-reduce is done.
      a[r].push_back(filled(dtype::f32, small, r + j));
      f[r].push_back(c.allreduce(a[r].back(), a[r].back(), reduce_op::sum));
      f[r].push_back(c.broadcast(a[r].back(), a[r].back(), j % n));
      // b: a ring all-reduce, then a halving-doubling one of its first
      // elements (a view), which must not read them before the ring wrote.
      b[r].push_back(filled(dtype::f32, big, r + j));
      tensor& whole = b[r].back();
      f[r].push_back(c.allreduce(whole, whole, reduce_op::sum));
      tensor head(whole.storage(), whole.offset(), dtype::f32, shape{small});
      f[r].push_back(c.allreduce(head, head, reduce_op::max));
    }
  for (int r = 0; r < n; ++r)
    for (auto& x : f[r]) ASSERT_TRUE(x.get());
  auto sum = [&](int j, int64_t i) {
    double s = 0;
    for (int r = 0; r < n; ++r) s += value(r + j, i);
    return s;
  };
  for (int r = 0; r < n; ++r)
    for (int j = 0; j < rounds; ++j) {
      const std::string what = "rank " + std::to_string(r) + " round " + std::to_string(j);
      expect_values(a[r][static_cast<size_t>(j)], [&](int64_t i) { return sum(j, i); }, what + ": all-reduce, broadcast");
      // The max over ranks of equal sums is that sum; beyond the head, the ring's.
      expect_values(b[r][static_cast<size_t>(j)], [&](int64_t i) { return sum(j, i); }, what + ": ring, then head");
    }
  const auto st = g.comms[0]->stats();
  EXPECT_EQ(st.ops, 4u * rounds);
  EXPECT_EQ(st.ops_halving_doubling, 2u * rounds);
}

/// This process's shared-memory objects in /dev/shm.
std::vector<std::string> own_shm_objects() {
  std::vector<std::string> out;
  const std::string prefix = "luoshu-" + std::to_string(::getpid()) + "-";
  for (const auto& e : std::filesystem::directory_iterator("/dev/shm"))
    if (e.path().filename().string().rfind(prefix, 0) == 0) out.push_back(e.path().string());
  return out;
}

TEST(collective, SharedMemoryLeavesNothingInDevShm) {
  {
    collective_options o;
    o.shm_slots = 4;
    ring g(3, o); // waits until every rank sends through shared memory
    EXPECT_TRUE(own_shm_objects().empty()) << "a mapped object's name is unlinked at once";
    std::vector<tensor> x;
    std::vector<collective_future> f;
    for (int r = 0; r < 3; ++r) x.push_back(filled(dtype::f32, 300000, r));
    for (size_t r = 0; r < 3; ++r) f.push_back(g.comms[r]->allreduce(x[r], x[r], reduce_op::sum));
    for (auto& k : f) ASSERT_TRUE(k.get());
    auto want = [](int64_t i) { return expected(reduce_op::sum, 3, i, dtype::f32); };
    for (size_t r = 0; r < 3; ++r) expect_values(x[r], want, "through shared memory");
    EXPECT_GT(g.comms[0]->stats().bytes_sent_shm, 0u);
  }
  EXPECT_TRUE(own_shm_objects().empty());
}

TEST(collective, SegmentsUpToTwoChunksAreHalvedAndLargerOnesCutIntoChunks) {
  // Default chunk_bytes 512 KiB, split_floor_bytes 256 KiB; f32 all-reduce
  // on the ring, chunks each rank sends over its 2(n-1) steps.
  collective_options o;
  o.halving_doubling_max_bytes = 0;
  struct cut {
    int ranks;
    int64_t elems;
    uint64_t chunks;
  };
  for (const cut& c : {cut{2, 262144, 4},     // 1 MiB: 512 KiB segments in two halves
                       cut{4, 262144, 6},     // 256 KiB segments: halves would be under the floor
                       cut{2, 4194304, 32}}) { // 16 MiB: 8 MiB segments in 512 KiB chunks
    ring g(c.ranks, o);
    std::vector<tensor> x;
    std::vector<collective_future> f;
    for (int r = 0; r < c.ranks; ++r) x.push_back(filled(dtype::f32, c.elems, r));
    for (size_t r = 0; r < x.size(); ++r) f.push_back(g.comms[r]->allreduce(x[r], x[r], reduce_op::sum));
    for (auto& k : f) ASSERT_TRUE(k.get());
    const std::string what = std::to_string(c.ranks) + " ranks, " + std::to_string(c.elems) + " f32";
    expect_values(x[0], [&](int64_t i) { return expected(reduce_op::sum, c.ranks, i, dtype::f32); }, what);
    for (auto& k : g.comms) EXPECT_EQ(k->stats().chunks_sent, c.chunks) << what;
  }
}

TEST(collective, MismatchedCallsFailOnEveryRankNamingTheProblem) {
  for (int n : {3, 4}) { // the ring; halving and doubling (rank 1's pair fails, then every pair)
    ring g(n);
    ASSERT_EQ(g.comms[0]->halving_doubling(), n == 4);
    std::vector<tensor> x;
    std::vector<collective_future> f;
    for (int r = 0; r < n; ++r) {
      x.push_back(filled(dtype::f32, r == 1 ? 11 : 10, r));
      f.push_back(g.comms[static_cast<size_t>(r)]->allreduce(x.back(), x.back(), reduce_op::sum));
    }
    for (int r = 0; r < n; ++r) {
      status st = f[static_cast<size_t>(r)].get();
      ASSERT_FALSE(st) << n << " ranks, rank " << r;
      EXPECT_NE(st.err().message.find("same collectives"), std::string::npos) << st.err().message;
    }
    // The communicator stays failed, with the same error, for either algorithm.
    for (int64_t size : {4, 1 << 20}) {
      tensor y = filled(dtype::f32, size, 0);
      status later = g.comms[0]->allreduce(y, y, reduce_op::sum).get();
      ASSERT_FALSE(later);
      EXPECT_NE(later.err().message.find("same collectives"), std::string::npos) << later.err().message;
    }
  }
}

TEST(collective, BadArgumentsAreErrors) {
  ring g(2);
  tensor a = filled(dtype::f32, 6, 0);
  tensor wrong(dtype::f64, shape{6});
  tensor small(dtype::f32, shape{5});
  tensor u8(dtype::u8, shape{4});
  auto msg = [](collective_future f) {
    status st = f.get();
    return st ? std::string("ok") : st.err().message;
  };
  EXPECT_NE(msg(g.comms[0]->allreduce(a, wrong, reduce_op::sum)).find("out is f64"), std::string::npos);
  EXPECT_NE(msg(g.comms[0]->allreduce(a, small, reduce_op::sum)).find("5 elements, expected 6"), std::string::npos);
  EXPECT_NE(msg(g.comms[0]->allreduce(u8, u8, reduce_op::sum)).find("supported: f32"), std::string::npos);
  EXPECT_NE(msg(g.comms[0]->allreduce(tensor(), a, reduce_op::sum)).find("undefined"), std::string::npos);
  EXPECT_NE(msg(g.comms[0]->reduce_scatter(small, a, reduce_op::sum)).find("not a multiple of 2"), std::string::npos);
  EXPECT_NE(msg(g.comms[0]->broadcast(a, a, 2)).find("root 2"), std::string::npos);
  EXPECT_NE(msg(g.comms[0]->allgatherv(a, a, {6})).find("1 counts for 2 ranks"), std::string::npos);
  // None of that reached the ring: it still works.
  tensor b = filled(dtype::f32, 6, 1);
  auto f0 = g.comms[0]->allreduce(a, a, reduce_op::sum);
  auto f1 = g.comms[1]->allreduce(b, b, reduce_op::sum);
  ASSERT_TRUE(f0.get());
  ASSERT_TRUE(f1.get());
  expect_values(a, [](int64_t i) { return expected(reduce_op::sum, 2, i, dtype::f32); }, "after bad calls");
}

TEST(collective, ARankThatLeavesIsNamedByEverySurvivor) {
  ring g(4);
  g.comms[2].reset(); // rank 2 closes its communicator: it will never take part
  std::vector<tensor> x;
  std::vector<collective_future> f;
  const auto t0 = std::chrono::steady_clock::now();
  for (int r : {0, 1, 3}) {
    x.push_back(filled(dtype::f32, 100000, r));
    f.push_back(g.comms[static_cast<size_t>(r)]->allreduce(x.back(), x.back(), reduce_op::sum));
  }
  for (auto& fu : f) {
    status st = fu.get();
    ASSERT_FALSE(st);
    EXPECT_NE(st.err().message.find("rank 2"), std::string::npos) << st.err().message;
  }
  // Well within the 60 s timeout: the grace period after a rank leaves.
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(15));
}

/// Every rank but 1 starts an all-reduce of 5000 f64, then rank 1's peer
/// actors are killed (as when its process dies: their monitors fire with a
/// reason other than a clean shutdown): every survivor must fail soon,
/// naming rank 1 by its rank in the ring.
void rank_1_dies_mid_allreduce(int n) {
  collective_options o;
  o.timeout = std::chrono::seconds(60);
  ring g(n, o);
  std::vector<tensor> x;
  std::vector<collective_future> f;
  for (int r = 0; r < n; ++r) {
    if (r == 1) continue;
    x.push_back(filled(dtype::f64, 5000, r));
    f.push_back(g.comms[static_cast<size_t>(r)]->allreduce(x.back(), x.back(), reduce_op::sum));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  const auto t0 = std::chrono::steady_clock::now();
  g.comms[1]->kill_for_testing();
  for (auto& fu : f) {
    status st = fu.get();
    ASSERT_FALSE(st);
    EXPECT_NE(st.err().message.find("rank 1 "), std::string::npos) << st.err().message;
  }
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5));
  for (int r = 0; r < n; ++r) {
    if (r == 1) continue;
    EXPECT_NE(g.comms[static_cast<size_t>(r)]->failure(), "") << "rank " << r;
  }
}

TEST(collective, ARankThatDiesIsNamedByEverySurvivor) { rank_1_dies_mid_allreduce(3); }

TEST(collective, ClosingACommunicatorMidCallFailsNoOtherRank) {
  // Rank 0 alone starts a halving-doubling all-reduce, then closes: its call
  // fails, and the others, which issued nothing, are not failed by it (as
  // on the ring: they would learn it only from a collective of their own).
  ring g(4);
  ASSERT_TRUE(g.comms[0]->halving_doubling());
  tensor x = filled(dtype::f32, 100, 0);
  auto f = g.comms[0]->allreduce(x, x, reduce_op::sum);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  g.comms[0].reset();
  status st = f.get();
  ASSERT_FALSE(st);
  EXPECT_NE(st.err().message.find("closed"), std::string::npos) << st.err().message;
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  for (int r = 1; r < 4; ++r) EXPECT_EQ(g.comms[static_cast<size_t>(r)]->failure(), "") << "rank " << r;
}

TEST(collective, ARankThatDiesDuringHalvingDoublingIsNamedByEverySurvivor) {
  // Rank 0 waits for rank 1 in its first pair, rank 3 in its second, and
  // rank 2 for rank 0 (which failed), besides the ring.
  rank_1_dies_mid_allreduce(4);
}

TEST(collective, ACallRunByAnotherAlgorithmOnOneRankIsAMismatchAtOnce) {
  // Halving and doubling up to 4096 bytes. Rank 1 all-reduces 1025 f32
  // (the ring) or all-gathers while the others all-reduce 1024 f32 (halving
  // and doubling): the ring carries every call, so it is caught at once,
  // not after the timeout, and every rank's rings fail, so nothing waits.
  for (int variant : {0, 1}) {
    collective_options o;
    o.halving_doubling_max_bytes = 4096;
    o.timeout = std::chrono::seconds(30);
    ring g(4, o);
    std::vector<tensor> in, out(4);
    std::vector<collective_future> f;
    const auto t0 = std::chrono::steady_clock::now();
    for (int r = 0; r < 4; ++r) {
      auto& c = *g.comms[static_cast<size_t>(r)];
      in.push_back(filled(dtype::f32, r == 1 && variant == 0 ? 1025 : 1024, r));
      if (r == 1 && variant == 1) f.push_back(c.allgather(in.back(), out[static_cast<size_t>(r)]));
      else f.push_back(c.allreduce(in.back(), in.back(), reduce_op::sum));
    }
    for (int r = 0; r < 4; ++r) {
      status st = f[static_cast<size_t>(r)].get();
      ASSERT_FALSE(st) << "variant " << variant << " rank " << r;
      EXPECT_NE(st.err().message.find("same collectives"), std::string::npos) << st.err().message;
      EXPECT_NE(g.comms[static_cast<size_t>(r)]->failure(), "");
    }
    EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(10)) << "variant " << variant;
  }
}

TEST(collective, ASilentRankTimesOutNamingTheRankWaitedFor) {
  collective_options o;
  o.timeout = std::chrono::milliseconds(600);
  ring g(2, o);
  tensor x = filled(dtype::i64, 1000, 0);
  const auto t0 = std::chrono::steady_clock::now();
  status st = g.comms[0]->allreduce(x, x, reduce_op::sum).get(); // rank 1 never calls
  ASSERT_FALSE(st);
  EXPECT_NE(st.err().message.find("from rank 1"), std::string::npos) << st.err().message;
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5));
  // Rank 0 told rank 1 (an abort message): rank 1 fails at once too.
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  tensor y = filled(dtype::i64, 1000, 1);
  status st1 = g.comms[1]->allreduce(y, y, reduce_op::sum).get();
  ASSERT_FALSE(st1);
  EXPECT_NE(st1.err().message.find("rank 1"), std::string::npos) << st1.err().message;
}

} // namespace

namespace {

device_backend& cuda_backend() {
  static const kernel_registry reg = [] {
    kernel_registry r;
    cuda::register_kernels(r);
    return r;
  }();
  return *reg.backend(device::kind_t::cuda);
}

TEST(collective, NcclNeedsACudaDevice) {
  ring g(2);
  std::vector<std::string> errs(2);
  std::vector<std::thread> ts;
  for (int r = 0; r < 2; ++r)
    ts.emplace_back([&, r] {
      auto c = make_nccl_communicator(*g.comms[static_cast<size_t>(r)], device::cpu());
      errs[static_cast<size_t>(r)] = c ? "ok" : c.err().message;
    });
  for (auto& t : ts) t.join();
  for (auto& e : errs) EXPECT_TRUE(e.find("CUDA") != std::string::npos) << e;
}

TEST(collective, NcclCommunicatorBootstrappedOverTheRing) {
  if (!nccl_built() || cuda::device_count() < 1) GTEST_SKIP() << "needs a CUDA build and a GPU";
  // One rank per GPU (NCCL refuses two ranks on one device).
  const int n = std::min(cuda::device_count(), 4);
  ring g(n);
  std::vector<std::string> errs(static_cast<size_t>(n));
  std::vector<std::thread> ts;
  for (int r = 0; r < n; ++r)
    ts.emplace_back([&, r] {
      auto c = make_nccl_communicator(*g.comms[static_cast<size_t>(r)], device::cuda(r));
      if (!c) {
        errs[static_cast<size_t>(r)] = c.err().message;
        return;
      }
      auto stream = cuda_backend().make_stream(r);
      tensor x = filled(dtype::f32, 1001, r).to(*stream);
      if (status st = (*c)->allreduce(x, x, reduce_op::sum, *stream); !st) {
        errs[static_cast<size_t>(r)] = st.err().message;
        return;
      }
      stream->synchronize();
      auto v = x.to_host().to_doubles();
      for (int64_t i = 0; i < 1001; ++i)
        if (v[static_cast<size_t>(i)] != expected(reduce_op::sum, n, i, dtype::f32)) {
          errs[static_cast<size_t>(r)] = "element " + std::to_string(i) + " is " + std::to_string(v[static_cast<size_t>(i)]);
          return;
        }
    });
  for (auto& t : ts) t.join();
  for (auto& e : errs) EXPECT_EQ(e, "");
}

} // namespace
