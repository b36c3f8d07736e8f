// The `luoshu` command line: train, gen, bench, launch, info.

#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <fstream>

#include "apps/bench/allreduce_bench.hpp"
#include "apps/bench/gpu_bench.hpp"
#include "apps/bench/zoo_bench.hpp"
#include "apps/bench/ps_bench.hpp"
#include "apps/bench/transport_bench.hpp"
#include "apps/luoshu/launch.hpp"
#include "apps/luoshu/node_cmd.hpp"
#include "apps/luoshu/progress.hpp"
#include "apps/luoshu/dist_train.hpp"
#include "apps/train/train.hpp"
#include "graph/data/criteo.hpp"
#include "ops/cuda/runtime.hpp"
#include "ops/kernel.hpp"

namespace {

/// Trains and reports (the summary line and JSON) when `report`.
std::string g_summary_path; // --summary-json (also read by the ps strategy's worker 0)
bool g_quiet = false;

int train_and_report(const luoshu::app::train_config& cfg, luoshu::app::step_strategy* strategy, bool report) {
  auto progress = luoshu::app::make_console_progress(g_quiet || !report);
  auto r = luoshu::app::train(cfg, report ? progress.get() : nullptr, strategy);
  if (!r) {
    spdlog::error("{}", r.err().message);
    return 1;
  }
  if (!report) return 0;
  const auto& s = *r;
  std::string line = fmt::format("done: {} steps in {:.1f} s, train loss {:.4f}", s.steps, s.wall_seconds, s.train_loss);
  if (s.test_accuracy >= 0) line += fmt::format(", final test accuracy {:.2f}%", 100 * s.test_accuracy);
  if (s.test_auc >= 0) line += fmt::format(", test AUC {:.4f}", s.test_auc);
  if (s.test_log_loss >= 0) line += fmt::format(", test log-loss {:.4f}", s.test_log_loss);
  line += fmt::format(", {:.0f} samples/s, peak memory {:.1f} MiB", s.samples_per_sec,
                      static_cast<double>(s.peak_memory_bytes) / (1 << 20));
  std::printf("%s\n", line.c_str());
  if (!g_summary_path.empty()) {
    std::ofstream f(g_summary_path);
    if (!f) {
      spdlog::error("cannot write the summary to {}", g_summary_path);
      return 1;
    }
    f << luoshu::app::summary_json(cfg, s);
  }
  return 0;
}

int cmd_train(const std::string& config, const std::vector<std::string>& sets, int threads, const std::string& device,
              const std::string& strategy, const luoshu::app::dist_train_options& ps) {
  std::vector<std::string> overrides = sets;
  if (threads >= 0) overrides.push_back("run.threads=" + std::to_string(threads));
  if (!device.empty()) overrides.push_back("run.device=" + device);
  auto cfg = luoshu::app::load_train_config(config, overrides);
  if (!cfg) {
    spdlog::error("{}", cfg.err().message);
    return 2;
  }
  if (strategy != "local") {
    luoshu::app::dist_train_options o = ps;
    o.strategy = strategy;
    return luoshu::app::run_dist_train(*cfg, o, train_and_report);
  }
  return train_and_report(*cfg, nullptr, true);
}

int cmd_gen_criteo(const std::string& out, const luoshu::data::criteo_gen_options& o) {
  auto r = luoshu::data::write_criteo(out, o);
  if (!r) {
    spdlog::error("{}", r.err().message);
    return 1;
  }
  std::printf("wrote %lld rows to %s: %.1f%% positive, %lld distinct categorical ids\n",
              static_cast<long long>(r->rows), out.c_str(),
              r->rows ? 100.0 * static_cast<double>(r->positives) / static_cast<double>(r->rows) : 0.0,
              static_cast<long long>(r->distinct_ids));
  return 0;
}

int cmd_info() {
  std::printf("luoshu %s\n", LUOSHU_VERSION);
  std::printf("intra-op threads: %d (set with --threads or run.threads)\n", luoshu::cpu::num_threads());
  std::printf("CUDA backend: %s\n", luoshu::cuda::built_with_cuda() ? "built" : "not built");
  int n = luoshu::cuda::device_count();
  std::printf("CUDA devices: %d\n", n);
  for (int i = 0; i < n; ++i) std::printf("  cuda:%d %s\n", i, luoshu::cuda::describe_device(i).c_str());
  return 0;
}

} // namespace

int main(int argc, char** argv) {
  spdlog::set_pattern("[%H:%M:%S.%e] [%^%l%$] %v");
  CLI::App app{"Luoshu: an actor-model distributed dataflow engine for deep learning"};
  app.set_version_flag("--version", std::string("luoshu ") + LUOSHU_VERSION);
  app.require_subcommand(1);

  auto* train = app.add_subcommand("train", "Train a model described by a YAML config");
  std::string config, summary;
  std::vector<std::string> sets;
  int threads = -1;
  bool quiet = false;
  train->add_option("config", config, "YAML config (model, data, optimizer, run)")->required();
  train->add_option("--set", sets, "Override a config key, e.g. --set optimizer.lr=0.1 (repeatable)");
  train->add_option("--summary-json", summary, "Write final metrics as JSON to this file");
  train->add_option("--threads", threads, "Intra-op threads (0 = one per core)");
  std::string train_device;
  train->add_option("--device", train_device, "Where to train: cpu (default) or cuda[:N] (same as run.device)");
  train->add_flag("--quiet", quiet, "Only per-epoch lines");
  std::string train_trace;
  train->add_option("--trace", train_trace, "Write a Chrome/Perfetto timeline of every op to FILE");
  std::string strategy = "local";
  luoshu::app::dist_train_options ps_opts;
  train->add_option("--strategy", strategy,
                    "local (default); data parallel across processes: ps (parameter-server shards), allreduce "
                    "(ring all-reduce among replicas) or hybrid (embeddings via ps, dense layers via all-reduce)")
      ->check(CLI::IsMember({"local", "ps", "allreduce", "hybrid"}));
  train->add_option("--servers", ps_opts.servers, "ps, hybrid: parameter-server shards (processes)")
      ->check(CLI::PositiveNumber);
  train->add_option("--workers", ps_opts.workers, "ps, allreduce, hybrid: workers (processes); each takes batch_size / workers rows")
      ->check(CLI::PositiveNumber);
  train->add_option("--consistency", ps_opts.consistency, "ps, hybrid: bsp (default), ssp:K or asp");
  train->add_option("--fusion-bytes", ps_opts.fusion_bytes,
                    "allreduce, hybrid: gradients are reduced in buckets of about this many bytes (default 4 MiB)")
      ->check(CLI::PositiveNumber);
  bool no_overlap = false;
  train->add_flag("--no-overlap", no_overlap,
                  "allreduce, hybrid: reduce gradients after backward instead of while it runs (for comparison)");
  train->add_option("--job-timeout", ps_opts.timeout_s,
                    "ps, allreduce, hybrid: stop the local job after this many seconds (0: no limit)")
      ->check(CLI::NonNegativeNumber);

  auto* bench = app.add_subcommand("bench", "Benchmarks");
  bench->require_subcommand(1);
  auto* zoo = bench->add_subcommand("zoo", "Model-zoo training (MLP, CNN, LSTM, DLRM) vs PyTorch and TensorFlow");
  luoshu::bench::zoo_bench_options zo;
  bool zoo_no_baselines = false;
  zoo->add_option("--models", zo.models, "Models to run (default: mlp cnn lstm dlrm)");
  auto* mlp = bench->add_subcommand("mlp", "MLP 784-256-256-10 training vs PyTorch and TensorFlow (bench zoo --models mlp)");
  for (auto* c : {zoo, mlp}) {
    c->add_option("--json", zo.json_path, "Write results as JSON to this file");
    c->add_option("--steps", zo.steps, "Timed steps per run (default: per model)")->check(CLI::PositiveNumber);
    c->add_option("--warmup", zo.warmup, "Warm-up steps per run (default: per model)")->check(CLI::NonNegativeNumber);
    c->add_option("--batch", zo.batch, "Batch size (default: per model)")->check(CLI::PositiveNumber);
    c->add_option("--threads", zo.threads, "Luoshu thread counts to try (best kept; default: 1 and all cores)")
        ->check(CLI::PositiveNumber);
    c->add_option("--python", zo.python, "Python with torch and tensorflow (default: $LUOSHU_BENCH_PYTHON or .venv-bench)");
    c->add_flag("--no-baselines", zoo_no_baselines, "Measure Luoshu only");
    c->add_flag("--profile", zo.profile, "Also print Luoshu's kernel time per op kind (a separate run)");
  }
  zoo->add_option("--worker", zo.worker, "Measure one model in this process (used by bench zoo itself)")->group("");
  auto* transport_cmd =
    bench->add_subcommand("transport", "Tensors between two processes: BASP vs the bulk lane vs raw TCP");
  luoshu::bench::transport_bench_options to;
  transport_cmd->add_option("--json", to.json_path, "Write results as JSON to this file");
  transport_cmd->add_option("--sizes", to.sizes, "Tensor sizes: bytes or 64K, 4M, 1G (default 1K to 256M, powers of 4)");
  transport_cmd->add_option("--seconds", to.seconds, "Seconds per path and size (best of 2 rounds), and per round-trip test")->check(CLI::PositiveNumber);
  transport_cmd->add_option("--paths", to.paths, "Paths to measure: raw, lane, basp (default all)");
  transport_cmd->add_flag("--peer", to.peer, "Run as the benchmark's peer process")->group("");

  auto* ps_cmd = bench->add_subcommand("ps", "Parameter server across two processes: dense GB/s and sparse keys/s vs raw TCP");
  luoshu::bench::ps_bench_options po;
  ps_cmd->add_option("--json", po.json_path, "Write results as JSON to this file");
  ps_cmd->add_option("--seconds", po.seconds, "Seconds per measurement (best of 2 rounds)")->check(CLI::PositiveNumber);
  ps_cmd->add_option("--shards", po.shards, "Shard counts to measure (default 1,2,4)")->delimiter(',')->check(CLI::Range(1, 64));
  ps_cmd->add_flag("--peer", po.peer, "Run as the benchmark's peer process")->group("");
  ps_cmd->add_option("--wide-deep-rows", po.wide_deep_rows,
                     "Generated Criteo rows for the Wide&Deep samples/s comparison (0: skip)")
      ->check(CLI::NonNegativeNumber);

  auto* ar_cmd = bench->add_subcommand(
    "allreduce", "All-reduce bus bandwidth across processes vs OpenMPI (TCP, shared memory) and gloo");
  luoshu::bench::allreduce_bench_options ao;
  bool ar_no_baselines = false;
  ar_cmd->add_option("--json", ao.json_path, "Write results as JSON to this file");
  ar_cmd->add_option("--sizes", ao.sizes, "Message sizes: bytes or 64K, 16M, 1G (default 1M,16M,128M)")->delimiter(',');
  ar_cmd->add_option("--ranks", ao.ranks, "Rank counts (processes) to measure (default 2,4)")->delimiter(',');
  ar_cmd->add_option("--warmup", ao.warmup, "Untimed iterations per size")->check(CLI::NonNegativeNumber);
  ar_cmd->add_option("--iters", ao.iters, "Timed iterations per size (default 100 below 4 MiB, 20 from there, 10 from 64 MiB)")
      ->check(CLI::NonNegativeNumber);
  ar_cmd->add_option("--rounds", ao.rounds,
                     "Interleaved repetitions of every measurement; the median round counts (default 3)")
      ->check(CLI::Range(1, 100));
  ar_cmd->add_option("--chunk-bytes", ao.chunk_bytes, "Luoshu's pipelining chunk: bytes or 64K, 1M (default 512K)")
      ->transform(CLI::AsSizeValue(false)) // K, M, G: powers of 1024, as in --sizes
      ->check(CLI::Range(size_t{8}, size_t{1} << 30));
  ar_cmd->add_option("--shm-slots", ao.shm_slots,
                     "Shared-memory slots (of --chunk-bytes) per ring edge between ranks on one host; 0: TCP only "
                     "(default 16)")
      ->check(CLI::Range(0, 1024));
  ar_cmd->add_option("--halving-doubling-max-bytes", ao.hd_max_bytes,
                     "Luoshu all-reduces up to this size by recursive halving and doubling over 4, 8, 16... ranks; "
                     "0: always the ring (default 1M)")
      ->transform(CLI::AsSizeValue(false))
      ->check(CLI::Range(0LL, 1LL << 40));
  ar_cmd->add_option("--python", ao.python, "Python with torch for gloo (default: $LUOSHU_BENCH_PYTHON or .venv-bench)");
  ar_cmd->add_flag("--no-baselines", ar_no_baselines, "Measure Luoshu only");
  bool ar_no_bind = false;
  ar_cmd->add_flag("--no-bind-cores", ar_no_bind, "Do not pin Luoshu's ranks to cores (luoshu launch --bind-cores)");
  ar_cmd->add_option("--overlap-rows", ao.overlap_rows,
                     "Generated Criteo rows for the training overlap comparison (0: skip)")
      ->check(CLI::NonNegativeNumber);
  ar_cmd->add_flag("--worker", ao.worker, "Run as one rank of the measured job")->group("");
  ar_cmd->add_option("--out", ao.out, "Worker: append results here")->group("");
  ar_cmd->add_option("--die-rank", ao.die_rank, "Worker (tests): this rank kills itself")->group("");

  auto* gpu_cmd = bench->add_subcommand("gpu", "On a CUDA GPU: matmul vs cuBLAS, MLP training vs PyTorch");
  luoshu::bench::gpu_bench_options go;
  bool gpu_no_baselines = false;
  gpu_cmd->add_option("--json", go.json_path, "Write results as JSON to this file");
  gpu_cmd->add_option("--device", go.device, "CUDA device index")->check(CLI::NonNegativeNumber);
  gpu_cmd->add_option("--sizes", go.sizes, "Square matmul sizes")->check(CLI::PositiveNumber);
  gpu_cmd->add_option("--batches", go.batches, "MLP batch sizes")->check(CLI::PositiveNumber);
  gpu_cmd->add_option("--steps", go.steps, "Timed MLP steps")->check(CLI::PositiveNumber);
  gpu_cmd->add_option("--warmup", go.warmup, "Warm-up MLP steps")->check(CLI::NonNegativeNumber);
  gpu_cmd->add_option("--python", go.python, "Python with torch (default: $LUOSHU_BENCH_PYTHON or .venv-bench)");
  gpu_cmd->add_flag("--no-baselines", gpu_no_baselines, "Measure Luoshu and cuBLAS only");

  auto* gen = app.add_subcommand("gen", "Write synthetic data sets");
  gen->require_subcommand(1);
  auto* gen_criteo = gen->add_subcommand(
    "criteo", "Criteo-format TSV (label, 13 integer, 26 hex categorical columns) with Zipf ids and a learnable label");
  luoshu::data::criteo_gen_options gco;
  std::string gen_out;
  gen_criteo->add_option("--rows", gco.rows, "Rows to write")->required()->check(CLI::NonNegativeNumber);
  gen_criteo->add_option("--out", gen_out, "Output file (gzip when it ends in .gz)")->required();
  gen_criteo->add_option("--seed", gco.seed, "Seed of the vocabularies, weights and rows: the same seed writes the same file");
  gen_criteo->add_option("--part", gco.part, "Other rows from the same seed's distribution (e.g. 1 for a test set)");
  gen_criteo->add_option("--distinct", gco.distinct, "Largest per-field vocabulary (fields have distinct/1 .. distinct/32)")
    ->check(CLI::Range(int64_t{1}, int64_t{1} << 32));

  app.add_subcommand("info", "Version, threads and devices");

  auto* launch = app.add_subcommand("launch", "Start a job: a coordinator plus one process per node");
  std::string cluster;
  int local = 0;
  luoshu::app::launch_plan plan;
  double timeout = 0, hb_timeout = 10, join_timeout = 120;
  std::vector<std::string> command;
  launch->add_option("cluster", cluster, "Cluster YAML (hosts, roles, devices, coordinator address)");
  launch->add_option("--local", local, "Run N local worker processes (no YAML needed)")->check(CLI::Range(1, 4096));
  launch->add_option("--timeout", timeout, "Stop the job after this many seconds (0 = no limit)");
  launch->add_option("--heartbeat-timeout", hb_timeout, "Seconds of silence after which a node counts as hung");
  launch->add_option("--join-timeout", join_timeout, "Seconds for every node to join");
  std::string launch_trace;
  launch->add_option("--trace", launch_trace, "Write one Chrome/Perfetto timeline of every node's actors to FILE");
  bool bind_cores = false;
  launch->add_flag("--bind-cores", bind_cores,
                   "Pin each local node to its share of this host's CPUs (as mpirun --bind-to core)");
  launch->footer("Everything after -- is the application and its arguments, run once per node.");

  auto* nodecmd = app.add_subcommand("node", "Run one node of a job (settings from LUOSHU_* environment variables)");
  luoshu::app::node_cmd_options no;
  nodecmd->add_option("--barriers", no.barriers, "Barriers to pass before leaving")->check(CLI::NonNegativeNumber);
  nodecmd->add_option("--sleep-ms", no.sleep_ms, "Pause between barriers")->check(CLI::NonNegativeNumber);

  auto* coordcmd = app.add_subcommand("coordinator", "Run a standalone coordinator");
  luoshu::app::coordinator_cmd_options co;
  coordcmd->add_option("--world", co.world, "Number of nodes in the job")->required()->check(CLI::Range(1, 1 << 20));
  coordcmd->add_option("--host", co.host, "Address to listen on");
  coordcmd->add_option("--port", co.port, "Port (0: the OS picks)");
  coordcmd->add_option("--token", co.token, "Cluster token (or --token-file, or LUOSHU_TOKEN)");
  coordcmd->add_option("--token-file", co.token_file, "File holding the cluster token");
  coordcmd->add_option("--port-file", co.port_file, "Write the port here once listening");
  coordcmd->add_option("--heartbeat-timeout", co.heartbeat_timeout_s, "Seconds of silence after which a node counts as hung");
  coordcmd->add_option("--join-timeout", co.join_timeout_s, "Seconds for every node to join");

  // `luoshu launch ... -- APP ARGS`: the application's words are not ours to parse.
  int our_argc = argc;
  if (argc > 1 && std::string(argv[1]) == "launch")
    for (int i = 2; i < argc; ++i)
      if (std::string(argv[i]) == "--") {
        command.assign(argv + i + 1, argv + argc);
        our_argc = i;
        break;
      }
  try {
    app.parse(our_argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  try {
    if (train->parsed()) {
      if (!train_trace.empty()) sets.push_back("run.trace=" + train_trace);
      g_summary_path = summary;
      g_quiet = quiet;
      ps_opts.argv.assign(argv, argv + argc);
      ps_opts.overlap = !no_overlap;
      return cmd_train(config, sets, threads, train_device, strategy, ps_opts);
    }
    if (launch->parsed()) {
      if (local > 0 && !cluster.empty()) {
        spdlog::error("launch: give either --local N or a cluster file, not both");
        return 2;
      }
      if (local > 0) {
        plan = luoshu::app::local_plan(local);
      } else if (!cluster.empty()) {
        auto p = luoshu::app::load_cluster(cluster);
        if (!p) {
          spdlog::error("{}", p.err().message);
          return 2;
        }
        plan = *p;
      } else {
        spdlog::error("launch: give --local N or a cluster file");
        return 2;
      }
      if (command.empty()) {
        spdlog::error("launch: no application given: luoshu launch [--local N | CLUSTER.yaml] -- APP [ARGS...]");
        return 2;
      }
      plan.command = command;
      plan.trace = launch_trace;
      if (bind_cores) plan.bind_cores = true;
      if (timeout > 0) plan.timeout_s = timeout;
      if (launch->count("--heartbeat-timeout")) plan.heartbeat_timeout_s = hb_timeout;
      if (launch->count("--join-timeout")) plan.join_timeout_s = join_timeout;
      return luoshu::app::launch(plan);
    }
    if (gen_criteo->parsed()) return cmd_gen_criteo(gen_out, gco);
    if (nodecmd->parsed()) return luoshu::app::run_node(no);
    if (coordcmd->parsed()) return luoshu::app::run_coordinator(co);
    if (transport_cmd->parsed()) return luoshu::bench::run_transport_bench(to);
    if (ps_cmd->parsed()) return luoshu::bench::run_ps_bench(po);
    if (ar_cmd->parsed()) {
      ao.baselines = !ar_no_baselines;
      ao.bind_cores = !ar_no_bind;
      return luoshu::bench::run_allreduce_bench(ao);
    }
    if (gpu_cmd->parsed()) {
      go.baselines = !gpu_no_baselines;
      return luoshu::bench::run_gpu_bench(go);
    }
    if (zoo->parsed() || mlp->parsed()) {
      zo.baselines = !zoo_no_baselines;
      if (mlp->parsed()) zo.models = {"mlp"};
      return luoshu::bench::run_zoo_bench(zo);
    }
    return cmd_info();
  } catch (const std::exception& e) {
    spdlog::error("{}", e.what());
    return 1;
  }
}
