// Parameter-server shards and clients as actors in one process: results
// against a local store, BSP equal to one process applying the averaged
// gradient, SSP's staleness bound under random delays, bounded waits that
// name the slow worker, a dead shard named, malformed requests as errors.

#include <gtest/gtest.h>

#include <caf/all.hpp>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <random>
#include <thread>

#include "actors/atoms.hpp"
#include "actors/ps.hpp"
#include "transport/codec.hpp"

using namespace luoshu;
using namespace luoshu::actors;
using transport::ps_optimizer;

namespace {

ps_table_spec table_spec(uint32_t id, bool sparse, uint64_t rows, uint32_t width, ps_optimizer::rule_t rule) {
  ps_table_spec t;
  t.id = id;
  t.name = "t" + std::to_string(id);
  t.sparse = sparse;
  t.rows = rows;
  t.width = width;
  t.type = dtype::f64;
  t.init = {initializer::kind_t::uniform, -0.5, 0.5};
  t.seed = 3;
  t.optimizer.rule = rule;
  t.optimizer.lr = 0.05;
  return t;
}

struct cluster {
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  std::vector<caf::actor> shards;
  cluster(int n, int workers, const std::string& consistency, std::chrono::milliseconds wait = std::chrono::seconds(20)) {
    for (int i = 0; i < n; ++i) {
      ps_shard_options o;
      o.shard = i;
      o.shards = n;
      o.workers = workers;
      o.consistency = *ps_consistency::parse(consistency);
      o.wait_timeout = wait;
      shards.push_back(spawn_ps_shard(sys, o));
    }
  }
  ~cluster() {
    for (auto& s : shards) caf::anon_send_exit(s, caf::exit_reason::user_shutdown);
  }
};

tensor rows_of(std::mt19937_64& rng, size_t n, uint32_t width) {
  std::uniform_real_distribution<double> u(-1, 1);
  std::vector<double> v(n * width);
  for (auto& x : v) x = u(rng);
  return tensor::from<double>(shape{static_cast<int64_t>(n), width}, v);
}

TEST(ParameterServer, ConsistencyParsesAndRejectsNonsense) {
  EXPECT_EQ(ps_consistency::parse("ssp:3")->staleness, 3);
  EXPECT_EQ(ps_consistency::parse("asp")->kind, ps_consistency::kind_t::asp);
  for (const char* bad : {"ssp", "ssp:-1", "ssp:x", "bsp2", ""}) {
    auto r = ps_consistency::parse(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_NE(r.err().message.find("expected bsp, ssp:K"), std::string::npos);
  }
}

TEST(ParameterServer, SparsePushPullEqualsALocalStore) {
  cluster c(3, 1, "asp");
  ps_client client(c.sys, c.shards, 0);
  auto spec = table_spec(1, true, 0, 8, ps_optimizer::rule_t::adagrad);
  ASSERT_TRUE(client.create(spec).ok());
  ps_store local(0, 1);
  ASSERT_TRUE(local.create(spec).ok());
  std::mt19937_64 rng(11);
  for (int step = 0; step < 60; ++step) {
    std::vector<uint64_t> keys;
    for (int i = 0; i < 12; ++i) keys.push_back(rng() % 40 * 7777777); // with duplicates
    auto got = client.pull(1, keys, step).get();
    ASSERT_TRUE(got.ok()) << got.err().message;
    auto want = local.pull(1, keys);
    ASSERT_TRUE(want.ok());
    ASSERT_EQ(got->to_doubles(), want->to_doubles()) << "step " << step;
    tensor g = rows_of(rng, keys.size(), 8);
    ASSERT_TRUE(client.push(1, keys, g, step).get().ok());
    // The local reference: duplicates summed in order, one update per row.
    std::map<uint64_t, std::vector<double>> sum;
    std::vector<uint64_t> order;
    auto gv = g.to_doubles();
    for (size_t i = 0; i < keys.size(); ++i) {
      auto [it, fresh] = sum.try_emplace(keys[i], std::vector<double>(8, 0.0));
      if (fresh) order.push_back(keys[i]);
      for (int j = 0; j < 8; ++j) it->second[static_cast<size_t>(j)] += gv[i * 8 + static_cast<size_t>(j)];
    }
    std::vector<double> flat;
    for (auto k : order) flat.insert(flat.end(), sum[k].begin(), sum[k].end());
    ASSERT_TRUE(local.push(1, order, tensor::from<double>(shape{static_cast<int64_t>(order.size()), 8}, flat)).ok());
  }
  auto n = client.call("row_count", 1);
  ASSERT_TRUE(n.ok());
  EXPECT_EQ((*n)[0], static_cast<double>(local.rows_held(1)));
}

TEST(ParameterServer, BspWorkersEqualOneProcessApplyingTheAverage) {
  constexpr int W = 3, steps = 12;
  cluster c(2, W, "bsp");
  auto spec = table_spec(2, false, 10, 4, ps_optimizer::rule_t::momentum);
  std::vector<std::unique_ptr<ps_client>> clients;
  for (int w = 0; w < W; ++w) clients.push_back(std::make_unique<ps_client>(c.sys, c.shards, w));
  ASSERT_TRUE(clients[0]->create(spec).ok());
  for (int w = 1; w < W; ++w) ASSERT_TRUE(clients[static_cast<size_t>(w)]->create(spec).ok());
  std::vector<uint64_t> all(10);
  for (uint64_t i = 0; i < 10; ++i) all[i] = i;
  // Each worker's gradient at each step: fixed, so the reference can replay it.
  auto grad = [](int w, int step) {
    std::mt19937_64 rng(static_cast<uint64_t>(w * 1000 + step));
    return rows_of(rng, 10, 4);
  };
  std::vector<std::vector<double>> seen(W);
  std::vector<std::string> errors(W);
  std::vector<std::thread> ts;
  for (int w = 0; w < W; ++w)
    ts.emplace_back([&, w] {
      std::mt19937_64 delay(static_cast<uint64_t>(w));
      for (int step = 0; step < steps; ++step) {
        auto p = clients[static_cast<size_t>(w)]->pull(2, all, step).get();
        if (!p) {
          errors[static_cast<size_t>(w)] = p.err().message;
          return;
        }
        if (w == 0) seen[0] = p->to_doubles();
        std::this_thread::sleep_for(std::chrono::milliseconds(delay() % 5));
        auto r = clients[static_cast<size_t>(w)]->push(2, all, grad(w, step), step).get();
        if (!r || !clients[static_cast<size_t>(w)]->clock(step).ok()) {
          errors[static_cast<size_t>(w)] = r ? "clock failed" : r.err().message;
          return;
        }
      }
    });
  for (auto& t : ts) t.join();
  for (auto& e : errors) ASSERT_EQ(e, "");
  auto final_rows = clients[0]->pull(2, all, steps).get();
  ASSERT_TRUE(final_rows.ok()) << final_rows.err().message;
  ps_store ref(0, 1);
  ASSERT_TRUE(ref.create(spec).ok());
  for (int step = 0; step < steps; ++step) {
    std::vector<double> sum(40, 0.0);
    for (int w = 0; w < W; ++w) {
      auto g = grad(w, step).to_doubles();
      for (size_t i = 0; i < 40; ++i) sum[i] += g[i];
    }
    ASSERT_TRUE(ref.push(2, all, tensor::from<double>(shape{10, 4}, sum), 1.0 / W).ok());
  }
  auto want = ref.pull(2, all)->to_doubles();
  auto got = final_rows->to_doubles();
  for (size_t i = 0; i < want.size(); ++i) EXPECT_NEAR(got[i], want[i], 1e-12) << i;
  for (auto& cl : clients) EXPECT_EQ(cl->max_staleness(), 0) << "BSP serves no stale pulls";
}

TEST(ParameterServer, SspStalenessNeverExceedsTheBound) {
  constexpr int W = 4, steps = 25, k = 2;
  cluster c(2, W, "ssp:" + std::to_string(k));
  auto spec = table_spec(3, true, 0, 2, ps_optimizer::rule_t::sgd);
  std::vector<std::unique_ptr<ps_client>> clients;
  for (int w = 0; w < W; ++w) {
    clients.push_back(std::make_unique<ps_client>(c.sys, c.shards, w));
    ASSERT_TRUE(clients.back()->create(spec).ok());
  }
  std::vector<std::string> errors(W);
  std::vector<std::thread> ts;
  for (int w = 0; w < W; ++w)
    ts.emplace_back([&, w] {
      std::mt19937_64 rng(static_cast<uint64_t>(w + 100));
      auto& cl = *clients[static_cast<size_t>(w)];
      for (int step = 0; step < steps; ++step) {
        std::vector<uint64_t> keys = {rng() % 20, 100 + rng() % 20};
        if (auto p = cl.pull(3, keys, step).get(); !p) {
          errors[static_cast<size_t>(w)] = p.err().message;
          return;
        }
        // Worker 0 is slow: the others run ahead until the bound stops them.
        std::this_thread::sleep_for(std::chrono::milliseconds(w == 0 ? 8 + rng() % 8 : rng() % 3));
        if (!cl.push(3, keys, rows_of(rng, 2, 2), step).get() || !cl.clock(step).ok()) {
          errors[static_cast<size_t>(w)] = "push/clock failed";
          return;
        }
      }
    });
  for (auto& t : ts) t.join();
  for (auto& e : errors) ASSERT_EQ(e, "");
  int64_t worst = 0;
  for (auto& cl : clients) worst = std::max(worst, cl->max_staleness());
  EXPECT_LE(worst, k);
  EXPECT_GT(worst, 0) << "the fast workers did run ahead of the slow one (else the test shows nothing)";
}

TEST(ParameterServer, AWaitThatOutlastsTheTimeoutNamesTheSlowWorker) {
  cluster c(1, 2, "bsp", std::chrono::milliseconds(300));
  ps_client a(c.sys, c.shards, 0), b(c.sys, c.shards, 1);
  auto spec = table_spec(4, false, 4, 1, ps_optimizer::rule_t::sgd);
  ASSERT_TRUE(a.create(spec).ok());
  ASSERT_TRUE(a.clock(0).ok()); // worker 1 never finishes step 0
  auto t0 = std::chrono::steady_clock::now();
  auto r = a.pull(4, {0, 1}, 1).get();
  auto took = std::chrono::steady_clock::now() - t0;
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.err().message.find("for worker 1, which finished only 0 steps"), std::string::npos) << r.err().message;
  EXPECT_LT(took, std::chrono::seconds(5));
}

TEST(ParameterServer, ADeadShardIsNamedNotWaitedFor) {
  cluster c(2, 1, "asp");
  ps_client cl(c.sys, c.shards, 0, std::chrono::seconds(5));
  ASSERT_TRUE(cl.connect(std::chrono::seconds(5)).ok()) << "every shard answers";
  auto spec = table_spec(5, false, 8, 2, ps_optimizer::rule_t::sgd);
  ASSERT_TRUE(cl.create(spec).ok());
  caf::anon_send_exit(c.shards[1], caf::exit_reason::kill);
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  auto r = cl.pull(5, {0, 7}, 0).get(); // row 7 lives on shard 1
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.err().message.find("shard 1"), std::string::npos) << r.err().message;
  auto t0 = std::chrono::steady_clock::now();
  auto c2 = cl.connect(std::chrono::milliseconds(500));
  ASSERT_FALSE(c2.ok());
  EXPECT_NE(c2.err().message.find("shard 1 did not answer"), std::string::npos) << c2.err().message;
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5));
}

/// Forwards requests to `shard` but swallows the first one (never answers
/// it), like a message CAF 0.17 loses on a fresh connection.
caf::behavior loses_first(caf::event_based_actor* self, caf::actor shard,
                          std::shared_ptr<std::vector<caf::response_promise>> swallowed) {
  return {[=](ps_atom, transport::wire_bytes& b) {
    if (swallowed->empty())
      swallowed->push_back(self->make_response_promise()); // held, never kept
    else
      self->delegate(shard, ps_atom::value, std::move(b));
  }};
}

TEST(ParameterServer, CreateAsksAgainWhenARequestIsLost) {
  cluster c(1, 1, "asp");
  auto swallowed = std::make_shared<std::vector<caf::response_promise>>();
  caf::actor front = c.sys.spawn(loses_first, c.shards[0], swallowed);
  ps_client cl(c.sys, {front}, 0, std::chrono::seconds(4)); // attempts of 1 s
  auto spec = table_spec(6, false, 4, 2, ps_optimizer::rule_t::sgd);
  auto t0 = std::chrono::steady_clock::now();
  status st = cl.create(spec);
  ASSERT_TRUE(st.ok()) << st.err().message;
  EXPECT_EQ(swallowed->size(), 1u);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(3));
  auto rows = cl.pull(6, {0, 3}, 0).get();
  ASSERT_TRUE(rows.ok()) << rows.err().message;
  EXPECT_EQ(rows->shape(), shape({2, 2}));
  caf::anon_send_exit(front, caf::exit_reason::user_shutdown);
}

/// push_pull (one request per shard) ends where push, then pull, ends:
/// the same rows back and the same tables after, for whole dense tables in
/// order (no row moved on the client), keys out of order, duplicates and
/// subsets, over 3 shards and over one (its reply is the answer as it is).
void push_pull_equals_push_then_pull(int shards) {
  cluster a(shards, 1, "asp"), b(shards, 1, "asp");
  ps_client ca(a.sys, a.shards, 0), cb(b.sys, b.shards, 0);
  for (auto f32 : {false, true}) {
    const uint32_t id = f32 ? 12 : 11;
    auto spec = table_spec(id, false, 10, 4, ps_optimizer::rule_t::momentum);
    if (f32) spec.type = dtype::f32;
    ASSERT_TRUE(ca.create(spec).ok());
    ASSERT_TRUE(cb.create(spec).ok());
    std::mt19937_64 rng(5);
    const std::vector<std::vector<uint64_t>> key_sets = {
        {0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, {9, 3, 0, 7}, {2, 2, 5, 2, 8}, {6}, {0, 1, 2, 3, 4, 5, 6, 7, 8, 9}};
    for (size_t step = 0; step < key_sets.size(); ++step) {
      const auto& keys = key_sets[step];
      tensor g = rows_of(rng, keys.size(), 4);
      if (f32) g = g.cast(dtype::f32);
      auto got = ca.push_pull(id, keys, g, static_cast<int64_t>(step)).get();
      ASSERT_TRUE(got.ok()) << got.err().message;
      ASSERT_TRUE(cb.push(id, keys, g, static_cast<int64_t>(step)).get().ok());
      auto want = cb.pull(id, keys, static_cast<int64_t>(step)).get();
      ASSERT_TRUE(want.ok()) << want.err().message;
      EXPECT_EQ(got->type(), spec.type);
      EXPECT_EQ(got->shape(), (shape{static_cast<int64_t>(keys.size()), 4}));
      EXPECT_EQ(got->to_doubles(), want->to_doubles()) << "step " << step << (f32 ? " f32" : " f64");
    }
    std::vector<uint64_t> all(10);
    for (uint64_t k = 0; k < 10; ++k) all[k] = k;
    auto ta = ca.pull(id, all, 9).get(), tb = cb.pull(id, all, 9).get();
    ASSERT_TRUE(ta.ok() && tb.ok());
    EXPECT_EQ(ta->to_doubles(), tb->to_doubles());
  }
}

TEST(ParameterServer, PushPullEqualsPushThenPull) {
  push_pull_equals_push_then_pull(3);
  push_pull_equals_push_then_pull(1);
}

/// Pushes and pulls larger than ps_client::max_request_bytes go to each
/// shard as several requests at once: the rows still land where they
/// belong (against a local store), for keys in order and shuffled.
TEST(ParameterServer, LargePushesAndPullsSplitIntoRequestsStayExact) {
  cluster c(3, 1, "asp");
  ps_client cl(c.sys, c.shards, 0);
  const uint64_t rows = 3 * ps_client::max_request_bytes / (4 * sizeof(double)) + 17; // > 1 request per shard
  auto spec = table_spec(14, false, rows, 4, ps_optimizer::rule_t::adagrad);
  ASSERT_TRUE(cl.create(spec).ok());
  ps_store local(0, 1);
  ASSERT_TRUE(local.create(spec).ok());
  std::vector<uint64_t> keys(rows);
  for (uint64_t k = 0; k < rows; ++k) keys[k] = k;
  std::mt19937_64 rng(21);
  for (int step = 0; step < 3; ++step) {
    if (step == 1) std::shuffle(keys.begin(), keys.end(), rng);
    tensor g = rows_of(rng, keys.size(), 4);
    auto got = cl.push_pull(14, keys, g, step).get();
    ASSERT_TRUE(got.ok()) << got.err().message;
    ASSERT_TRUE(local.push(14, keys, g).ok());
    auto want = local.pull(14, keys);
    ASSERT_TRUE(want.ok());
    ASSERT_EQ(got->to_doubles(), want->to_doubles()) << "step " << step;
  }
  auto all = cl.pull(14, keys, 3).get();
  ASSERT_TRUE(all.ok()) << all.err().message;
  EXPECT_EQ(all->to_doubles(), local.pull(14, keys)->to_doubles());
}

/// Under BSP, two workers' push_pull of step t: each shard holds the push
/// until both finished step t, and the pull of step t waits until both
/// finished step t - 1 (worker 0 runs ahead here and must wait); the rows
/// equal one process applying the averaged gradient.
TEST(ParameterServer, BspPushPullWaitsForEveryWorkerLikePushThenPull) {
  cluster c(2, 2, "bsp");
  ps_client w0(c.sys, c.shards, 0), w1(c.sys, c.shards, 1);
  auto spec = table_spec(13, false, 6, 3, ps_optimizer::rule_t::sgd);
  ASSERT_TRUE(w0.create(spec).ok());
  ASSERT_TRUE(w1.create(spec).ok());
  ps_store local(0, 1);
  ASSERT_TRUE(local.create(spec).ok());
  const std::vector<uint64_t> keys{0, 1, 2, 3, 4, 5};
  std::mt19937_64 rng(9);
  const int64_t steps = 4;
  std::vector<tensor> g0, g1;
  for (int64_t t = 0; t < steps; ++t) g0.push_back(rows_of(rng, 6, 3)), g1.push_back(rows_of(rng, 6, 3));
  auto p0 = w0.push_pull(13, keys, g0[0], 0);
  for (int64_t t = 0; t < steps; ++t) {
    auto p1 = w1.push_pull(13, keys, g1[static_cast<size_t>(t)], t);
    auto r0 = p0.get(), r1 = p1.get();
    ASSERT_TRUE(r0.ok()) << r0.err().message;
    ASSERT_TRUE(r1.ok()) << r1.err().message;
    auto want = local.pull(13, keys);
    ASSERT_TRUE(want.ok());
    EXPECT_EQ(r0->to_doubles(), want->to_doubles()) << "worker 0, step " << t;
    EXPECT_EQ(r1->to_doubles(), want->to_doubles()) << "worker 1, step " << t;
    ASSERT_TRUE(w0.clock(t).ok());
    if (t + 1 < steps) {
      // Worker 0 goes on to step t + 1 while worker 1 has not finished t.
      p0 = w0.push_pull(13, keys, g0[static_cast<size_t>(t + 1)], t + 1);
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      EXPECT_FALSE(p0.ready()) << "step " << t + 1 << " was served before worker 1 finished step " << t;
    }
    ASSERT_TRUE(w1.clock(t).ok());
    std::vector<double> avg = g0[static_cast<size_t>(t)].to_doubles(), v1 = g1[static_cast<size_t>(t)].to_doubles();
    for (size_t i = 0; i < avg.size(); ++i) avg[i] = (avg[i] + v1[i]) / 2;
    ASSERT_TRUE(local.push(13, keys, tensor::from<double>(shape{6, 3}, avg)).ok());
  }
  auto end = w0.pull(13, keys, 4).get();
  ASSERT_TRUE(end.ok()) << end.err().message;
  auto want = local.pull(13, keys);
  ASSERT_TRUE(want.ok());
  const auto e = end->to_doubles(), wv = want->to_doubles();
  ASSERT_EQ(e.size(), wv.size());
  for (size_t i = 0; i < e.size(); ++i) EXPECT_NEAR(e[i], wv[i], 1e-12) << i;
}

/// Answers every request as a shard would, except that a pull gets one row
/// fewer than it asked for (rows of `width`). (Spawned with an argument:
/// CAF 0.17 binds a null reference for an argument-less function actor,
/// which UBSan reports.)
caf::behavior short_puller(caf::event_based_actor*, int64_t width) {
  return {[width](ps_atom, const transport::wire_bytes& b) {
    auto req = transport::decode_ps_request(std::span<const char>(b.data(), b.size()));
    transport::ps_reply r;
    if (req.ok()) {
      r.seq = req->seq;
      if (req->op == transport::ps_op::pull && !req->keys.empty())
        r.values = tensor::zeros(dtype::f64, shape{static_cast<int64_t>(req->keys.size()) - 1, width});
    }
    return transport::encode(r);
  }};
}

TEST(ParameterServer, AShardAnsweringWithOtherRowsIsAnErrorNamingIt) {
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  caf::actor fake = sys.spawn(short_puller, int64_t{3});
  ps_client cl(sys, {fake}, 0, std::chrono::seconds(5));
  ASSERT_TRUE(cl.create(table_spec(7, false, 8, 3, ps_optimizer::rule_t::sgd)).ok());
  for (const std::vector<uint64_t>& keys : {std::vector<uint64_t>{0, 1, 2, 3}, std::vector<uint64_t>{3, 1, 1}}) {
    auto r = cl.pull(7, keys, 0).get();
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.err().message.find("shard 0 answered a pull of"), std::string::npos) << r.err().message;
    EXPECT_NE(r.err().message.find("f64[" + std::to_string(keys.size() == 4 ? 3 : 1) + ", 3]"), std::string::npos)
        << r.err().message;
  }
  caf::anon_send_exit(fake, caf::exit_reason::user_shutdown);
}

TEST(ParameterServer, MalformedRequestsAreErrors) {
  cluster c(2, 1, "asp");
  ps_client cl(c.sys, c.shards, 0);
  auto spec = table_spec(6, false, 8, 3, ps_optimizer::rule_t::sgd);
  ASSERT_TRUE(cl.create(spec).ok());
  auto has = [](const std::string& m, const std::string& what) {
    EXPECT_NE(m.find(what), std::string::npos) << m;
  };
  auto unknown = cl.pull(99, {1}, 0).get();
  ASSERT_FALSE(unknown.ok());
  has(unknown.err().message, "table 99 was not created");
  auto range = cl.pull(6, {8}, 0).get();
  ASSERT_FALSE(range.ok());
  has(range.err().message, "row 8 is out of range [0, 8)");
  auto dim = cl.push(6, {1, 2}, tensor::zeros(dtype::f64, shape{2, 5}), 0).get();
  ASSERT_FALSE(dim.ok());
  has(dim.err().message, "want [2, 3]");
  auto fn = cl.call("nope", 6);
  ASSERT_FALSE(fn.ok());
  has(fn.err().message, "unknown server-side function 'nope'");
  // A raw hostile message straight to a shard gets an error reply, and the
  // shard keeps serving.
  caf::scoped_actor self{c.sys};
  std::vector<char> junk(24, '\x7f');
  self->request(c.shards[0], std::chrono::seconds(5), ps_atom::value, junk)
      .receive([&](std::vector<char>& bytes) {
                 auto rep = transport::decode_ps_reply(std::span<const char>(bytes.data(), bytes.size()));
                 ASSERT_TRUE(rep.ok());
                 has(rep->error, "malformed");
               },
               [&](caf::error&) { ADD_FAILURE() << "no reply to a malformed request"; });
  EXPECT_TRUE(cl.pull(6, {1}, 0).get().ok());
}

TEST(ParameterServer, SaveAndLoadThroughTheClient) {
  auto dir = std::filesystem::path(testing::TempDir()) / "ps_client_ckpt";
  std::filesystem::create_directories(dir);
  cluster c(2, 1, "asp");
  ps_client cl(c.sys, c.shards, 0);
  auto spec = table_spec(7, true, 0, 2, ps_optimizer::rule_t::adam);
  ASSERT_TRUE(cl.create(spec).ok());
  std::mt19937_64 rng(5);
  std::vector<uint64_t> keys = {3, 99, 12345};
  ASSERT_TRUE(cl.push(7, keys, rows_of(rng, 3, 2), 0).get().ok());
  auto before = cl.pull(7, keys, 1).get();
  ASSERT_TRUE(cl.save(dir.string()).ok());
  ASSERT_TRUE(cl.push(7, keys, rows_of(rng, 3, 2), 1).get().ok());
  ASSERT_NE(cl.pull(7, keys, 2).get()->to_doubles(), before->to_doubles());
  ASSERT_TRUE(cl.load(dir.string()).ok());
  EXPECT_EQ(cl.pull(7, keys, 2).get()->to_doubles(), before->to_doubles());
  ASSERT_TRUE(cl.assign(7, {3}, tensor::from<double>(shape{1, 2}, {1.5, -2})).ok());
  EXPECT_EQ(cl.pull(7, {3}, 2).get()->to_doubles(), (std::vector<double>{1.5, -2}));
}

} // namespace
