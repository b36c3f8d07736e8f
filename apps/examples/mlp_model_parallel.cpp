// Model parallelism by layers: the Fashion-MNIST MLP with its first layer on
// partition 0 and the rest on partition 1. The same binary runs
//   - alone:                  build/apps/examples/mlp_model_parallel
//   - as a two-process job:   build/apps/luoshu launch --local 2 -- build/apps/examples/mlp_model_parallel
// and prints the same loss at every step (the partition holding the loss
// prints it), then the test accuracy.
//
//   mlp_model_parallel [--steps N] [--data DIR] [--local-partitioned]
// --local-partitioned runs both partitions in this process, unit by unit.

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

#include "actors/compute.hpp"
#include "graph/luoshu.hpp"
#include "graph/partition.hpp"

using namespace luoshu;

int main(int argc, char** argv) {
  int64_t steps = 200;
  std::string dir = "/usr/share/datasets/fashion-mnist";
  bool local_partitioned = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--steps" && i + 1 < argc) steps = std::atoll(argv[++i]);
    else if (a == "--data" && i + 1 < argc) dir = argv[++i];
    else if (a == "--local-partitioned") local_partitioned = true;
    else {
      std::fprintf(stderr, "usage: %s [--steps N] [--data DIR] [--local-partitioned]\n", argv[0]);
      return 2;
    }
  }
  auto train_set = data::read_idx_dataset(dir + "/train-images-idx3-ubyte.gz", dir + "/train-labels-idx1-ubyte.gz");
  auto test_set = data::read_idx_dataset(dir + "/t10k-images-idx3-ubyte.gz", dir + "/t10k-labels-idx1-ubyte.gz");
  if (!train_set || !test_set) {
    std::fprintf(stderr, "error: %s\n", (!train_set ? train_set.err() : test_set.err()).message.c_str());
    return 1;
  }

  // The model, its training step and its evaluation, as one graph.
  graph g;
  expr x = g.placeholder("x", dtype::f32, {-1, 784});
  expr y = g.placeholder("y", dtype::i64, {-1});
  expr logits = models::mlp(x, {256, 256, 10}); // w1, b1 ... w3, b3
  expr loss = mean(softmax_cross_entropy(logits, y)).named("loss");
  expr acc = accuracy(logits, y).named("accuracy");
  optimizer_config opt;
  opt.kind = optimizer_config::kind_t::momentum;
  opt.lr.base = 0.02;
  train_ops ops = minimize(loss, opt);

  // Layer 1 (and its gradient and update) on partition 0, the rest on 1.
  auto place = place_by_variables(g, {{"w1", 0}, {"b1", 0}}, 1);
  auto train_plan = std::make_shared<const partition_plan>(partition_graph(g, place, {loss}, ops.updates));
  auto eval_plan = std::make_shared<const partition_plan>(partition_graph(g, place, {acc}, {}));

  constexpr uint64_t seed = 1;
  kernel_registry kernels;
  cpu::register_kernels(kernels);

  // Three ways to run a step; all see the same variables from `seed`.
  std::unique_ptr<actors::node> node;
  std::unique_ptr<actors::distributed_program> job;
  variable_store single(seed);
  std::vector<std::unique_ptr<variable_store>> stores;
  std::vector<variable_store*> store_ptrs;
  executor ex(g, single, kernels);
  if (actors::in_job()) {
    auto o = actors::node_options_from_env();
    if (!o) {
      std::fprintf(stderr, "error: %s\n", o.err().message.c_str());
      return 2;
    }
    auto n = actors::node::join(*o);
    if (!n) {
      std::fprintf(stderr, "error: %s\n", n.err().message.c_str());
      return 1;
    }
    node = std::move(*n);
    auto d = actors::distributed_program::start(*node, {train_plan, eval_plan}, seed);
    if (!d) {
      std::fprintf(stderr, "error: %s\n", d.err().message.c_str());
      return 1;
    }
    job = std::move(*d);
    std::printf("partition %d of %d\n", job->partition(), node->world_size());
  } else if (local_partitioned) {
    for (int p = 0; p < train_plan->partitions; ++p) {
      stores.push_back(std::make_unique<variable_store>(seed));
      store_ptrs.push_back(stores.back().get());
    }
  }
  int64_t step_no = 0;
  auto run = [&](bool training, const std::map<std::string, tensor>& feeds) -> result<tensor> {
    const partition_plan& plan = training ? *train_plan : *eval_plan;
    run_options ro;
    ro.training = training;
    ro.step = step_no++;
    result<std::vector<tensor>> r = error{"unreachable"};
    if (job) {
      r = job->run(training ? 0 : 1, ro.step, feeds, training);
    } else if (local_partitioned) {
      r = run_plan_locally(plan, store_ptrs, kernels, feeds, 1, ro);
    } else {
      feed_map fm{{x, feeds.at("x")}, {y, feeds.at("y")}};
      if (training) fm.emplace_back(ops.lr, feeds.at("lr"));
      r = ex.run(fm, {training ? loss : acc}, training ? ops.updates : std::vector<expr>{}, ro);
    }
    if (!r) return r.err();
    return r->at(0);
  };

  auto train_data = std::make_shared<const data::dataset>(std::move(*train_set));
  auto test_data = std::make_shared<const data::dataset>(std::move(*test_set));
  data::loader batches(train_data, {.batch_size = 128, .shuffle = true, .seed = seed});
  tensor lr = tensor::scalar<float>(static_cast<float>(opt.lr.base));
  int64_t done = 0;
  for (int64_t epoch = 0; done < steps; ++epoch) {
    batches.start_epoch(epoch);
    while (done < steps) {
      auto b = batches.next();
      if (!b) break;
      auto r = run(true, {{"x", b->features}, {"y", b->labels}, {"lr", lr}});
      if (!r) {
        std::fprintf(stderr, "error: %s\n", r.err().message.c_str());
        return 1;
      }
      if (r->defined()) std::printf("step %lld loss %.9g\n", static_cast<long long>(done), r->item());
      ++done;
    }
  }
  data::loader test_batches(test_data, {.batch_size = 1000, .shuffle = false});
  test_batches.start_epoch(0);
  double hits = 0;
  int64_t seen = 0;
  bool have = false;
  while (auto b = test_batches.next()) {
    auto r = run(false, {{"x", b->features}, {"y", b->labels}});
    if (!r) {
      std::fprintf(stderr, "error: %s\n", r.err().message.c_str());
      return 1;
    }
    if (r->defined()) {
      have = true;
      hits += r->item() * static_cast<double>(b->features.dim(0));
    }
    seen += b->features.dim(0);
  }
  if (have) std::printf("test accuracy %.6f\n", hits / static_cast<double>(seen));
  if (node) node->barrier("done");
  return 0;
}
