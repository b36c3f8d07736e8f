// The parameter-server shard's store (actors/ps_store.hpp), without actors:
// sharded tables against a locally simulated table, optimizers, server-side
// functions, checkpoints, and every malformed request as an error.

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <map>
#include <random>
#include <stdexcept>
#include <unordered_map>

#include "actors/id_index.hpp"
#include "actors/ps_store.hpp"
#include "ops/random.hpp"

using namespace luoshu;
using namespace luoshu::actors;
using transport::ps_optimizer;

namespace {

ps_table_spec sparse_table(uint32_t id, uint32_t width, ps_optimizer::rule_t rule, uint64_t rows = 0) {
  ps_table_spec t;
  t.id = id;
  t.name = "emb" + std::to_string(id);
  t.sparse = true;
  t.rows = rows;
  t.width = width;
  t.init = {initializer::kind_t::uniform, -0.1, 0.1};
  t.seed = 42;
  t.optimizer.rule = rule;
  t.optimizer.lr = 0.1;
  return t;
}

/// A table spread over `n` shards, as a client would address it.
struct sharded {
  std::vector<std::unique_ptr<ps_store>> shards;
  ps_table_spec spec;
  sharded(int n, const ps_table_spec& s) : spec(s) {
    for (int i = 0; i < n; ++i) {
      shards.push_back(std::make_unique<ps_store>(i, n));
      EXPECT_TRUE(shards.back()->create(s).ok());
    }
  }
  std::map<int, std::vector<uint64_t>> split(const std::vector<uint64_t>& ids) const {
    std::map<int, std::vector<uint64_t>> by;
    for (auto id : ids) by[ps_shard_of(spec, id, static_cast<int>(shards.size()))].push_back(id);
    return by;
  }
  std::map<uint64_t, std::vector<double>> pull(const std::vector<uint64_t>& ids) {
    std::map<uint64_t, std::vector<double>> out;
    for (auto& [s, part] : split(ids)) {
      auto r = shards[static_cast<size_t>(s)]->pull(spec.id, part);
      EXPECT_TRUE(r.ok()) << r.err().message;
      if (!r.ok()) continue;
      auto v = r->to_doubles();
      for (size_t i = 0; i < part.size(); ++i)
        out[part[i]] = std::vector<double>(v.begin() + static_cast<long>(i * spec.width),
                                           v.begin() + static_cast<long>((i + 1) * spec.width));
    }
    return out;
  }
  void push(const std::map<uint64_t, std::vector<double>>& g) {
    std::vector<uint64_t> ids;
    for (auto& [id, row] : g) ids.push_back(id);
    for (auto& [s, part] : split(ids)) {
      std::vector<double> v;
      for (auto id : part) v.insert(v.end(), g.at(id).begin(), g.at(id).end());
      auto st = shards[static_cast<size_t>(s)]->push(
          spec.id, part, tensor::from<double>(shape{static_cast<int64_t>(part.size()), spec.width}, v));
      EXPECT_TRUE(st.ok()) << st.err().message;
    }
  }
};

TEST(PsStore, SparsePushPullEqualsALocallySimulatedTable) {
  for (auto rule : {ps_optimizer::rule_t::sgd, ps_optimizer::rule_t::adagrad}) {
    const uint32_t width = 4;
    sharded table(3, sparse_table(1, width, rule));
    std::map<uint64_t, std::vector<double>> sim, acc; // the simulation: rows and adagrad accumulators
    uint64_t state = 7;
    auto next = [&] { return state = ops::mix64(state); };
    for (int round = 0; round < 200; ++round) {
      std::vector<uint64_t> ids;
      std::map<uint64_t, bool> seen;
      for (int k = 0; k < 6; ++k) {
        uint64_t id = next() % 50 * 1000003; // sparse, spread ids
        if (!seen[id]) ids.push_back(id);
        seen[id] = true;
      }
      auto got = table.pull(ids);
      for (auto id : ids) {
        if (!sim.count(id)) {
          sim[id] = got[id]; // first touch: the initializer's value (checked below)
          acc[id].assign(width, 0);
        }
        ASSERT_EQ(got[id].size(), width);
        for (uint32_t j = 0; j < width; ++j) // FMA contraction may round the last bit differently
          ASSERT_NEAR(got[id][j], sim[id][j], 1e-6 * std::max(1.0, std::fabs(sim[id][j])))
              << "row " << id << " element " << j << " at round " << round;
      }
      if (next() % 2) {
        std::map<uint64_t, std::vector<double>> g;
        for (auto id : ids) {
          g[id].resize(width);
          for (auto& x : g[id]) x = static_cast<double>(next() % 1000) / 500.0 - 1;
          for (uint32_t j = 0; j < width; ++j) {
            // The table is f32: every stored value is rounded to f32.
            auto f32 = [](double v) { return static_cast<double>(static_cast<float>(v)); };
            if (rule == ps_optimizer::rule_t::sgd) {
              sim[id][j] = f32(sim[id][j] - 0.1 * g[id][j]);
            } else {
              acc[id][j] = f32(acc[id][j] + g[id][j] * g[id][j]);
              sim[id][j] = f32(sim[id][j] - 0.1 * g[id][j] / (std::sqrt(acc[id][j]) + 1e-8));
            }
          }
        }
        table.push(g);
      }
    }
    int64_t held = 0;
    for (auto& s : table.shards) held += s->rows_held(1);
    EXPECT_EQ(held, static_cast<int64_t>(sim.size())) << "only touched rows use memory";
  }
}

TEST(PsStore, InitialRowsDoNotDependOnTheShardCount) {
  for (bool sparse : {true, false}) {
    ps_table_spec s = sparse_table(2, 3, ps_optimizer::rule_t::sgd, sparse ? 0 : 100);
    s.sparse = sparse;
    sharded one(1, s), four(4, s);
    std::vector<uint64_t> ids = {0, 1, 17, 42, 99};
    EXPECT_EQ(one.pull(ids), four.pull(ids));
    auto v = one.pull(ids);
    EXPECT_NE(v[0], v[1]) << "rows differ";
    for (auto& [id, row] : v)
      for (double x : row) EXPECT_TRUE(x >= -0.1 && x <= 0.1) << x;
  }
}

TEST(PsStore, OptimizersMatchAcrossShardingAndFtrlSparsifies) {
  for (auto rule : {ps_optimizer::rule_t::momentum, ps_optimizer::rule_t::adam, ps_optimizer::rule_t::ftrl}) {
    ps_table_spec s = sparse_table(3, 2, rule, 0);
    s.optimizer.l1 = rule == ps_optimizer::rule_t::ftrl ? 0.5 : 0;
    s.optimizer.momentum = rule == ps_optimizer::rule_t::ftrl ? 1.0 : 0.9;
    s.init = {initializer::kind_t::zeros, 0, 0};
    sharded a(1, s), b(3, s);
    for (int step = 0; step < 5; ++step) {
      std::map<uint64_t, std::vector<double>> g = {{5, {0.3, -0.01}}, {9, {-1.0, 0.02}}, {123456789, {0.5, 0.0}}};
      a.push(g);
      b.push(g);
    }
    auto pa = a.pull({5, 9, 123456789}), pb = b.pull({5, 9, 123456789});
    EXPECT_EQ(pa, pb);
    EXPECT_NE(pa[5][0], 0.0) << "rule " << static_cast<int>(rule) << " moved the weights";
    if (rule == ps_optimizer::rule_t::ftrl) {
      EXPECT_EQ(pa[5][1], 0.0) << "a small gradient stays under l1: exact zero";
    }
  }
}

TEST(PsStore, DenseRangesSplitTheRowsAndRejectForeignRows) {
  ps_table_spec s = sparse_table(4, 2, ps_optimizer::rule_t::sgd, 10);
  s.sparse = false;
  ps_store s0(0, 3), s2(2, 3);
  ASSERT_TRUE(s0.create(s).ok());
  ASSERT_TRUE(s2.create(s).ok());
  EXPECT_EQ(s0.rows_held(4), 3); // rows [0, 3)
  EXPECT_EQ(s2.rows_held(4), 4); // rows [6, 10)
  for (uint64_t id = 0; id < 10; ++id) EXPECT_EQ(ps_shard_of(s, id, 3), id < 3 ? 0 : id < 6 ? 1 : 2) << id;
  auto bad = s0.pull(4, std::vector<uint64_t>{7});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.err().message.find("does not belong to shard 0"), std::string::npos) << bad.err().message;
  auto out = s2.pull(4, std::vector<uint64_t>{10});
  ASSERT_FALSE(out.ok());
  EXPECT_NE(out.err().message.find("row 10 is out of range [0, 10)"), std::string::npos) << out.err().message;
}

TEST(PsStore, MalformedRequestsAreErrorsNamingTheProblem) {
  ps_store st(0, 1);
  ASSERT_TRUE(st.create(sparse_table(1, 4, ps_optimizer::rule_t::sgd, 1000)).ok());
  auto expect_err = [](const status& s, const std::string& what) {
    ASSERT_FALSE(s.ok()) << "accepted: " << what;
    EXPECT_NE(s.err().message.find(what), std::string::npos) << s.err().message;
  };
  std::vector<uint64_t> ids = {1, 2};
  expect_err(st.pull(9, ids).ok() ? status{} : status{st.pull(9, ids).err()}, "unknown table 9");
  expect_err(st.push(1, ids, tensor::zeros(dtype::f32, shape{2, 3})), "want f32/f64 [2, 4]");
  expect_err(st.push(1, ids, tensor::zeros(dtype::i32, shape{2, 4})), "values are i32");
  expect_err(st.push(1, ids, tensor::zeros(dtype::f32, shape{3, 4})), "[2, 4]");
  expect_err(st.pull(1, std::vector<uint64_t>{5000}).ok() ? status{} : status{st.pull(1, std::vector<uint64_t>{5000}).err()},
             "row 5000 is out of range");
  expect_err(st.call("no_such_fn", 1, {}).ok() ? status{} : status{st.call("no_such_fn", 1, {}).err()},
             "unknown server-side function 'no_such_fn'");
  ps_table_spec other = sparse_table(1, 8, ps_optimizer::rule_t::sgd, 1000);
  expect_err(st.create(other), "table 1 exists");
  ps_table_spec zero = sparse_table(2, 0, ps_optimizer::rule_t::sgd);
  expect_err(st.create(zero), "width must be >= 1");
  EXPECT_TRUE(st.create(sparse_table(1, 4, ps_optimizer::rule_t::sgd, 1000)).ok()) << "same spec again: a no-op";
}

TEST(PsStore, ServerSideFunctionsRunOnEveryShardAndMerge) {
  ps_table_spec s = sparse_table(5, 3, ps_optimizer::rule_t::sgd, 0);
  s.init = {initializer::kind_t::constant, 2, 0};
  sharded t(3, s);
  std::vector<uint64_t> ids;
  for (uint64_t i = 0; i < 40; ++i) ids.push_back(i * 7919);
  t.pull(ids);
  double total = 0, rows = 0;
  for (auto& sh : t.shards) {
    auto r = sh->call("sum_squares", 5, {});
    ASSERT_TRUE(r.ok()) << r.err().message;
    total += (*r)[0];
    rows += (*sh->call("row_count", 5, {}))[0];
  }
  EXPECT_DOUBLE_EQ(total, 40 * 3 * 4.0);
  EXPECT_EQ(rows, 40);
  for (auto& sh : t.shards) ASSERT_TRUE(sh->call("scale", 5, {0.5}).ok());
  for (auto& [id, row] : t.pull(ids)) EXPECT_EQ(row, (std::vector<double>{1, 1, 1})) << id;
  register_ps_function("max_abs", [](ps_rows& r, const std::vector<double>&) -> result<std::vector<double>> {
    double m = 0;
    for (double v : r.values) m = std::max(m, std::fabs(v));
    return std::vector<double>{m};
  });
  EXPECT_EQ((*t.shards[0]->call("max_abs", 5, {}))[0], 1.0);
  EXPECT_FALSE(t.shards[0]->call("scale", 5, {}).ok()) << "bad arguments are the function's error";
}

TEST(PsStore, CheckpointRestoresRowsSlotsAndStepsExactly) {
  auto dir = std::filesystem::path(testing::TempDir()) / "ps_ckpt";
  std::filesystem::create_directories(dir);
  ps_table_spec s = sparse_table(6, 2, ps_optimizer::rule_t::adam, 0);
  ps_table_spec d = sparse_table(7, 3, ps_optimizer::rule_t::momentum, 20);
  d.sparse = false;
  auto train = [&](ps_store& st, int from, int to) {
    for (int step = from; step < to; ++step) {
      std::vector<uint64_t> ids = {static_cast<uint64_t>(step % 5), 77, 1000 + static_cast<uint64_t>(step)};
      ASSERT_TRUE(st.push(6, ids, tensor::from<double>(shape{3, 2}, {0.1 * step, -0.2, 0.3, 0.4, -0.5, 0.6})).ok());
      std::vector<uint64_t> dids = {static_cast<uint64_t>(step % 20)};
      ASSERT_TRUE(st.push(7, dids, tensor::from<double>(shape{1, 3}, {1, 2, 3})).ok());
    }
  };
  ps_store a(0, 1), b(0, 1);
  for (auto* st : {&a, &b}) {
    ASSERT_TRUE(st->create(s).ok());
    ASSERT_TRUE(st->create(d).ok());
  }
  train(a, 0, 10);
  train(b, 0, 4);
  ASSERT_TRUE(b.save(dir.string()).ok());
  ps_store c(0, 1);
  ASSERT_TRUE(c.create(s).ok());
  ASSERT_TRUE(c.create(d).ok());
  ASSERT_TRUE(c.load(dir.string()).ok());
  train(c, 4, 10);
  std::vector<uint64_t> ids = {0, 1, 2, 3, 4, 77, 1000, 1009};
  std::vector<uint64_t> dids = {0, 5, 9, 19};
  EXPECT_EQ(a.pull(6, ids)->to_doubles(), c.pull(6, ids)->to_doubles()) << "resumed adam table";
  EXPECT_EQ(a.pull(7, dids)->to_doubles(), c.pull(7, dids)->to_doubles()) << "resumed momentum table";
  ps_store wrong(0, 1);
  ps_table_spec w2 = s;
  w2.width = 4;
  ASSERT_TRUE(wrong.create(w2).ok());
  auto r = wrong.load(dir.string());
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.err().message.find("was saved as"), std::string::npos) << r.err().message;
}

} // namespace

/// id_index against std::unordered_map: random, consecutive and strided ids
/// (past several doublings), repeats keep their first position, missing ids
/// are not found, clear() forgets everything.
TEST(IdIndex, AgreesWithAnUnorderedMap) {
  actors::id_index idx;
  std::unordered_map<uint64_t, int64_t> ref;
  std::mt19937_64 rng(4);
  auto add = [&](uint64_t id) {
    auto [pos, fresh] = idx.try_emplace(id, static_cast<int64_t>(ref.size()));
    auto [it, ref_fresh] = ref.try_emplace(id, static_cast<int64_t>(ref.size()));
    ASSERT_EQ(fresh, ref_fresh) << id;
    ASSERT_EQ(pos, it->second) << id;
  };
  for (int i = 0; i < 5000; ++i) add(rng() % 20000);          // random, with repeats
  for (uint64_t i = 0; i < 3000; ++i) add(1000000 + i);       // consecutive
  for (uint64_t i = 0; i < 3000; ++i) add(i << 32);           // strided (low bits all zero)
  add(0);
  add(~uint64_t{0});
  EXPECT_EQ(idx.size(), ref.size());
  for (const auto& [id, pos] : ref) {
    const int64_t* p = idx.find(id);
    ASSERT_NE(p, nullptr) << id;
    EXPECT_EQ(*p, pos) << id;
  }
  for (uint64_t id : {uint64_t{20001}, uint64_t{999999}, uint64_t{3001} << 32}) EXPECT_EQ(idx.find(id), nullptr) << id;
  idx.clear();
  EXPECT_TRUE(idx.empty());
  EXPECT_EQ(idx.find(5), nullptr);
  EXPECT_TRUE(idx.try_emplace(5, 7).second);
  EXPECT_EQ(*idx.find(5), 7);
  EXPECT_THROW(idx.try_emplace(6, -1), std::invalid_argument); // would read as an empty slot
  EXPECT_EQ(idx.find(6), nullptr);
  EXPECT_EQ(idx.size(), 1u);
}
