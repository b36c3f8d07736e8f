// Data-parallel training through the parameter server, as a job:
//
//   luoshu launch CLUSTER.yaml -- ps_data_parallel --servers S --steps 30 [--consistency bsp|ssp:K|asp]
//
// The cluster file lists the servers first, then the workers (see
// tests/actors/ps_job_test.sh). Each server node runs one ps_shard actor
// (registered with the coordinator as "ps-shard-<i>"); each worker looks
// the shards up, trains the model on its share of every global batch with
// schedulers::ps_trainer and prints its loss per step. Worker 0 writes the
// initial parameters into the shards and, at the end, prints a checksum of
// the trained parameters. Without a job (`ps_data_parallel --steps 30`) the
// same model trains in one process on whole batches and prints the same
// checksum, which BSP reproduces up to float rounding.
//
// The model: 6 dense features plus 3 ids into a 1000 x 8 embedding table
// (summed), an MLP 14-32-3, softmax cross-entropy; momentum 0.9, lr 0.1;
// synthetic data (a fixed, learnable rule), global batch 64.

#include <cstdio>
#include <cstdlib>
#include <string>

#include <caf/all.hpp>

#include "actors/node.hpp"
#include "actors/ps.hpp"
#include "graph/luoshu.hpp"
#include "ops/random.hpp"
#include "schedulers/ps_trainer.hpp"

using namespace luoshu;

namespace {

constexpr int64_t global_batch = 64;

struct model {
  graph g;
  expr x, ids, y, loss;
  model() {
    x = g.placeholder("x", dtype::f32, {-1, 6});
    ids = g.placeholder("ids", dtype::i64, {-1, 3});
    y = g.placeholder("y", dtype::i64, {-1});
    expr e = sum(embedding(g.variable("emb", {1000, 8}, init::normal(0, 0.1)), ids), {1});
    expr h = relu(linear(concat({x, e}, 1), g.variable("w1", {14, 32}, init::he_uniform()),
                         g.variable("b1", {32}, init::zeros())));
    expr logits = linear(h, g.variable("w2", {32, 3}, init::xavier_uniform()), g.variable("b2", {3}, init::zeros()));
    loss = mean(softmax_cross_entropy(logits, y)).named("loss");
  }
};

/// Rows [from, from + n) of global batch `step`: the class is the argmax of
/// three feature sums, shifted by the first id's bucket.
feed_map batch(const model& m, int64_t step, int64_t from, int64_t n) {
  std::vector<float> xv;
  std::vector<int64_t> iv, yv;
  for (int64_t i = from; i < from + n; ++i) {
    uint64_t k = static_cast<uint64_t>(step) * 100003 + static_cast<uint64_t>(i);
    float s[3] = {0, 0, 0};
    for (int j = 0; j < 6; ++j) {
      float v = static_cast<float>(ops::uniform01(k, static_cast<uint64_t>(j)) * 2 - 1);
      xv.push_back(v);
      s[j % 3] += v;
    }
    for (int j = 0; j < 3; ++j) iv.push_back(static_cast<int64_t>(ops::mix64(k * 31 + static_cast<uint64_t>(j)) % 1000));
    int c = s[0] > s[1] ? (s[0] > s[2] ? 0 : 2) : (s[1] > s[2] ? 1 : 2);
    yv.push_back((c + iv[iv.size() - 3] % 2) % 3);
  }
  return {{m.x, tensor::from<float>(shape{n, 6}, xv)},
          {m.ids, tensor::from<int64_t>(shape{n, 3}, iv)},
          {m.y, tensor::from<int64_t>(shape{n}, yv)}};
}

optimizer_config momentum() {
  optimizer_config c;
  c.kind = optimizer_config::kind_t::momentum;
  c.lr.base = 0.1;
  return c;
}

void print_checksum(const variable_store& vars) {
  for (const char* name : {"emb", "w1", "b1", "w2", "b2"}) {
    double s = 0, a = 0;
    for (double v : vars.get(name).to_doubles()) {
      s += v;
      a += v * v;
    }
    std::printf("checksum %s %.9g %.9g\n", name, s, a);
  }
}

int fail(const std::string& m) {
  std::fprintf(stderr, "error: %s\n", m.c_str());
  return 1;
}

} // namespace

int main(int argc, char** argv) {
  int64_t steps = 30;
  std::string consistency = "bsp";
  int servers = 0;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--steps" && i + 1 < argc) steps = std::atoll(argv[++i]);
    else if (a == "--servers" && i + 1 < argc) servers = std::atoi(argv[++i]);
    else if (a == "--consistency" && i + 1 < argc) consistency = argv[++i];
    else {
      std::fprintf(stderr, "usage: %s [--servers S] [--steps N] [--consistency bsp|ssp:K|asp]\n", argv[0]);
      return 2;
    }
  }
  auto cons = actors::ps_consistency::parse(consistency);
  if (!cons) return fail(cons.err().message);
  kernel_registry kernels;
  cpu::register_kernels(kernels);
  model m;
  constexpr uint64_t seed = 5;

  if (!actors::in_job()) { // one process, whole batches
    variable_store vars(seed);
    executor ex(m.g, vars, kernels);
    trainer tr(m.g, m.loss, momentum(), ex);
    for (int64_t s = 0; s < steps; ++s) {
      auto r = tr.step(batch(m, s, 0, global_batch));
      if (!r) return fail(r.err().message);
      std::printf("step %lld loss %.6f\n", static_cast<long long>(s), (*r)[0].item());
    }
    print_checksum(vars);
    return 0;
  }

  auto o = actors::node_options_from_env();
  if (!o) return fail(o.err().message);
  auto joined = actors::node::join(*o);
  if (!joined) return fail(joined.err().message);
  auto& node = **joined;
  // Servers come first in the cluster file: ranks [0, S) are shards.
  const int workers = node.world_size() - servers;
  if (servers <= 0 || workers <= 0)
    return fail("--servers S: the job's first S nodes are servers, the rest workers (got S=" +
                std::to_string(servers) + " of " + std::to_string(node.world_size()) + " nodes)");
  const bool server = node.self().role == transport::node_role::server;
  if (server != (node.rank() < servers)) return fail("list the servers before the workers in the cluster file");

  caf::actor shard;
  if (server) {
    actors::ps_shard_options so;
    so.shard = node.rank();
    so.shards = servers;
    so.workers = workers;
    so.consistency = *cons;
    shard = actors::spawn_ps_shard(node.system(), so);
    if (status st = actors::serve_ps_shard(node, node.rank(), shard); !st) return fail(st.err().message);
    std::printf("shard %d of %d (%s, %d workers)\n", node.rank(), servers, cons->to_string().c_str(), workers);
  }
  if (status st = node.barrier("ps-ready"); !st) return fail(st.err().message);

  int rc = 0;
  if (!server) {
    const int w = node.rank() - servers;
    auto connected = actors::connect_ps_shards(node, servers);
    if (!connected) return fail(connected.err().message);
    std::vector<caf::actor> shards = std::move(*connected);
    variable_store vars(seed);
    executor ex(m.g, vars, kernels);
    actors::ps_client client(node.system(), shards, w);
    if (status st = client.connect(); !st) return fail(st.err().message);
    schedulers::ps_trainer_options to;
    to.worker = w;
    to.ids_of["emb"] = m.ids;
    schedulers::ps_trainer tr(m.g, m.loss, momentum(), ex, vars, client, to);
    if (status st = tr.init(w == 0); !st) return fail(st.err().message);
    if (status st = node.barrier("ps-init"); !st) return fail(st.err().message);
    const int64_t share = global_batch / workers;
    for (int64_t s = 0; s < steps && rc == 0; ++s) {
      auto r = tr.step(batch(m, s, w * share, share));
      if (!r) {
        rc = fail(r.err().message);
        break;
      }
      std::printf("step %lld loss %.6f\n", static_cast<long long>(s), *r);
    }
    if (rc == 0 && w == 0) {
      if (status st = tr.fetch_parameters(); !st) rc = fail(st.err().message);
      else print_checksum(vars);
      std::printf("max staleness %lld\n", static_cast<long long>(client.max_staleness()));
    }
  } else if (status st = node.barrier("ps-init"); !st) {
    return fail(st.err().message);
  }
  status done = node.barrier("ps-done");
  if (shard) caf::anon_send_exit(shard, caf::exit_reason::user_shutdown); // the actor system waits for it
  if (!done) return fail(done.err().message);
  return rc;
}
