#include "apps/bench/mlp_bench.hpp"

#include <spdlog/spdlog.h>
#include <sys/wait.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "graph/builder.hpp"
#include "graph/models.hpp"
#include "graph/optimizer.hpp"
#include "ops/kernel.hpp"
#include "ops/random.hpp"

#ifndef LUOSHU_SOURCE_DIR
#define LUOSHU_SOURCE_DIR "."
#endif

namespace luoshu::bench {

namespace {

/// Runs one baseline driver and returns its final JSON line (or an object
/// with "error").
nlohmann::json run_baseline(const mlp_bench_options& o, const std::string& python, const std::string& which) {
  std::string fw = which == "torch" ? "pytorch" : "tensorflow";
  if (!std::filesystem::exists(python))
    return {{"framework", fw}, {"error", "no interpreter at " + python + ": run scripts/setup-bench.sh (or pass --python)"}};
  std::string script = std::string(LUOSHU_SOURCE_DIR) + "/apps/bench/baselines/run_baseline.py";
  return run_json_command("'" + python + "' '" + script + "' " + which + " --steps " + std::to_string(o.steps) +
                              " --warmup " + std::to_string(o.warmup) + " --batch " + std::to_string(o.batch),
                          fw);
}

} // namespace

mlp_result measure_mlp(int64_t batch, int64_t steps, int64_t warmup, int threads, device dev) {
  cpu::set_num_threads(threads);
  graph g;
  expr x = g.placeholder("x", dtype::f32, shape{-1, 784});
  expr y = g.placeholder("y", dtype::i64, shape{-1});
  expr logits = models::mlp(x, {256, 256, 10});
  expr loss = mean(softmax_cross_entropy(logits, y));
  kernel_registry reg;
  cpu::register_kernels(reg);
  cuda::register_kernels(reg);
  variable_store vars(7);
  executor_options eo;
  eo.device = dev;
  executor ex(g, vars, reg, eo);
  optimizer_config cfg;
  cfg.kind = optimizer_config::kind_t::momentum;
  cfg.lr.base = 0.01;
  cfg.momentum = 0.9;
  trainer tr(g, loss, cfg, ex);

  // A few pre-made batches, cycled (as the baselines do).
  constexpr int nb = 8;
  std::vector<tensor> xs, ys;
  for (int b = 0; b < nb; ++b) {
    tensor xt(dtype::f32, shape{batch, 784});
    tensor yt(dtype::i64, shape{batch});
    float* xp = xt.data<float>();
    for (int64_t i = 0; i < xt.numel(); ++i)
      xp[i] = static_cast<float>(ops::uniform01(static_cast<uint64_t>(b), static_cast<uint64_t>(i)) * 2 - 1);
    for (int64_t i = 0; i < batch; ++i)
      yt.data<int64_t>()[i] = static_cast<int64_t>(ops::mix64(static_cast<uint64_t>(b * 100000 + i)) % 10);
    xs.push_back(xt);
    ys.push_back(yt);
  }
  auto step = [&](int64_t i) {
    auto r = tr.step({{x, xs[static_cast<size_t>(i % nb)]}, {y, ys[static_cast<size_t>(i % nb)]}});
    if (!r) throw luoshu_error(r.err().message);
    return r->at(0).item();
  };
  for (int64_t i = 0; i < warmup; ++i) step(i);
  auto t0 = std::chrono::steady_clock::now();
  double last = 0;
  for (int64_t i = 0; i < steps; ++i) last = step(i);
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  mlp_result r;
  r.threads = threads;
  r.samples_per_sec = static_cast<double>(steps * batch) / secs;
  r.step_ms = 1000 * secs / static_cast<double>(steps);
  r.final_loss = last;
  return r;
}

std::string default_python() {
  if (const char* p = std::getenv("LUOSHU_BENCH_PYTHON")) return p;
  return std::string(LUOSHU_SOURCE_DIR) + "/.venv-bench/bin/python";
}

std::vector<nlohmann::json> run_json_lines(const std::string& cmd, std::string& error) {
  std::vector<nlohmann::json> lines;
  FILE* f = popen((cmd + " 2>/dev/null").c_str(), "r");
  if (!f) {
    error = "could not start " + cmd;
    return lines;
  }
  std::string out;
  char buf[4096];
  while (fgets(buf, sizeof buf, f)) out += buf;
  int rc = pclose(f);
  for (size_t s = 0, e; s < out.size(); s = e + 1) {
    e = out.find('\n', s);
    if (e == std::string::npos) e = out.size();
    std::string line = out.substr(s, e - s);
    if (line.empty() || line[0] != '{') continue;
    try {
      lines.push_back(nlohmann::json::parse(line));
    } catch (const std::exception& x) {
      error = std::string("unreadable output line: ") + x.what();
      return {};
    }
  }
  if (lines.empty()) error = "printed no result (exit status " + std::to_string(WEXITSTATUS(rc)) + ")";
  return lines;
}

nlohmann::json run_json_command(const std::string& cmd, const std::string& framework) {
  std::string error;
  auto lines = run_json_lines(cmd, error);
  if (!lines.empty()) return lines.back();
  nlohmann::json err;
  err["framework"] = framework;
  err["error"] = "baseline " + error;
  return err;
}

int run_mlp_bench(const mlp_bench_options& o) {
  std::printf("MLP 784-256-256-10, batch %lld, SGD momentum 0.9, random data; %lld warm-up + %lld timed steps\n",
              static_cast<long long>(o.batch), static_cast<long long>(o.warmup), static_cast<long long>(o.steps));
  nlohmann::json report;
  report["benchmark"] = "mlp";
  report["batch"] = o.batch;
  report["steps"] = o.steps;
  std::vector<int> threads = o.threads;
  if (threads.empty()) {
    cpu::set_num_threads(0);
    threads = {1};
    if (cpu::num_threads() > 1) threads.push_back(cpu::num_threads());
  }
  mlp_result best;
  for (int t : threads) {
    mlp_result r;
    try {
      r = measure_mlp(o.batch, o.steps, o.warmup, t);
    } catch (const luoshu_error& e) {
      spdlog::error("luoshu run failed: {}", e.what());
      return 1;
    }
    std::printf("  luoshu      threads=%d: %10.0f samples/s  (%.3f ms/step)\n", t, r.samples_per_sec, r.step_ms);
    report["luoshu_tried"].push_back({{"threads", t}, {"samples_per_sec", r.samples_per_sec}});
    if (r.samples_per_sec > best.samples_per_sec) best = r;
  }
  report["luoshu"] = {{"samples_per_sec", best.samples_per_sec}, {"threads", best.threads},
                      {"step_ms", best.step_ms}, {"final_loss", best.final_loss}};

  double best_baseline = 0;
  std::string best_name;
  if (o.baselines) {
    std::string python = o.python.empty() ? default_python() : o.python;
    for (const char* which : {"torch", "tf"}) {
      nlohmann::json b = run_baseline(o, python, which);
      std::string fw = b.value("framework", std::string(which));
      if (b.contains("error") || !b.contains("best") || !b["best"].is_object()) {
        if (!b.contains("error")) b["error"] = "baseline reported no best run";
        std::printf("  %-11s unavailable: %s\n", fw.c_str(), b["error"].get<std::string>().c_str());
      } else {
        const auto& bb = b["best"];
        double sps = bb.value("samples_per_sec", 0.0);
        std::printf("  %-11s %s best: %10.0f samples/s  (%s)\n", fw.c_str(), b.value("version", std::string("?")).c_str(), sps,
                    b.value("note", std::string()).c_str());
        for (const auto& t : b["tried"]) std::printf("      tried %s\n", t.dump().c_str());
        if (sps > best_baseline) {
          best_baseline = sps;
          best_name = fw;
        }
      }
      report["baselines"][fw] = b;
    }
  }
  if (best_baseline > 0) {
    double ratio = best.samples_per_sec / best_baseline;
    for (auto& [fw, b] : report["baselines"].items()) {
      if (b.contains("best") && b["best"].is_object()) {
        double r = best.samples_per_sec / b["best"].value("samples_per_sec", 1.0);
        std::printf("  luoshu / %-10s = %.2fx\n", fw.c_str(), r);
        report["ratios"][fw] = r;
      }
    }
    std::printf("luoshu %.0f samples/s (threads=%d) vs fastest baseline %s %.0f: %.2fx (goal >= 1.30x: %s)\n",
                best.samples_per_sec, best.threads, best_name.c_str(), best_baseline, ratio,
                ratio >= 1.3 ? "met" : "not met");
    report["ratio_vs_fastest"] = ratio;
    report["goal_met"] = ratio >= 1.3;
  } else {
    std::printf("luoshu %.0f samples/s (threads=%d); no baseline ran\n", best.samples_per_sec, best.threads);
  }
  if (!o.json_path.empty()) {
    std::ofstream f(o.json_path);
    if (!f) {
      spdlog::error("cannot write {}", o.json_path);
      return 1;
    }
    f << report.dump(2) << "\n";
  }
  return 0;
}

} // namespace luoshu::bench
