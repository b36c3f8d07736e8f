// The `luoshu` command line: train, bench, info.

#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <fstream>

#include "apps/bench/mlp_bench.hpp"
#include "apps/luoshu/progress.hpp"
#include "apps/train/train.hpp"
#include "ops/cuda/runtime.hpp"
#include "ops/kernel.hpp"

namespace {

int cmd_train(const std::string& config, const std::vector<std::string>& sets, const std::string& summary,
              int threads, bool quiet) {
  std::vector<std::string> overrides = sets;
  if (threads >= 0) overrides.push_back("run.threads=" + std::to_string(threads));
  auto cfg = luoshu::app::load_train_config(config, overrides);
  if (!cfg) {
    spdlog::error("{}", cfg.err().message);
    return 2;
  }
  auto progress = luoshu::app::make_console_progress(quiet);
  auto r = luoshu::app::train(*cfg, progress.get());
  if (!r) {
    spdlog::error("{}", r.err().message);
    return 1;
  }
  const auto& s = *r;
  std::string line = fmt::format("done: {} steps in {:.1f} s, train loss {:.4f}", s.steps, s.wall_seconds, s.train_loss);
  if (s.test_accuracy >= 0) line += fmt::format(", final test accuracy {:.2f}%", 100 * s.test_accuracy);
  if (s.test_auc >= 0) line += fmt::format(", test AUC {:.4f}", s.test_auc);
  line += fmt::format(", {:.0f} samples/s, peak memory {:.1f} MiB", s.samples_per_sec,
                      static_cast<double>(s.peak_memory_bytes) / (1 << 20));
  std::printf("%s\n", line.c_str());
  if (!summary.empty()) {
    std::ofstream f(summary);
    if (!f) {
      spdlog::error("cannot write the summary to {}", summary);
      return 1;
    }
    f << luoshu::app::summary_json(*cfg, s);
  }
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
  train->add_flag("--quiet", quiet, "Only per-epoch lines");

  auto* bench = app.add_subcommand("bench", "Benchmarks");
  bench->require_subcommand(1);
  auto* mlp = bench->add_subcommand("mlp", "MLP 784-256-256-10 training vs PyTorch and TensorFlow");
  luoshu::bench::mlp_bench_options mo;
  bool no_baselines = false;
  mlp->add_option("--json", mo.json_path, "Write results as JSON to this file");
  mlp->add_option("--steps", mo.steps, "Timed steps per run")->check(CLI::PositiveNumber);
  mlp->add_option("--warmup", mo.warmup, "Warm-up steps per run")->check(CLI::NonNegativeNumber);
  mlp->add_option("--batch", mo.batch, "Batch size")->check(CLI::PositiveNumber);
  mlp->add_option("--threads", mo.threads, "Luoshu thread counts to try (best kept)");
  mlp->add_option("--python", mo.python, "Python with torch and tensorflow (default: .venv-bench)");
  mlp->add_flag("--no-baselines", no_baselines, "Measure Luoshu only");

  app.add_subcommand("info", "Version, threads and devices");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  try {
    if (train->parsed()) return cmd_train(config, sets, summary, threads, quiet);
    if (mlp->parsed()) {
      mo.baselines = !no_baselines;
      return luoshu::bench::run_mlp_bench(mo);
    }
    return cmd_info();
  } catch (const std::exception& e) {
    spdlog::error("{}", e.what());
    return 1;
  }
}
