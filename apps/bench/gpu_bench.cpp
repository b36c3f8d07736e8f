#include "apps/bench/gpu_bench.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <thread>
#include <nlohmann/json.hpp>

#include "apps/bench/baseline_run.hpp"
#include "apps/bench/zoo_bench.hpp"
#include "graph/builder.hpp"
#include "graph/executor.hpp"
#include "ops/cuda/runtime.hpp"
#include "ops/kernel.hpp"
#include "ops/random.hpp"

#ifndef LUOSHU_SOURCE_DIR
#define LUOSHU_SOURCE_DIR "."
#endif

namespace luoshu::bench {

namespace {

double tflops(int64_t n, double seconds) { return 2.0 * static_cast<double>(n) * n * n / seconds / 1e12; }

/// Seconds per n x n x n product through the matmul op: the operands live on
/// the device and each run computes a @ b as a target (nothing is copied
/// back; the run ends by waiting for its stream). Best of 3 rounds.
double luoshu_matmul_seconds(int dev, int64_t n, int iters) {
  graph g;
  expr a = g.placeholder("a", dtype::f32, shape{n, n});
  expr b = g.placeholder("b", dtype::f32, shape{n, n});
  expr s = matmul(a, b);
  kernel_registry reg;
  cuda::register_kernels(reg);
  variable_store vars;
  executor_options eo;
  eo.device = device::cuda(dev);
  executor ex(g, vars, reg, eo);
  if (!ex.stream()) { // the executor reports why on run
    auto r = ex.run({}, {}, {s});
    throw luoshu_error(r ? "no stream" : r.err().message);
  }
  auto rand_host = [&](uint64_t seed) {
    tensor t(dtype::f32, shape{n, n});
    float* p = t.data<float>();
    for (int64_t i = 0; i < t.numel(); ++i) p[i] = static_cast<float>(ops::uniform01(seed, static_cast<uint64_t>(i)) - 0.5);
    return t;
  };
  feed_map feeds = {{a, rand_host(1).to(*ex.stream())}, {b, rand_host(2).to(*ex.stream())}};
  auto run = [&] {
    auto r = ex.run(feeds, {}, {s});
    if (!r) throw luoshu_error(r.err().message);
  };
  run();
  run();
  double best = 1e30;
  for (int round = 0; round < 3; ++round) {
    auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < iters; ++i) run();
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / iters);
  }
  return best;
}

/// Seconds per full sum of n f32 values on the device (the 4-byte result
/// comes back each run). Best of 3 rounds of `iters`.
double luoshu_sum_seconds(int dev, int64_t n, int iters) {
  graph g;
  expr a = g.placeholder("a", dtype::f32, shape{n});
  expr s = sum(a);
  kernel_registry reg;
  cuda::register_kernels(reg);
  variable_store vars;
  executor_options eo;
  eo.device = device::cuda(dev);
  executor ex(g, vars, reg, eo);
  if (!ex.stream()) throw luoshu_error(ex.run({}, {s}).err().message);
  tensor h(dtype::f32, shape{n});
  h.fill(0.5);
  feed_map feeds = {{a, h.to(*ex.stream())}};
  double best = 1e30;
  for (int round = 0; round < 4; ++round) { // the first round warms up
    auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < iters; ++i)
      if (auto r = ex.run(feeds, {s}); !r) throw luoshu_error(r.err().message);
    double sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / iters;
    if (round > 0) best = std::min(best, sec);
  }
  return best;
}

int iters_for(int64_t n) { return n <= 1024 ? 200 : n <= 4096 ? 20 : 5; }

} // namespace

int run_gpu_bench(const gpu_bench_options& o) {
  if (cuda::device_count() <= o.device) {
    spdlog::error("luoshu bench gpu: cuda:{} is not available ({})", o.device,
                  cuda::built_with_cuda() ? "this machine has " + std::to_string(cuda::device_count()) + " CUDA device(s)"
                                          : std::string("this build has no CUDA support"));
    return 1;
  }
  std::string gpu = cuda::describe_device(o.device);
  std::printf("GPU benchmark on cuda:%d (%s)\n", o.device, gpu.c_str());
  nlohmann::json report;
  report["benchmark"] = "gpu";
  report["device"] = gpu;
  std::string python = o.python.empty() ? default_python() : o.python;
  bool have_python = o.baselines && std::filesystem::exists(python);
  if (o.baselines && !have_python) std::printf("  (no interpreter at %s: PyTorch baselines skipped)\n", python.c_str());
  std::string script = std::string(LUOSHU_SOURCE_DIR) + "/apps/bench/baselines/gpu_torch.py";
  auto torch = [&](const std::string& args) {
    return run_json_command("'" + python + "' '" + script + "' " + args + " --device " + std::to_string(o.device),
                            "pytorch");
  };

  std::printf("\nf32 matmul n x n x n (no TF32), TFLOP/s:\n  %6s %12s %12s %8s %12s\n", "n", "luoshu", "cublas",
              "ratio", "torch.mm");
  for (int64_t n : o.sizes) {
    nlohmann::json row = {{"n", n}};
    try {
      double ls = luoshu_matmul_seconds(o.device, n, iters_for(n));
      std::string err;
      double cs = cuda::cublas_sgemm_seconds(o.device, n, n, n, iters_for(n), 3, err);
      if (cs < 0) throw luoshu_error("cuBLAS: " + err);
      row["luoshu_tflops"] = tflops(n, ls);
      row["cublas_tflops"] = tflops(n, cs);
      row["luoshu_over_cublas"] = cs / ls;
      double tt = -1;
      if (have_python) {
        auto t = torch("matmul --n " + std::to_string(n) + " --iters " + std::to_string(iters_for(n)));
        row["torch"] = t;
        if (t.contains("tflops")) tt = t["tflops"].get<double>();
      }
      std::printf("  %6lld %12.2f %12.2f %7.2fx %12s\n", static_cast<long long>(n), tflops(n, ls), tflops(n, cs), cs / ls,
                  tt > 0 ? fmt::format("{:.2f}", tt).c_str() : "-");
    } catch (const luoshu_error& e) {
      row["error"] = e.what();
      std::printf("  %6lld failed: %s\n", static_cast<long long>(n), e.what());
    }
    report["matmul"].push_back(row);
  }

  {
    const int64_t n = int64_t{1} << 26;
    nlohmann::json row = {{"elements", n}};
    try {
      double ls = luoshu_sum_seconds(o.device, n, 20);
      row["luoshu_gb_per_s"] = 4.0 * n / ls / 1e9;
      double tg = -1;
      if (have_python) {
        auto t = torch("sum --n " + std::to_string(n) + " --iters 20");
        row["torch"] = t;
        if (t.contains("gb_per_s")) tg = t["gb_per_s"].get<double>();
      }
      std::printf("\nf32 full sum of %lld values (result read back each time), GB/s:\n  luoshu %.1f   torch.sum %s\n",
                  static_cast<long long>(n), 4.0 * n / ls / 1e9, tg > 0 ? fmt::format("{:.1f}", tg).c_str() : "-");
    } catch (const luoshu_error& e) {
      row["error"] = e.what();
      std::printf("\nf32 full sum failed: %s\n", e.what());
    }
    report["sum"] = row;
  }

  std::printf("\nMLP 784-256-256-10 training (SGD momentum), samples/s:\n  %6s %12s %12s %8s\n", "batch", "luoshu",
              "pytorch", "ratio");
  for (int64_t b : o.batches) {
    nlohmann::json row = {{"batch", b}};
    try {
      zoo_result r = measure_zoo_model("mlp", b, o.steps, o.warmup, 1, device::cuda(o.device));
      row["luoshu_samples_per_sec"] = r.samples_per_sec;
      row["luoshu_step_ms"] = r.step_ms;
      double ts = -1;
      if (have_python) {
        auto t = torch("mlp --batch " + std::to_string(b) + " --steps " + std::to_string(o.steps) + " --warmup " +
                       std::to_string(o.warmup));
        row["torch"] = t;
        if (t.contains("samples_per_sec")) ts = t["samples_per_sec"].get<double>();
        if (t.contains("error")) std::printf("  (pytorch: %s)\n", t["error"].get<std::string>().c_str());
      }
      if (ts > 0) row["luoshu_over_torch"] = r.samples_per_sec / ts;
      std::printf("  %6lld %12.0f %12s %8s\n", static_cast<long long>(b), r.samples_per_sec,
                  ts > 0 ? fmt::format("{:.0f}", ts).c_str() : "-",
                  ts > 0 ? fmt::format("{:.2f}x", r.samples_per_sec / ts).c_str() : "-");
    } catch (const luoshu_error& e) {
      row["error"] = e.what();
      std::printf("  %6lld failed: %s\n", static_cast<long long>(b), e.what());
    }
    report["mlp"].push_back(row);
  }
  // Two trainers, each with its own executor and stream (as two compute
  // actors on one GPU), driven from two threads: if their kernels overlap,
  // together they train more samples/s than one alone.
  {
    const int64_t b = 128;
    nlohmann::json row = {{"batch", b}};
    try {
      zoo_result one = measure_zoo_model("mlp", b, o.steps, o.warmup, 1, device::cuda(o.device));
      zoo_result r[2];
      std::string err[2];
      std::thread ts[2];
      for (int i = 0; i < 2; ++i)
        ts[i] = std::thread([&, i] {
          try {
            r[i] = measure_zoo_model("mlp", b, o.steps, o.warmup, 1, device::cuda(o.device));
          } catch (const luoshu_error& e) {
            err[i] = e.what();
          }
        });
      for (auto& t : ts) t.join();
      for (auto& e : err)
        if (!e.empty()) throw luoshu_error(e);
      double both = r[0].samples_per_sec + r[1].samples_per_sec;
      row["one_stream_samples_per_sec"] = one.samples_per_sec;
      row["two_streams_samples_per_sec"] = both;
      std::printf("\nTwo MLP trainers on two streams (batch %lld), samples/s: one alone %.0f, both together %.0f "
                  "(%.2fx)\n",
                  static_cast<long long>(b), one.samples_per_sec, both, both / one.samples_per_sec);
    } catch (const luoshu_error& e) {
      row["error"] = e.what();
      std::printf("\ntwo-stream run failed: %s\n", e.what());
    }
    report["streams"] = row;
  }

  // The zoo's CNN (bench zoo's shapes) on the GPU; Luoshu only for now.
  {
    nlohmann::json row;
    try {
      zoo_result r = measure_zoo_model("cnn", 0, o.steps, o.warmup, 1, device::cuda(o.device));
      row = {{"batch", r.batch}, {"luoshu_samples_per_sec", r.samples_per_sec}, {"luoshu_step_ms", r.step_ms}};
      std::printf("\nCNN (bench zoo's cnn, batch %lld) on the GPU: %.0f samples/s (%.3f ms/step; no baseline yet)\n",
                  static_cast<long long>(r.batch), r.samples_per_sec, r.step_ms);
    } catch (const luoshu_error& e) {
      row["error"] = e.what();
      std::printf("\nCNN on the GPU failed: %s\n", e.what());
    }
    report["cnn"] = row;
  }
  if (!o.json_path.empty())
    if (status st = write_json_report(o.json_path, report); !st) {
      spdlog::error("{}", st.err().message);
      return 1;
    }
  return 0;
}

} // namespace luoshu::bench
