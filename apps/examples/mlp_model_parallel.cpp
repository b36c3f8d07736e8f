// Model parallelism by layers: the Fashion-MNIST MLP with its first layer on
// partition 0 and the rest on partition 1. The same binary runs
//   - alone:                  build/apps/examples/mlp_model_parallel
//   - as a two-process job:   build/apps/luoshu launch --local 2 -- build/apps/examples/mlp_model_parallel
// and prints the same loss at every step (the partition holding the loss
// prints it), then the test accuracy. In a job each process then signals
// end of data (finish()) and prints how many tensors went over the bulk
// lane and over typed actor messages (LUOSHU_BULK_THRESHOLD picks which).
//
//   mlp_model_parallel [--steps N] [--data DIR] [--local-partitioned]
//                      [--run-after-finish] [--finish-early RANK:STEPS]
// --local-partitioned runs both partitions in this process, unit by unit.
// --run-after-finish tries one more step after finish() (it must fail);
// --finish-early makes node RANK end its data after STEPS training steps
// while the others go on (they must fail naming it). Both are for tests.

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

#include "actors/compute.hpp"
#include "apps/examples/fit.hpp"
#include "graph/luoshu.hpp"
#include "graph/partition.hpp"

using namespace luoshu;

int main(int argc, char** argv) {
  int64_t steps = 200;
  std::string dir = "/usr/share/datasets/fashion-mnist";
  bool local_partitioned = false;
  bool run_after_finish = false;
  int early_rank = -1;
  long long early_steps = 0;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--steps" && i + 1 < argc) steps = std::atoll(argv[++i]);
    else if (a == "--data" && i + 1 < argc) dir = argv[++i];
    else if (a == "--local-partitioned") local_partitioned = true;
    else if (a == "--run-after-finish") run_after_finish = true;
    else if (a == "--finish-early" && i + 1 < argc &&
             std::sscanf(argv[i + 1], "%d:%lld", &early_rank, &early_steps) == 2) ++i;
    else {
      std::fprintf(stderr,
                   "usage: %s [--steps N] [--data DIR] [--local-partitioned] [--run-after-finish] "
                   "[--finish-early RANK:STEPS]\n",
                   argv[0]);
      return 2;
    }
  }
  auto sets = examples::read_fashion_mnist(dir);
  if (!sets) return 1;

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

  // End of data: this process runs no more steps; its compute actor stops
  // once every peer ended too. Prints what crossed processes, and how.
  auto finish = [&]() -> bool {
    if (!job) return true;
    if (status st = job->finish(); !st) {
      std::fprintf(stderr, "error: %s\n", st.err().message.c_str());
      return false;
    }
    auto c = job->transfers();
    std::printf("transfers: lane sent %llu tensors (%llu bytes) received %llu (%llu bytes); "
                "basp sent %llu (%llu bytes) received %llu (%llu bytes)\n",
                static_cast<unsigned long long>(c.lane_sent), static_cast<unsigned long long>(c.lane_sent_bytes),
                static_cast<unsigned long long>(c.lane_received),
                static_cast<unsigned long long>(c.lane_received_bytes),
                static_cast<unsigned long long>(c.basp_sent), static_cast<unsigned long long>(c.basp_sent_bytes),
                static_cast<unsigned long long>(c.basp_received),
                static_cast<unsigned long long>(c.basp_received_bytes));
    std::printf("end of data: partition %d stopped\n", job->partition());
    return true;
  };
  // On a failed step, still tell the peers that no more data comes (bounded).
  auto fail = [&](const error& e) {
    std::fprintf(stderr, "error: %s\n", e.message.c_str());
    if (job) (void)job->finish(std::chrono::seconds(10));
    return 1;
  };

  auto train_data = std::make_shared<const data::dataset>(std::move(sets->train));
  auto test_data = std::make_shared<const data::dataset>(std::move(sets->test));
  data::loader batches(train_data, {.batch_size = 128, .shuffle = true, .seed = seed});
  tensor lr = tensor::scalar<float>(static_cast<float>(opt.lr.base));
  int64_t done = 0;
  for (int64_t epoch = 0; done < steps; ++epoch) {
    batches.start_epoch(epoch);
    while (done < steps) {
      auto b = batches.next();
      if (!b) break;
      auto r = run(true, {{"x", b->features}, {"y", b->labels}, {"lr", lr}});
      if (!r) return fail(r.err());
      if (r->defined()) std::printf("step %lld loss %.9g\n", static_cast<long long>(done), r->item());
      ++done;
      if (job && node->rank() == early_rank && done == static_cast<int64_t>(early_steps)) {
        std::printf("partition %d ends its data after %lld steps\n", job->partition(),
                    static_cast<long long>(done));
        std::fflush(stdout);
        return finish() ? 0 : 1;
      }
    }
  }
  data::loader test_batches(test_data, {.batch_size = 1000, .shuffle = false});
  test_batches.start_epoch(0);
  double hits = 0;
  int64_t seen = 0;
  bool have = false;
  while (auto b = test_batches.next()) {
    auto r = run(false, {{"x", b->features}, {"y", b->labels}});
    if (!r) return fail(r.err());
    if (r->defined()) {
      have = true;
      hits += r->item() * static_cast<double>(b->features.dim(0));
    }
    seen += b->features.dim(0);
  }
  if (have) std::printf("test accuracy %.6f\n", hits / static_cast<double>(seen));
  if (!finish()) return 1;
  if (job && run_after_finish) {
    test_batches.start_epoch(0); // any batch: the step must be refused
    auto b = test_batches.next();
    auto r = run(false, {{"x", b->features}, {"y", b->labels}});
    if (r) {
      std::fprintf(stderr, "error: a step ran after end of data\n");
      return 1;
    }
    std::printf("run after finish: %s\n", r.err().message.c_str());
  }
  if (node) {
    if (status st = node->barrier("done"); !st) {
      std::fprintf(stderr, "error: %s\n", st.err().message.c_str());
      return 1;
    }
  }
  return 0;
}
