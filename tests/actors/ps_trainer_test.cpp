// Data-parallel training through the parameter server (schedulers/
// ps_trainer.hpp), in one process: two workers on halves of each global
// batch with BSP end exactly where one process training on the whole batch
// ends (up to float rounding), dense and embedding parameters alike.

#include <gtest/gtest.h>

#include <caf/all.hpp>

#include <thread>

#include "graph/builder.hpp"
#include "ops/random.hpp"
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

TEST(PsTrainer, BspWorkersEqualOneProcessOnTheGlobalBatch) {
  constexpr int W = 2, steps = 12;
  constexpr int64_t global = 8;
  // One process, whole batches.
  model ref;
  kernel_registry reg;
  cpu::register_kernels(reg);
  variable_store ref_vars(9);
  executor ref_ex(ref.g, ref_vars, reg);
  trainer ref_tr(ref.g, ref.loss, momentum(), ref_ex);
  for (int s = 0; s < steps; ++s) {
    batch b = make_batch(s, 0, global);
    ASSERT_TRUE(ref_tr.step({{ref.x, b.x}, {ref.ids, b.ids}, {ref.y, b.y}}).ok());
  }

  // Two workers, two shards, BSP.
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
  struct worker {
    model m;
    variable_store vars{9};
    std::unique_ptr<executor> ex;
    std::unique_ptr<actors::ps_client> client;
    std::unique_ptr<schedulers::ps_trainer> tr;
  };
  std::vector<std::unique_ptr<worker>> ws;
  for (int w = 0; w < W; ++w) {
    auto wk = std::make_unique<worker>();
    wk->ex = std::make_unique<executor>(wk->m.g, wk->vars, reg);
    wk->client = std::make_unique<actors::ps_client>(sys, shards, w);
    schedulers::ps_trainer_options o;
    o.worker = w;
    o.ids_of["emb"] = wk->m.ids;
    wk->tr = std::make_unique<schedulers::ps_trainer>(wk->m.g, wk->m.loss, momentum(), *wk->ex, wk->vars, *wk->client, o);
    ASSERT_TRUE(wk->tr->init(w == 0).ok());
    ws.push_back(std::move(wk));
  }
  std::vector<std::string> errors(W);
  std::vector<std::thread> ts;
  for (int w = 0; w < W; ++w)
    ts.emplace_back([&, w] {
      auto& wk = *ws[static_cast<size_t>(w)];
      for (int s = 0; s < steps; ++s) {
        batch b = make_batch(s, w * global / W, global / W);
        auto r = wk.tr->step({{wk.m.x, b.x}, {wk.m.ids, b.ids}, {wk.m.y, b.y}});
        if (!r) {
          errors[static_cast<size_t>(w)] = r.err().message;
          return;
        }
      }
    });
  for (auto& t : ts) t.join();
  for (auto& e : errors) ASSERT_EQ(e, "");
  ASSERT_TRUE(ws[0]->tr->fetch_parameters().ok());
  for (const char* name : {"emb", "w1", "b1", "w2", "b2"}) {
    auto got = ws[0]->vars.get(name).to_doubles(), want = ref_vars.get(name).to_doubles();
    ASSERT_EQ(got.size(), want.size());
    double diff = 0, norm = 0;
    for (size_t i = 0; i < got.size(); ++i) {
      diff += (got[i] - want[i]) * (got[i] - want[i]);
      norm += want[i] * want[i];
    }
    EXPECT_LE(std::sqrt(diff / std::max(norm, 1e-30)), 1e-5) << name;
  }
  // Training moved the parameters (else equality shows nothing).
  variable_store fresh(9);
  ASSERT_TRUE(fresh.initialize(ref.g).ok());
  EXPECT_NE(fresh.get("w1").to_doubles(), ref_vars.get("w1").to_doubles());
  for (auto& s : shards) caf::anon_send_exit(s, caf::exit_reason::user_shutdown);
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
