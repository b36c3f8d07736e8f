// Data-parallel training in one process: through the parameter server
// (schedulers/ps_trainer.hpp, BSP), through ring all-reduce (schedulers/
// allreduce_trainer.hpp, with and without overlap, several fusion bucket
// sizes) and hybrid (embeddings through the parameter server, dense layers
// through all-reduce). W workers on equal shares of each global batch end
// where one process training on the whole batch ends (up to float
// rounding), dense and embedding parameters alike.

#include <gtest/gtest.h>

#include <caf/all.hpp>

#include <thread>

#include "graph/builder.hpp"
#include "graph/models.hpp"
#include "ops/random.hpp"
#include "actors/runtime.hpp"
#include "schedulers/allreduce_trainer.hpp"
#include "schedulers/ps_trainer.hpp"

using namespace luoshu;

namespace {

struct model {
  graph g;
  expr x, ids, y, loss;
  model() {
    x = g.placeholder("x", dtype::f32, shape{-1, 6});
    ids = g.placeholder("ids", dtype::i64, shape{-1, 3});
    y = g.placeholder("y", dtype::i64, shape{-1});
    expr table = g.variable("emb", {50, 4}, init::normal(0, 0.3));
    expr e = sum(embedding(table, ids), {1});
    expr h = relu(linear(concat({x, e}, 1), g.variable("w1", {10, 16}, init::he_uniform()),
                         g.variable("b1", {16}, init::zeros())));
    expr logits = linear(h, g.variable("w2", {16, 3}, init::xavier_uniform()), g.variable("b2", {3}, init::zeros()));
    loss = mean(softmax_cross_entropy(logits, y));
  }
};

struct batch {
  tensor x, ids, y;
};

batch make_batch(int step, int64_t from, int64_t n) {
  std::vector<float> xv;
  std::vector<int64_t> iv, yv;
  for (int64_t i = from; i < from + n; ++i) {
    uint64_t k = static_cast<uint64_t>(step) * 1000 + static_cast<uint64_t>(i);
    for (int j = 0; j < 6; ++j) xv.push_back(static_cast<float>(ops::uniform01(k, static_cast<uint64_t>(j)) * 2 - 1));
    for (int j = 0; j < 3; ++j) iv.push_back(static_cast<int64_t>(ops::mix64(k * 7 + static_cast<uint64_t>(j)) % 50));
    yv.push_back(static_cast<int64_t>(ops::mix64(k) % 3));
  }
  return {tensor::from<float>(shape{n, 6}, xv), tensor::from<int64_t>(shape{n, 3}, iv), tensor::from<int64_t>(shape{n}, yv)};
}

optimizer_config momentum() {
  optimizer_config c;
  c.kind = optimizer_config::kind_t::momentum;
  c.lr.base = 0.1;
  return c;
}

constexpr int steps = 12;
constexpr int64_t global = 12; // divisible by 2 and 3 workers
const char* const param_names[] = {"emb", "w1", "b1", "w2", "b2"};

feed_map feeds_of(const model& m, const batch& b) { return {{m.x, b.x}, {m.ids, b.ids}, {m.y, b.y}}; }

/// One process on whole batches: what the workers must match.
std::unique_ptr<variable_store> reference(const optimizer_config& c) {
  model ref;
  kernel_registry reg;
  cpu::register_kernels(reg);
  auto vars = std::make_unique<variable_store>(9);
  executor ex(ref.g, *vars, reg);
  trainer tr(ref.g, ref.loss, c, ex);
  for (int s = 0; s < steps; ++s) EXPECT_TRUE(tr.step(feeds_of(ref, make_batch(s, 0, global))).ok());
  // Training moved the parameters (else equality shows nothing).
  variable_store fresh(9);
  EXPECT_TRUE(fresh.initialize(ref.g).ok());
  EXPECT_NE(fresh.get("w1").to_doubles(), vars->get("w1").to_doubles());
  EXPECT_NE(fresh.get("emb").to_doubles(), vars->get("emb").to_doubles());
  return vars;
}

void expect_close(const variable_store& got_vars, const variable_store& want_vars, const std::string& who) {
  for (const char* name : param_names) {
    auto got = got_vars.get(name).to_doubles(), want = want_vars.get(name).to_doubles();
    ASSERT_EQ(got.size(), want.size());
    double diff = 0, norm = 0;
    for (size_t i = 0; i < got.size(); ++i) {
      diff += (got[i] - want[i]) * (got[i] - want[i]);
      norm += want[i] * want[i];
    }
    EXPECT_LE(std::sqrt(diff / std::max(norm, 1e-30)), 1e-5) << who << ": " << name;
  }
}

/// Runs `step(w, s)` for every worker in its own thread; the errors.
template <class Step>
std::vector<std::string> run_workers(int W, Step&& step) {
  std::vector<std::string> errors(static_cast<size_t>(W));
  std::vector<std::thread> ts;
  for (int w = 0; w < W; ++w)
    ts.emplace_back([&, w] {
      for (int s = 0; s < steps; ++s)
        if (std::string e = step(w, s); !e.empty()) {
          errors[static_cast<size_t>(w)] = e;
          return;
        }
    });
  for (auto& t : ts) t.join();
  return errors;
}

struct worker {
  model m;
  variable_store vars{9};
  std::unique_ptr<executor> ex;
  std::unique_ptr<actors::ps_client> client;
  std::unique_ptr<schedulers::ps_trainer> ps;
  std::unique_ptr<schedulers::allreduce_trainer> ar;
};

TEST(PsTrainer, BspWorkersEqualOneProcessOnTheGlobalBatch) {
  constexpr int W = 2;
  auto ref = reference(momentum());
  kernel_registry reg;
  cpu::register_kernels(reg);
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  std::vector<caf::actor> shards;
  for (int i = 0; i < 2; ++i) {
    actors::ps_shard_options o;
    o.shard = i;
    o.shards = 2;
    o.workers = W;
    shards.push_back(actors::spawn_ps_shard(sys, o));
  }
  std::vector<std::unique_ptr<worker>> ws;
  for (int w = 0; w < W; ++w) {
    auto wk = std::make_unique<worker>();
    wk->ex = std::make_unique<executor>(wk->m.g, wk->vars, reg);
    wk->client = std::make_unique<actors::ps_client>(sys, shards, w);
    schedulers::ps_trainer_options o;
    o.worker = w;
    o.ids_of["emb"] = wk->m.ids;
    wk->ps = std::make_unique<schedulers::ps_trainer>(wk->m.g, wk->m.loss, momentum(), *wk->ex, wk->vars, *wk->client, o);
    ASSERT_TRUE(wk->ps->init(w == 0).ok());
    ws.push_back(std::move(wk));
  }
  auto errors = run_workers(W, [&](int w, int s) -> std::string {
    auto& wk = *ws[static_cast<size_t>(w)];
    auto r = wk.ps->step(feeds_of(wk.m, make_batch(s, w * global / W, global / W)));
    return r ? "" : r.err().message;
  });
  for (auto& e : errors) ASSERT_EQ(e, "");
  ASSERT_TRUE(ws[0]->ps->fetch_parameters().ok());
  expect_close(ws[0]->vars, *ref, "worker 0");
  for (auto& s : shards) caf::anon_send_exit(s, caf::exit_reason::user_shutdown);
}

optimizer_config adam() {
  optimizer_config c;
  c.kind = optimizer_config::kind_t::adam;
  c.lr.base = 0.02;
  c.clip_norm = 1.0; // clipping sees the averaged gradient, as one process does
  return c;
}

struct allreduce_case {
  int workers;
  size_t fusion_bytes;
  bool overlap;
};

class AllreduceTrainer : public ::testing::TestWithParam<allreduce_case> {};

TEST_P(AllreduceTrainer, ReplicasEqualOneProcessOnTheGlobalBatch) {
  const auto [W, fusion, overlap] = GetParam();
  for (const optimizer_config& c : {momentum(), adam()}) {
    auto ref = reference(c);
    kernel_registry reg;
    cpu::register_kernels(reg);
    actors::runtime_config cfg;
    caf::actor_system sys{cfg};
    auto comms = actors::communicator::create_local(sys, W);
    ASSERT_TRUE(comms.ok()) << comms.err().message;
    std::vector<std::unique_ptr<worker>> ws;
    for (int w = 0; w < W; ++w) {
      // Replicas start from different seeds: init() gives them rank 0's values.
      auto wk = std::make_unique<worker>();
      wk->vars = variable_store(w == 0 ? 9 : 100 + static_cast<uint64_t>(w));
      wk->ex = std::make_unique<executor>(wk->m.g, wk->vars, reg);
      schedulers::allreduce_trainer_options o;
      o.fusion_bytes = fusion;
      o.overlap = overlap;
      wk->ar = std::make_unique<schedulers::allreduce_trainer>(wk->m.g, wk->m.loss, c, *wk->ex, wk->vars,
                                                               *(*comms)[static_cast<size_t>(w)], o);
      ws.push_back(std::move(wk));
    }
    std::vector<std::thread> init;
    std::vector<std::string> init_errors(static_cast<size_t>(W));
    for (int w = 0; w < W; ++w)
      init.emplace_back([&, w] {
        if (status st = ws[static_cast<size_t>(w)]->ar->init(); !st) init_errors[static_cast<size_t>(w)] = st.err().message;
      });
    for (auto& t : init) t.join();
    for (auto& e : init_errors) ASSERT_EQ(e, "");
    auto errors = run_workers(W, [&](int w, int s) -> std::string {
      auto& wk = *ws[static_cast<size_t>(w)];
      auto r = wk.ar->step(feeds_of(wk.m, make_batch(s, w * global / W, global / W)));
      return r ? "" : r.err().message;
    });
    for (auto& e : errors) ASSERT_EQ(e, "");
    for (int w = 0; w < W; ++w) expect_close(ws[static_cast<size_t>(w)]->vars, *ref, "replica " + std::to_string(w));
    const auto& st = ws[0]->ar->stats();
    EXPECT_EQ(st.steps, steps);
    EXPECT_GE(st.buckets, steps); // at least one dense bucket per step
    ws.clear();
  }
}

INSTANTIATE_TEST_SUITE_P(DataParallel, AllreduceTrainer,
                         ::testing::Values(allreduce_case{2, size_t{4} << 20, true},
                                           allreduce_case{3, 64, true}, // a bucket per gradient
                                           allreduce_case{2, 256, false}));

// Batch norm under all-reduce: each replica normalizes with its own share of
// the batch and keeps its own running statistics (no cross-replica sync);
// the trained parameters stay equal on every replica.
TEST(AllreduceTrainer, BatchNormReplicasShareParametersAndKeepTheirOwnRunningStatistics) {
  constexpr int W = 2;
  struct bn_model {
    graph g;
    expr x, y, loss;
    bn_model() {
      x = g.placeholder("x", dtype::f32, shape{-1, 6});
      y = g.placeholder("y", dtype::i64, shape{-1});
      expr h = models::batch_norm_layer(x, "bn/");
      expr w = g.variable("w", {6, 3}, init::xavier_uniform());
      expr b = g.variable("b", {3}, init::zeros());
      loss = mean(softmax_cross_entropy(linear(h, w, b), y));
    }
  };
  struct replica {
    bn_model m;
    variable_store vars{9};
    std::unique_ptr<executor> ex;
    std::unique_ptr<schedulers::allreduce_trainer> ar;
  };
  kernel_registry reg;
  cpu::register_kernels(reg);
  actors::runtime_config cfg;
  caf::actor_system sys{cfg};
  auto comms = actors::communicator::create_local(sys, W);
  ASSERT_TRUE(comms.ok()) << comms.err().message;
  std::vector<std::unique_ptr<replica>> rs;
  for (int w = 0; w < W; ++w) {
    auto r = std::make_unique<replica>();
    r->ex = std::make_unique<executor>(r->m.g, r->vars, reg);
    r->ar = std::make_unique<schedulers::allreduce_trainer>(r->m.g, r->m.loss, momentum(), *r->ex, r->vars,
                                                            *(*comms)[static_cast<size_t>(w)]);
    rs.push_back(std::move(r));
  }
  std::vector<std::thread> init;
  for (int w = 0; w < W; ++w) init.emplace_back([&, w] { EXPECT_TRUE(rs[static_cast<size_t>(w)]->ar->init().ok()); });
  for (auto& t : init) t.join();
  auto errors = run_workers(W, [&](int w, int s) -> std::string {
    auto& r = *rs[static_cast<size_t>(w)];
    batch b = make_batch(s, w * global / W, global / W);
    auto res = r.ar->step({{r.m.x, b.x}, {r.m.y, b.y}});
    return res ? "" : res.err().message;
  });
  for (auto& e : errors) ASSERT_EQ(e, "");
  for (const char* name : {"bn/gamma", "bn/beta", "w", "b"}) {
    auto a = rs[0]->vars.get(name).to_doubles(), b = rs[1]->vars.get(name).to_doubles();
    ASSERT_EQ(a.size(), b.size());
    for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], b[i], 1e-6) << name << "[" << i << "]";
  }
  EXPECT_NE(rs[0]->vars.get("bn/gamma").to_doubles(), (std::vector<double>(6, 1.0))) << "gamma never trained";
  // Each replica's running mean follows its own shards of x only.
  for (int w = 0; w < W; ++w) {
    std::vector<double> want(6, 0.0);
    for (int s = 0; s < steps; ++s) {
      batch b = make_batch(s, w * global / W, global / W);
      const float* x = b.x.data<float>();
      for (int j = 0; j < 6; ++j) {
        double m = 0;
        for (int64_t i = 0; i < global / W; ++i) m += x[i * 6 + j];
        want[static_cast<size_t>(j)] = 0.9 * want[static_cast<size_t>(j)] + 0.1 * m / static_cast<double>(global / W);
      }
    }
    auto got = rs[static_cast<size_t>(w)]->vars.get("bn/running_mean").to_doubles();
    for (int j = 0; j < 6; ++j) EXPECT_NEAR(got[static_cast<size_t>(j)], want[static_cast<size_t>(j)], 1e-5) << "replica " << w;
  }
  EXPECT_NE(rs[0]->vars.get("bn/running_mean").to_doubles(), rs[1]->vars.get("bn/running_mean").to_doubles());
  rs.clear();
}

TEST(HybridTrainer, EmbeddingsThroughThePsDenseThroughAllreduceEqualOneProcess) {
  constexpr int W = 2;
  auto ref = reference(momentum());
  kernel_registry reg;
  cpu::register_kernels(reg);
  actors::runtime_config cfg;
  caf::actor_system sys{cfg};
  actors::ps_shard_options so;
  so.workers = W;
  auto shard = actors::spawn_ps_shard(sys, so);
  auto comms = actors::communicator::create_local(sys, W);
  ASSERT_TRUE(comms.ok()) << comms.err().message;
  std::vector<std::unique_ptr<worker>> ws;
  for (int w = 0; w < W; ++w) {
    auto wk = std::make_unique<worker>();
    wk->ex = std::make_unique<executor>(wk->m.g, wk->vars, reg);
    wk->client = std::make_unique<actors::ps_client>(sys, std::vector<caf::actor>{shard}, w);
    schedulers::ps_trainer_options po;
    po.worker = w;
    po.ids_of["emb"] = wk->m.ids;
    expr emb = wk->m.g.find("emb");
    std::vector<expr> dense;
    for (const char* n : {"w1", "b1", "w2", "b2"}) dense.push_back(wk->m.g.find(n));
    wk->ps = std::make_unique<schedulers::ps_trainer>(wk->m.g, wk->m.loss, momentum(), *wk->ex, wk->vars, *wk->client,
                                                      po, std::vector<expr>{emb});
    wk->ar = std::make_unique<schedulers::allreduce_trainer>(wk->m.g, wk->m.loss, momentum(), *wk->ex, wk->vars,
                                                             *(*comms)[static_cast<size_t>(w)],
                                                             schedulers::allreduce_trainer_options{}, dense);
    ASSERT_TRUE(wk->ps->init(w == 0).ok());
    ws.push_back(std::move(wk));
  }
  auto errors = run_workers(W, [&](int w, int s) -> std::string {
    auto& wk = *ws[static_cast<size_t>(w)];
    schedulers::ps_step_extras extra;
    extra.fetches = wk.ar->grad_fetches();
    extra.on_fetch = [&](size_t f, const tensor& v) { wk.ar->on_grad(f, v); };
    wk.ar->begin_step();
    auto r = wk.ps->step(feeds_of(wk.m, make_batch(s, w * global / W, global / W)), &extra);
    if (!r) return r.err().message;
    status st = wk.ar->finish_step(extra.values);
    return st ? "" : st.err().message;
  });
  for (auto& e : errors) ASSERT_EQ(e, "");
  for (int w = 0; w < W; ++w) {
    ASSERT_TRUE(ws[static_cast<size_t>(w)]->ps->fetch_parameters().ok());
    expect_close(ws[static_cast<size_t>(w)]->vars, *ref, "worker " + std::to_string(w));
  }
  ws.clear();
  caf::anon_send_exit(shard, caf::exit_reason::user_shutdown);
}

TEST(PsTrainer, UnsupportedOptimizerSettingsAreNamed) {
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  actors::ps_shard_options o;
  auto shard = actors::spawn_ps_shard(sys, o);
  model m;
  kernel_registry reg;
  cpu::register_kernels(reg);
  variable_store vars(1);
  executor ex(m.g, vars, reg);
  actors::ps_client client(sys, {shard}, 0);
  optimizer_config c = momentum();
  c.lr.kind = lr_schedule::kind_t::cosine;
  schedulers::ps_trainer tr(m.g, m.loss, c, ex, vars, client);
  auto st = tr.init(true);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.err().message.find("learning-rate schedule"), std::string::npos) << st.err().message;
  caf::anon_send_exit(shard, caf::exit_reason::user_shutdown);
}

} // namespace
