#include "apps/bench/zoo_bench.hpp"

#include <spdlog/spdlog.h>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>

#include "apps/bench/baseline_run.hpp"
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

/// A benchmark model: the same shapes, optimizer and data as the baselines'
/// (apps/bench/baselines/baseline_common.py MODELS).
struct zoo_spec {
  const char* name;
  const char* title;
  int64_t batch, steps, warmup;
};

const zoo_spec specs[] = {
    {"mlp", "MLP 784-256-256-10 (relu), softmax cross-entropy, SGD lr 0.01 momentum 0.9", 128, 300, 30},
    {"cnn",
     "CNN conv5x5x32 (pad 2)-relu-maxpool2-conv5x5x64 (pad 2)-relu-maxpool2-fc1024-relu-fc10 on 1x28x28, "
     "SGD momentum",
     64, 30, 5},
    {"lstm", "LSTM input 64, hidden 128, 32 steps, linear head on the last step, SGD momentum", 32, 200, 20},
    {"dlrm",
     "DLRM-like: 26 fields (one id each) into one 10^6x16 table, 13 dense, MLP 256-128-1, BCE, Adagrad "
     "(sparse rows)",
     1024, 100, 10},
};

const zoo_spec& spec_of(const std::string& name) {
  for (const auto& s : specs)
    if (name == s.name) return s;
  std::string known;
  for (const auto& s : specs) known += std::string(known.empty() ? "" : ", ") + s.name;
  throw luoshu_error("unknown zoo model '" + name + "' (known: " + known + ")");
}

/// A built model: its placeholders, loss and optimizer, and a maker of
/// random batches for the placeholders (in order).
struct zoo_graph {
  std::vector<expr> inputs;
  expr loss;
  optimizer_config opt;
  std::function<std::vector<tensor>(uint64_t seed, int64_t batch)> make_batch;
};

tensor random_f32(shape s, uint64_t seed) {
  tensor t(dtype::f32, s);
  float* p = t.data<float>();
  for (int64_t i = 0; i < t.numel(); ++i)
    p[i] = static_cast<float>(ops::uniform01(seed, static_cast<uint64_t>(i)) * 2 - 1);
  return t;
}

tensor random_ids(shape s, uint64_t seed, int64_t n) {
  tensor t(dtype::i64, s);
  int64_t* p = t.data<int64_t>();
  for (int64_t i = 0; i < t.numel(); ++i)
    p[i] = static_cast<int64_t>(ops::mix64(seed * 0x9E3779B97F4A7C15ull + static_cast<uint64_t>(i)) % static_cast<uint64_t>(n));
  return t;
}

optimizer_config momentum_sgd() {
  optimizer_config c;
  c.kind = optimizer_config::kind_t::momentum;
  c.lr.base = 0.01;
  c.momentum = 0.9;
  return c;
}

expr dense_layer(graph& g, expr x, const std::string& name, int64_t in, int64_t out) {
  return linear(x, g.variable(name + "/w", {in, out}, init::he_uniform()), g.variable(name + "/b", {out}, init::zeros()));
}

zoo_graph build_model(graph& g, const std::string& name) {
  zoo_graph m;
  if (name == "mlp") {
    expr x = g.placeholder("x", dtype::f32, shape{-1, 784});
    expr y = g.placeholder("y", dtype::i64, shape{-1});
    m.inputs = {x, y};
    m.loss = mean(softmax_cross_entropy(models::mlp(x, {256, 256, 10}), y));
    m.opt = momentum_sgd();
    m.make_batch = [](uint64_t seed, int64_t b) {
      return std::vector<tensor>{random_f32(shape{b, 784}, seed), random_ids(shape{b}, seed, 10)};
    };
  } else if (name == "cnn") {
    expr x = g.placeholder("x", dtype::f32, shape{-1, 1, 28, 28});
    expr y = g.placeholder("y", dtype::i64, shape{-1});
    auto conv = [&](expr in, const std::string& n, int64_t out, int64_t channels) {
      expr c = conv2d(in, g.variable(n + "/w", {out, channels, 5, 5}, init::he_uniform()),
                      g.variable(n + "/b", {out}, init::zeros()), {.padding = {2, 2}});
      return max_pool2d(relu(c), {.kernel = {2, 2}});
    };
    expr h = reshape(conv(conv(x, "conv1", 32, 1), "conv2", 64, 32), {-1, 64 * 7 * 7});
    h = relu(dense_layer(g, h, "fc1", 64 * 7 * 7, 1024));
    m.inputs = {x, y};
    m.loss = mean(softmax_cross_entropy(dense_layer(g, h, "fc2", 1024, 10), y));
    m.opt = momentum_sgd();
    m.make_batch = [](uint64_t seed, int64_t b) {
      return std::vector<tensor>{random_f32(shape{b, 1, 28, 28}, seed), random_ids(shape{b}, seed, 10)};
    };
  } else if (name == "lstm") {
    constexpr int64_t steps = 32, features = 64, hidden = 128;
    expr x = g.placeholder("x", dtype::f32, shape{-1, steps, features});
    expr y = g.placeholder("y", dtype::i64, shape{-1});
    expr h = models::last_step(models::lstm_layer(x, hidden, "lstm1/"));
    m.inputs = {x, y};
    m.loss = mean(softmax_cross_entropy(dense_layer(g, h, "fc", hidden, 10), y));
    m.opt = momentum_sgd();
    m.make_batch = [](uint64_t seed, int64_t b) {
      return std::vector<tensor>{random_f32(shape{b, steps, features}, seed), random_ids(shape{b}, seed, 10)};
    };
  } else if (name == "dlrm") {
    constexpr int64_t rows = 1'000'000, dim = 16, fields = 26, dense_n = 13;
    expr dense = g.placeholder("dense", dtype::f32, shape{-1, dense_n});
    expr ids = g.placeholder("ids", dtype::i64, shape{-1, fields});
    expr y = g.placeholder("y", dtype::f32, shape{-1});
    expr table = g.variable("emb", {rows, dim}, init::uniform(-0.05, 0.05));
    expr h = concat({reshape(embedding(table, ids), {-1, fields * dim}), dense}, 1);
    m.inputs = {dense, ids, y};
    m.loss = mean(bce_with_logits(reshape(models::mlp(h, {256, 128, 1}, "mlp/"), shape{-1}), y));
    m.opt.kind = optimizer_config::kind_t::adagrad;
    m.opt.lr.base = 0.01;
    m.make_batch = [](uint64_t seed, int64_t b) {
      tensor yt(dtype::f32, shape{b});
      for (int64_t i = 0; i < b; ++i) yt.data<float>()[i] = static_cast<float>(ops::mix64(seed * 7919 + static_cast<uint64_t>(i)) & 1);
      return std::vector<tensor>{random_f32(shape{b, dense_n}, seed), random_ids(shape{b, fields}, seed, rows), yt};
    };
  } else {
    spec_of(name); // throws naming the known models
  }
  return m;
}

double peak_rss_mb() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_maxrss) / 1024.0; // KiB on Linux
}

std::string self_exe() {
  std::error_code ec;
  auto p = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) throw luoshu_error("cannot find this program's path (/proc/self/exe): " + ec.message());
  return p.string();
}

std::string shell_quoted(const std::string& s) { return "'" + s + "'"; }

/// Prints the worker's JSON line for one model at one thread count.
int run_worker(const zoo_bench_options& o) {
  nlohmann::json out;
  out["model"] = o.worker;
  try {
    const zoo_spec& s = spec_of(o.worker);
    int threads = o.threads.empty() ? 1 : o.threads[0];
    zoo_result r = measure_zoo_model(o.worker, o.batch, o.steps > 0 ? o.steps : s.steps,
                                     o.warmup >= 0 ? o.warmup : s.warmup, threads, device::cpu(), o.profile);
    out["threads"] = r.threads;
    out["batch"] = r.batch;
    out["samples_per_sec"] = r.samples_per_sec;
    out["step_ms"] = r.step_ms;
    out["final_loss"] = r.final_loss;
    out["peak_rss_mb"] = peak_rss_mb();
    if (o.profile) out["profile"] = r.profile;
  } catch (const std::exception& e) {
    out["error"] = e.what();
    std::printf("%s\n", out.dump().c_str());
    return 1;
  }
  std::printf("%s\n", out.dump().c_str());
  return 0;
}

/// Runs one baseline framework's thread grid for a model; its JSON or an
/// object with "error".
nlohmann::json run_baseline(const std::string& python, const std::string& which, const std::string& model, int64_t batch,
                            int64_t steps, int64_t warmup) {
  std::string fw = which == "torch" ? "pytorch" : "tensorflow";
  if (!std::filesystem::exists(python))
    return {{"framework", fw}, {"error", "no interpreter at " + python + ": run scripts/setup-bench.sh (or pass --python)"}};
  std::string script = std::string(LUOSHU_SOURCE_DIR) + "/apps/bench/baselines/run_baseline.py";
  return run_json_command(shell_quoted(python) + " " + shell_quoted(script) + " " + which + " --model " + model + " --steps " +
                              std::to_string(steps) + " --warmup " + std::to_string(warmup) + " --batch " + std::to_string(batch),
                          fw);
}

/// Measures one model: Luoshu at each thread count (each in a fresh worker
/// process), then the baselines; prints the lines and returns the model's report.
nlohmann::json bench_model(const zoo_bench_options& o, const zoo_spec& s, const std::vector<int>& threads, const std::string& exe,
                           const std::string& python) {
  const int64_t batch = o.batch > 0 ? o.batch : s.batch;
  const int64_t steps = o.steps > 0 ? o.steps : s.steps;
  const int64_t warmup = o.warmup >= 0 ? o.warmup : s.warmup;
  std::printf("\n%s: %s\n  batch %lld, %lld warm-up + %lld timed steps, random data\n", s.name, s.title,
              static_cast<long long>(batch), static_cast<long long>(warmup), static_cast<long long>(steps));
  std::fflush(stdout);
  nlohmann::json rep;
  rep["title"] = s.title;
  rep["batch"] = batch;
  rep["steps"] = steps;
  rep["warmup"] = warmup;
  auto worker_cmd = [&](int t, bool profile) {
    return shell_quoted(exe) + " bench zoo --worker " + s.name + " --threads " + std::to_string(t) + " --batch " +
           std::to_string(batch) + " --steps " + std::to_string(steps) + " --warmup " + std::to_string(warmup) +
           (profile ? " --profile" : "");
  };
  nlohmann::json best;
  for (int t : threads) {
    nlohmann::json r = run_json_command(worker_cmd(t, false), "luoshu");
    rep["luoshu_tried"].push_back(r);
    if (r.contains("error")) {
      std::printf("  luoshu      threads=%d: failed: %s\n", t, r["error"].get<std::string>().c_str());
      continue;
    }
    std::printf("  luoshu      threads=%d: %10.0f samples/s  (%.3f ms/step, peak RSS %.0f MB)\n", t,
                r.value("samples_per_sec", 0.0), r.value("step_ms", 0.0), r.value("peak_rss_mb", 0.0));
    if (best.is_null() || r.value("samples_per_sec", 0.0) > best.value("samples_per_sec", 0.0)) best = r;
  }
  std::fflush(stdout);
  if (best.is_null()) {
    rep["error"] = "every Luoshu run failed";
    return rep;
  }
  rep["luoshu"] = best;
  if (o.profile) {
    nlohmann::json p = run_json_command(worker_cmd(best.value("threads", 1), true), "luoshu");
    if (p.contains("profile")) {
      rep["luoshu_profile"] = p["profile"];
      std::printf("  luoshu per-op time (threads=%d, a separate run):\n", best.value("threads", 1));
      std::string table = p["profile"].get<std::string>();
      for (size_t a = 0, e; a < table.size(); a = e + 1) {
        e = table.find('\n', a);
        if (e == std::string::npos) e = table.size();
        std::printf("    %s\n", table.substr(a, e - a).c_str());
      }
    }
  }
  if (!o.baselines) return rep;

  double best_baseline = 0;
  std::string best_name;
  for (const char* which : {"torch", "tf"}) {
    nlohmann::json b = run_baseline(python, which, s.name, batch, steps, warmup);
    std::string fw = b.value("framework", std::string(which));
    if (b.contains("error") || !b.contains("best") || !b["best"].is_object()) {
      if (!b.contains("error")) b["error"] = "baseline reported no best run";
      std::printf("  %-11s unavailable: %s\n", fw.c_str(), b["error"].get<std::string>().c_str());
    } else {
      const auto& bb = b["best"];
      double sps = bb.value("samples_per_sec", 0.0);
      std::printf("  %-11s %s: %10.0f samples/s  (%.3f ms/step, peak RSS %.0f MB; %s)\n", fw.c_str(),
                  b.value("version", std::string("?")).c_str(), sps, bb.value("step_ms", 0.0), bb.value("peak_rss_mb", 0.0),
                  b.value("note", std::string()).c_str());
      if (sps > best_baseline) {
        best_baseline = sps;
        best_name = fw;
      }
    }
    rep["baselines"][fw] = b;
    std::fflush(stdout);
  }
  if (best_baseline > 0) {
    double luoshu_sps = best.value("samples_per_sec", 0.0);
    for (auto& [fw, b] : rep["baselines"].items())
      if (b.contains("best") && b["best"].is_object())
        rep["ratios"][fw] = luoshu_sps / b["best"].value("samples_per_sec", 1.0);
    double ratio = luoshu_sps / best_baseline;
    rep["fastest_baseline"] = best_name;
    rep["ratio_vs_fastest"] = ratio;
    rep["goal_met"] = ratio >= 1.3;
    std::printf("  luoshu / %s (the faster baseline) = %.2fx (goal >= 1.30x: %s)\n", best_name.c_str(), ratio,
                ratio >= 1.3 ? "met" : "not met");
  }
  return rep;
}

} // namespace

const std::vector<std::string>& zoo_model_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> n;
    for (const auto& s : specs) n.push_back(s.name);
    return n;
  }();
  return names;
}

zoo_result measure_zoo_model(const std::string& model, int64_t batch, int64_t steps, int64_t warmup, int threads, device dev,
                             bool profile) {
  const zoo_spec& s = spec_of(model);
  if (batch <= 0) batch = s.batch;
  cpu::set_num_threads(threads);
  graph g;
  zoo_graph m = build_model(g, model);
  kernel_registry reg;
  cpu::register_kernels(reg);
  cuda::register_kernels(reg);
  variable_store vars(7);
  op_profile prof;
  executor_options eo;
  eo.device = dev;
  if (profile) eo.profile = &prof;
  executor ex(g, vars, reg, eo);
  trainer tr(g, m.loss, m.opt, ex);

  // A few pre-made batches, cycled (as the baselines do).
  constexpr int nb = 8;
  std::vector<std::vector<tensor>> batches;
  for (int b = 0; b < nb; ++b) batches.push_back(m.make_batch(static_cast<uint64_t>(b), batch));
  auto step = [&](int64_t i) {
    const auto& bt = batches[static_cast<size_t>(i % nb)];
    feed_map feeds;
    for (size_t k = 0; k < m.inputs.size(); ++k) feeds.emplace_back(m.inputs[k], bt[k]);
    auto r = tr.step(std::move(feeds));
    if (!r) throw luoshu_error(r.err().message);
    return r->at(0).item();
  };
  for (int64_t i = 0; i < warmup; ++i) step(i);
  prof = op_profile{};
  auto t0 = std::chrono::steady_clock::now();
  double last = 0;
  for (int64_t i = 0; i < steps; ++i) last = step(warmup + i);
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  zoo_result r;
  r.threads = threads;
  r.batch = batch;
  r.samples_per_sec = static_cast<double>(steps * batch) / secs;
  r.step_ms = 1000 * secs / static_cast<double>(steps);
  r.final_loss = last;
  if (profile) r.profile = prof.table(steps);
  return r;
}

int run_zoo_bench(const zoo_bench_options& o) {
  if (!o.worker.empty()) return run_worker(o);
  std::vector<std::string> models = o.models.empty() ? zoo_model_names() : o.models;
  try {
    for (const auto& m : models) spec_of(m);
  } catch (const luoshu_error& e) {
    spdlog::error("{}", e.what());
    return 2;
  }
  std::vector<int> threads = o.threads;
  if (threads.empty()) {
    cpu::set_num_threads(0);
    threads = {1};
    if (cpu::num_threads() > 1) threads.push_back(cpu::num_threads());
  }
  std::string exe;
  try {
    exe = self_exe();
  } catch (const luoshu_error& e) {
    spdlog::error("{}", e.what());
    return 1;
  }
  const std::string python = o.python.empty() ? default_python() : o.python;
  std::printf("Training throughput: Luoshu vs PyTorch vs TensorFlow on this machine's CPU, same run. Each "
              "framework runs each thread setting in a fresh process and keeps its fastest.\n");
  nlohmann::json report;
  report["benchmark"] = "zoo";
  bool any_failed = false;
  for (const auto& name : models) {
    nlohmann::json r = bench_model(o, spec_of(name), threads, exe, python);
    any_failed = any_failed || r.contains("error");
    report["models"][name] = r;
  }

  std::printf("\n%-6s %12s %12s %12s %9s %6s   %s\n", "model", "luoshu/s", "pytorch/s", "tensorflow/s", "ratio", "goal",
              "peak RSS MB (luoshu / pytorch / tensorflow)");
  for (const auto& name : models) {
    const auto& r = report["models"][name];
    auto sps = [&](const nlohmann::json& j) { return j.is_object() ? j.value("samples_per_sec", 0.0) : 0.0; };
    auto rss = [&](const nlohmann::json& j) { return j.is_object() ? j.value("peak_rss_mb", 0.0) : 0.0; };
    nlohmann::json none;
    const auto& l = r.contains("luoshu") ? r["luoshu"] : none;
    const nlohmann::json* bl[2] = {&none, &none};
    const char* fws[2] = {"pytorch", "tensorflow"};
    for (int i = 0; i < 2; ++i)
      if (r.contains("baselines") && r["baselines"].contains(fws[i]) && r["baselines"][fws[i]].contains("best"))
        bl[i] = &r["baselines"][fws[i]]["best"];
    char ratio[16] = "-";
    if (r.contains("ratio_vs_fastest")) std::snprintf(ratio, sizeof ratio, "%.2fx", r["ratio_vs_fastest"].get<double>());
    auto num = [](double v) { return v > 0 ? fmt::format("{:.0f}", v) : std::string("-"); };
    std::printf("%-6s %12s %12s %12s %9s %6s   %s / %s / %s\n", name.c_str(), num(sps(l)).c_str(), num(sps(*bl[0])).c_str(),
                num(sps(*bl[1])).c_str(), ratio, r.contains("goal_met") ? (r["goal_met"].get<bool>() ? "met" : "no") : "-",
                num(rss(l)).c_str(), num(rss(*bl[0])).c_str(), num(rss(*bl[1])).c_str());
  }
  if (!o.json_path.empty())
    if (status st = write_json_report(o.json_path, report); !st) {
      spdlog::error("{}", st.err().message);
      return 1;
    }
  return any_failed ? 1 : 0;
}

} // namespace luoshu::bench
