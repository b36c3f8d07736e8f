#include "apps/bench/allreduce_bench.hpp"

#include <signal.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <numeric>
#include <optional>

#include "actors/collective.hpp"
#include "actors/node.hpp"
#include "apps/bench/loopback.hpp"
#include "apps/bench/baseline_run.hpp"
#include "apps/luoshu/launch.hpp"

namespace luoshu::bench {

namespace {

namespace fs = std::filesystem;

// Goals (issue 5): at least 1.2x OpenMPI over TCP and at least gloo at every size.
constexpr double mpi_tcp_goal = 1.2;
constexpr double gloo_goal = 1.0;

int default_iters(uint64_t bytes) { return bytes >= (uint64_t{64} << 20) ? 10 : bytes >= (uint64_t{4} << 20) ? 20 : 100; }

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

double busbw_gbps(int ranks, uint64_t bytes, double seconds) {
  return 2.0 * (ranks - 1) / ranks * static_cast<double>(bytes) / seconds / 1e9;
}

using actors::collective_future;

status all_ok(collective_future f, const char* what) {
  status st = f.get();
  if (!st) return error{std::string(what) + ": " + st.err().message};
  return st;
}

/// One rank of the measured job.
int run_worker(const allreduce_bench_options& o, const std::vector<uint64_t>& sizes) {
  auto no = actors::node_options_from_env();
  if (!no) {
    spdlog::error("{}", no.err().message);
    return 1;
  }
  auto joined = actors::node::join(*no);
  if (!joined) {
    spdlog::error("{}", joined.err().message);
    return 1;
  }
  actors::node& node = **joined;
  const int rank = node.rank(), n = node.world_size();
  actors::collective_options co;
  co.group = "bench";
  co.timeout = std::chrono::seconds(30);
  if (o.chunk_bytes) co.chunk_bytes = o.chunk_bytes;
  if (o.shm_slots >= 0) co.shm_slots = static_cast<uint32_t>(o.shm_slots);
  if (o.hd_max_bytes >= 0) co.halving_doubling_max_bytes = static_cast<size_t>(o.hd_max_bytes);
  auto comm = actors::communicator::create(node, rank, n, co);
  if (!comm) {
    spdlog::error("rank {}: {}", rank, comm.err().message);
    return 1;
  }
  actors::communicator& c = **comm;
  tensor tick(dtype::f32, shape{1});
  auto barrier = [&] { return all_ok(c.allreduce(tick, tick, reduce_op::sum), "barrier"); };
  if (co.shm_slots > 0 && n > 1 && !c.shared_memory())
    spdlog::warn("rank {}: shared memory not accepted by rank {}: payloads go over TCP", rank, (rank + 1) % n);
  std::ofstream out;
  if (rank == 0 && !o.out.empty()) out.open(o.out, std::ios::app);
  for (size_t si = 0; si < sizes.size(); ++si) {
    const uint64_t bytes = sizes[si];
    const auto count = static_cast<int64_t>(bytes / 4);
    tensor buf(dtype::f32, shape{count});
    // Correctness once: every rank adds rank + 1.
    buf.fill(rank + 1);
    status st = all_ok(c.allreduce(buf, buf, reduce_op::sum), "check");
    int32_t ok = 1;
    const float want = static_cast<float>(n * (n + 1) / 2);
    if (st)
      for (float v : buf.span<float>())
        if (v != want) {
          ok = 0;
          break;
        }
    buf.fill(rank + 1);
    const int iters = o.iters > 0 ? o.iters : default_iters(bytes);
    for (int i = 0; st && i < o.warmup; ++i) st = all_ok(c.allreduce(buf, buf, reduce_op::sum), "warm-up");
    if (rank == o.die_rank && si == 0) {
      std::fprintf(stderr, "rank %d: killing itself (--die-rank)\n", rank);
      std::fflush(stderr);
      raise(SIGKILL);
    }
    tensor times(dtype::f64, shape{iters});
    const auto before = c.stats();
    uint64_t hd_timed = 0;
    for (int i = 0; st && i < iters; ++i) {
      st = barrier();
      if (!st) break;
      const uint64_t hd_before = c.stats().ops_halving_doubling;
      auto t0 = std::chrono::steady_clock::now();
      st = all_ok(c.allreduce(buf, buf, reduce_op::sum), "allreduce");
      times.data<double>()[i] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      hd_timed += c.stats().ops_halving_doubling - hd_before; // not the barriers
    }
    // The slowest rank's time per iteration, whether every rank was right,
    // and the smallest share of payload bytes any rank sent through shared
    // memory.
    tensor okt = tensor::from<int32_t>(shape{1}, {ok});
    const auto after = c.stats();
    const uint64_t sent = after.bytes_sent - before.bytes_sent, via_shm = after.bytes_sent_shm - before.bytes_sent_shm;
    tensor shm_share =
        tensor::from<double>(shape{1}, {sent ? static_cast<double>(via_shm) / static_cast<double>(sent) : 0.0});
    if (st) st = all_ok(c.allreduce(times, times, reduce_op::max), "gathering times");
    if (st) st = all_ok(c.allreduce(okt, okt, reduce_op::min), "gathering checks");
    if (st) st = all_ok(c.allreduce(shm_share, shm_share, reduce_op::min), "gathering shared-memory shares");
    if (!st) {
      spdlog::error("rank {}: {}", rank, st.err().message);
      return 1;
    }
    if (rank == 0) {
      std::vector<double> t(times.data<double>(), times.data<double>() + iters);
      const double med = median(t);
      nlohmann::json line = {{"impl", "luoshu"},
                             {"ranks", n},
                             {"bytes", bytes},
                             {"median_s", med},
                             {"min_s", *std::min_element(t.begin(), t.end())},
                             {"mean_s", std::accumulate(t.begin(), t.end(), 0.0) / iters},
                             {"busbw_gbps", busbw_gbps(n, bytes, med)},
                             {"correct", okt.data<int32_t>()[0] == 1},
                             {"shm_fraction", shm_share.data<double>()[0]},
                             {"algorithm", hd_timed == static_cast<uint64_t>(iters) ? "halving-doubling" : "ring"},
                             {"iters", iters}};
      if (out.is_open()) out << line.dump() << "\n" << std::flush;
      else std::printf("%s\n", line.dump().c_str());
    }
  }
  return 0;
}

std::string self_path() {
  char self[4096];
  ssize_t len = ::readlink("/proc/self/exe", self, sizeof self - 1);
  if (len <= 0) throw bench_failure("cannot find this program's path to start the job's ranks");
  return std::string(self, static_cast<size_t>(len));
}

std::string join(const std::vector<uint64_t>& v) {
  std::string s;
  for (auto x : v) {
    if (!s.empty()) s += ',';
    s += std::to_string(x);
  }
  return s;
}

/// Luoshu's own numbers for `ranks` ranks: a local job through launch().
std::vector<nlohmann::json> measure_luoshu(const allreduce_bench_options& o, const std::vector<uint64_t>& sizes,
                                           int ranks, int shm_slots, const fs::path& dir, std::string& err) {
  const fs::path out = dir / ("luoshu-" + std::to_string(ranks) + "-" + std::to_string(shm_slots) + ".jsonl");
  fs::remove(out);
  app::launch_plan plan = app::local_plan(ranks);
  plan.command = {self_path(), "bench", "allreduce", "--worker", "--sizes", join(sizes), "--warmup",
                  std::to_string(o.warmup), "--out", out.string()};
  if (o.iters > 0) plan.command.insert(plan.command.end(), {"--iters", std::to_string(o.iters)});
  if (o.chunk_bytes > 0) plan.command.insert(plan.command.end(), {"--chunk-bytes", std::to_string(o.chunk_bytes)});
  plan.command.insert(plan.command.end(), {"--shm-slots", std::to_string(shm_slots)});
  if (o.hd_max_bytes >= 0)
    plan.command.insert(plan.command.end(), {"--halving-doubling-max-bytes", std::to_string(o.hd_max_bytes)});
  plan.timeout_s = 900;
  plan.bind_cores = o.bind_cores;
  if (int rc = app::launch(plan); rc != 0) {
    err = "the job failed (exit status " + std::to_string(rc) + ")";
    return {};
  }
  std::vector<nlohmann::json> lines;
  std::ifstream f(out);
  for (std::string line; std::getline(f, line);)
    if (!line.empty()) lines.push_back(nlohmann::json::parse(line));
  if (lines.size() != sizes.size()) err = "rank 0 reported " + std::to_string(lines.size()) + " sizes";
  return lines;
}

/// Compiles the MPI baseline; empty (with `why`) when MPI is missing.
std::string build_mpi(const fs::path& dir, std::string& why) {
  const std::string src = std::string(LUOSHU_SOURCE_DIR) + "/apps/bench/baselines/mpi_allreduce.c";
  const std::string bin = (dir / "mpi_allreduce").string();
  if (std::system("command -v mpicc >/dev/null 2>&1 && command -v mpirun >/dev/null 2>&1") != 0) {
    why = "mpicc/mpirun not found (scripts/setup-bench.sh installs openmpi-bin and libopenmpi-dev)";
    return "";
  }
  if (std::system(("mpicc -O2 -o '" + bin + "' '" + src + "' >/dev/null 2>&1").c_str()) != 0) {
    why = "mpicc could not compile " + src;
    return "";
  }
  return bin;
}

std::string fmt(std::optional<double> v, const char* f = "%.3f") {
  if (!v) return "-";
  char b[32];
  std::snprintf(b, sizeof b, f, *v);
  return b;
}

/// Overlap of gradient reductions with backward in `luoshu train --strategy
/// allreduce --workers 2`, on and off.
nlohmann::json measure_overlap(const allreduce_bench_options& o, const fs::path& dir) {
  const std::string exe = self_path();
  const fs::path data = dir / "criteo.tsv", cfg = dir / "wd_wide.yaml";
  if (std::system(("'" + exe + "' gen criteo --rows " + std::to_string(o.overlap_rows) + " --out '" + data.string() +
                   "' --seed 5 >/dev/null 2>&1")
                      .c_str()) != 0)
    throw bench_failure("overlap: could not generate Criteo rows");
  {
    std::ofstream f(cfg);
    f << "model: {kind: wide_deep, embedding_dim: 16, hidden: [1024, 1024]}\n"
      << "data: {format: criteo, train: " << data.string() << ", buckets: 100000}\n"
      << "optimizer: {kind: momentum, lr: 0.01}\n"
      << "run: {epochs: 1, batch_size: 512, seed: 1, threads: 1}\n";
  }
  nlohmann::json out = nlohmann::json::array();
  for (bool overlap : {true, false}) {
    const fs::path summary = dir / (overlap ? "on.json" : "off.json");
    std::string cmd = "timeout 600 '" + exe + "' train '" + cfg.string() +
                      "' --strategy allreduce --workers 2 --fusion-bytes 1048576 --quiet --summary-json '" +
                      summary.string() + "'" + (overlap ? "" : " --no-overlap") + " 2>&1";
    FILE* p = popen(cmd.c_str(), "r");
    if (!p) throw bench_failure("overlap: cannot start " + cmd);
    char line[4096];
    double buckets = 0, pass = 0, wait = 0;
    long steps = 0;
    bool seen = false;
    while (std::fgets(line, sizeof line, p))
      if (const char* at = std::strstr(line, "gradient all-reduce:"))
        seen = std::sscanf(at, "gradient all-reduce: %ld steps, %lf buckets/step, forward+backward %lf s, waiting for "
                               "reductions after backward %lf s",
                           &steps, &buckets, &pass, &wait) == 4;
    const int rc = pclose(p);
    if (rc != 0 || !seen) throw bench_failure("overlap: the training job failed (" + cmd + ")");
    std::ifstream sf(summary);
    const double sps = nlohmann::json::parse(sf).value("samples_per_sec", 0.0);
    out.push_back({{"overlap", overlap}, {"steps", steps}, {"buckets_per_step", buckets},
                   {"pass_ms_per_step", 1e3 * pass / std::max(1L, steps)},
                   {"wait_after_backward_ms_per_step", 1e3 * wait / std::max(1L, steps)},
                   {"samples_per_sec", sps}});
  }
  return out;
}

} // namespace

int run_allreduce_bench(const allreduce_bench_options& o) {
  try {
    std::vector<uint64_t> sizes;
    for (const auto& s : o.sizes) {
      const uint64_t b = parse_size(s);
      if (b % 4 != 0) throw usage_error("size " + s + " is not a whole number of f32 elements");
      sizes.push_back(b);
    }
    if (o.warmup < 0 || o.iters < 0) throw usage_error("--warmup and --iters must be >= 0");
    for (int r : o.ranks)
      if (r < 2 || r > 64) throw usage_error("--ranks: each must be in [2, 64]");
    if (o.worker) return run_worker(o, sizes);

    const fs::path dir = fs::temp_directory_path() / ("luoshu-bench-allreduce-" + std::to_string(::getpid()));
    fs::create_directories(dir);
    std::string mpi_why;
    const std::string mpi = o.baselines ? build_mpi(dir, mpi_why) : "";
    const std::string python = o.python.empty() ? default_python() : o.python;
    const std::string gloo_script = std::string(LUOSHU_SOURCE_DIR) + "/apps/bench/baselines/gloo_allreduce.py";
    const bool have_python = o.baselines && fs::exists(python);
    std::string common = " --sizes " + join(sizes) + " --warmup " + std::to_string(o.warmup);
    if (o.iters > 0) common += " --iters " + std::to_string(o.iters);

    std::printf("All-reduce, f32 sum in place, bus bandwidth GB/s (2(n-1)/n x bytes / median time); this machine: %ld cores\n",
                sysconf(_SC_NPROCESSORS_ONLN));
    if (o.baselines && mpi.empty()) std::printf("  (MPI baselines skipped: %s)\n", mpi_why.c_str());
    if (o.baselines && !have_python) std::printf("  (no interpreter at %s: gloo skipped)\n", python.c_str());

    // impl -> ranks -> bytes -> result line of each round
    std::map<std::string, std::map<int, std::map<uint64_t, std::vector<nlohmann::json>>>> rounds;
    std::vector<std::string> problems;
    auto problem = [&](const std::string& p) { // once, however many rounds see it
      if (std::find(problems.begin(), problems.end(), p) == problems.end()) problems.push_back(p);
    };
    auto file = [&](const std::string& impl, int ranks, const std::vector<nlohmann::json>& lines, const std::string& err) {
      if (!err.empty()) problem(impl + " with " + std::to_string(ranks) + " ranks: " + err);
      for (const auto& l : lines) {
        if (!l.value("correct", false))
          problem(impl + " with " + std::to_string(ranks) + " ranks gave a wrong sum at " +
                             std::to_string(l.value("bytes", uint64_t{0})) + " bytes");
        rounds[impl][ranks][l.value("bytes", uint64_t{0})].push_back(l);
      }
    };
    // Luoshu twice: over TCP only (the transport the MPI-over-TCP and gloo
    // goals compare), and with shared memory between its ranks (this host's
    // default, compared with MPI's shared memory).
    const int shm_slots = o.shm_slots < 0 ? static_cast<int>(actors::collective_options{}.shm_slots) : o.shm_slots;
    if (o.rounds < 1) throw usage_error("--rounds must be >= 1");
    for (int round = 0; round < o.rounds; ++round)
    for (int n : o.ranks) {
      std::string err;
      auto ours = measure_luoshu(o, sizes, n, 0, dir, err);
      file("luoshu-tcp", n, ours, err);
      if (shm_slots > 0) {
        err.clear();
        auto ours_shm = measure_luoshu(o, sizes, n, shm_slots, dir, err);
        file("luoshu-shm", n, ours_shm, err);
        for (const auto& l : ours_shm)
          if (l.value("shm_fraction", 0.0) <= 0)
            problem("luoshu-shm with " + std::to_string(n) + " ranks: a rank sent nothing through shared "
                               "memory at " + std::to_string(l.value("bytes", uint64_t{0})) + " bytes");
      }
      if (!mpi.empty()) {
        const std::string mpirun = "timeout 900 mpirun --allow-run-as-root --oversubscribe -np " + std::to_string(n);
        err.clear();
        auto tcp = run_json_lines(mpirun + " --mca btl tcp,self --mca btl_tcp_if_include lo '" + mpi + "'" + common +
                                      " --label mpi-tcp",
                                  err);
        file("mpi-tcp", n, tcp, err);
        err.clear();
        auto shm = run_json_lines(mpirun + " '" + mpi + "'" + common + " --label mpi-shm", err);
        file("mpi-shm", n, shm, err);
        // The floor of a TCP ring here: the same program's own ring on raw
        // loopback sockets, with no copy beyond the kernel's and the sum's
        // (MPI only starts and times the ranks).
        err.clear();
        auto raw = run_json_lines(mpirun + " '" + mpi + "'" + common + " --ring raw-tcp --label raw-tcp", err);
        file("raw-tcp", n, raw, err);
      }
      if (have_python) {
        err.clear();
        auto gloo = run_json_lines("timeout 900 '" + python + "' '" + gloo_script + "' --ranks " + std::to_string(n) +
                                       common,
                                   err);
        file("gloo", n, gloo, err);
      }
    }
    nlohmann::json overlap;
    if (o.overlap_rows > 0) {
      try {
        overlap = measure_overlap(o, dir);
      } catch (const bench_failure& e) {
        problems.push_back(e.what());
      }
    }
    fs::remove_all(dir);

    // Each cell's median round (the upper one of an even count), and how far
    // its rounds spread (fastest / slowest) per implementation.
    std::map<std::string, std::map<int, std::map<uint64_t, nlohmann::json>>> results;
    std::map<std::string, double> spread;
    for (auto& [impl, by_ranks] : rounds)
      for (auto& [n, by_bytes] : by_ranks)
        for (auto& [b, lines] : by_bytes) {
          auto bw = [](const nlohmann::json& l) { return l.value("busbw_gbps", 0.0); };
          std::sort(lines.begin(), lines.end(), [&](const auto& x, const auto& y) { return bw(x) < bw(y); });
          nlohmann::json median = lines[lines.size() / 2];
          median["rounds_busbw_gbps"] = nlohmann::json::array();
          for (const auto& l : lines) median["rounds_busbw_gbps"].push_back(bw(l));
          results[impl][n][b] = median;
          if (bw(lines.front()) > 0) spread[impl] = std::max(spread[impl], bw(lines.back()) / bw(lines.front()));
        }

    auto gbps = [&](const std::string& impl, int n, uint64_t b) -> std::optional<double> {
      auto i = results.find(impl);
      if (i == results.end()) return std::nullopt;
      auto j = i->second.find(n);
      if (j == i->second.end()) return std::nullopt;
      auto k = j->second.find(b);
      if (k == j->second.end()) return std::nullopt;
      return k->second.value("busbw_gbps", 0.0);
    };
    auto ratio = [](std::optional<double> a, std::optional<double> b) -> std::optional<double> {
      if (!a || !b || *b <= 0) return std::nullopt;
      return *a / *b;
    };
    // Luoshu's algorithm in its TCP run: the ring, or halving and doubling ("hd").
    auto algorithm = [&](int n, uint64_t b) -> std::string {
      auto i = results.find("luoshu-tcp");
      if (i == results.end() || !i->second.count(n) || !i->second[n].count(b)) return "-";
      return i->second[n][b].value("algorithm", "") == "halving-doubling" ? "hd" : "ring";
    };
    std::printf("%5s %8s %10s %9s %9s %9s %10s %9s | %8s %8s %8s %8s | %8s %8s | %s\n", "ranks", "size",
                "luoshu-tcp", "mpi-tcp", "raw-tcp", "gloo", "luoshu-shm", "mpi-shm", "tcp/tcp", "tcp/gloo", "tcp/raw",
                "raw/tcp", "shm/shm", "shm/tcp", "algorithm");
    nlohmann::json rows = nlohmann::json::array();
    bool tcp_met = true, gloo_met = true, any_tcp = false, any_gloo = false;
    std::optional<double> shm_lo, shm_hi, raw_lo, raw_hi;
    for (int n : o.ranks)
      for (uint64_t b : sizes) {
        auto l = gbps("luoshu-tcp", n, b), ls = gbps("luoshu-shm", n, b), t = gbps("mpi-tcp", n, b),
             s = gbps("mpi-shm", n, b), g = gbps("gloo", n, b), w = gbps("raw-tcp", n, b);
        auto rt = ratio(l, t), rg = ratio(l, g), rs = ratio(ls, s), rst = ratio(ls, t), rw = ratio(l, w),
             rwt = ratio(w, t);
        if (rt) any_tcp = true, tcp_met = tcp_met && *rt >= mpi_tcp_goal;
        if (rg) any_gloo = true, gloo_met = gloo_met && *rg >= gloo_goal;
        if (rs) shm_lo = std::min(shm_lo.value_or(*rs), *rs), shm_hi = std::max(shm_hi.value_or(*rs), *rs);
        if (rwt) raw_lo = std::min(raw_lo.value_or(*rwt), *rwt), raw_hi = std::max(raw_hi.value_or(*rwt), *rwt);
        std::printf("%5d %8s %10s %9s %9s %9s %10s %9s | %8s %8s %8s %8s | %8s %8s | %s\n", n, human(b).c_str(),
                    fmt(l).c_str(), fmt(t).c_str(), fmt(w).c_str(), fmt(g).c_str(), fmt(ls).c_str(), fmt(s).c_str(),
                    fmt(rt, "%.2f").c_str(), fmt(rg, "%.2f").c_str(), fmt(rw, "%.2f").c_str(),
                    fmt(rwt, "%.2f").c_str(), fmt(rs, "%.2f").c_str(), fmt(rst, "%.2f").c_str(),
                    algorithm(n, b).c_str());
        nlohmann::json row = {{"ranks", n}, {"bytes", b}};
        for (const char* impl : {"luoshu-tcp", "luoshu-shm", "mpi-tcp", "mpi-shm", "gloo", "raw-tcp"}) {
          auto i = results.find(impl);
          if (i != results.end() && i->second.count(n) && i->second[n].count(b)) row[impl] = i->second[n][b];
        }
        auto json_of = [](std::optional<double> v) { return v ? nlohmann::json(*v) : nlohmann::json(); };
        row["ratio_tcp_vs_mpi_tcp"] = json_of(rt);
        row["ratio_tcp_vs_gloo"] = json_of(rg);
        row["ratio_shm_vs_mpi_shm"] = json_of(rs);
        row["ratio_shm_vs_mpi_tcp"] = json_of(rst);
        row["ratio_tcp_vs_raw_tcp"] = json_of(rw);
        row["ratio_raw_tcp_vs_mpi_tcp"] = json_of(rwt);
        rows.push_back(row);
      }
    if (any_tcp)
      std::printf("goal >= %.1fx MPI over TCP at every size (Luoshu over TCP): %s\n", mpi_tcp_goal,
                  tcp_met ? "met" : "NOT met");
    if (any_gloo) std::printf("goal >= gloo at every size (Luoshu over TCP): %s\n", gloo_met ? "met" : "NOT met");
    if (raw_lo)
      std::printf("a ring on raw TCP sockets (no framework, no extra copy) against MPI over TCP: %.2fx to %.2fx\n",
                  *raw_lo, *raw_hi);
    if (shm_lo)
      std::printf("moonshot, shared memory against shared memory (Luoshu / MPI): %.2fx to %.2fx\n", *shm_lo, *shm_hi);
    if (o.rounds > 1) {
      std::printf("medians of %d interleaved rounds; largest spread of a cell (fastest / slowest round):", o.rounds);
      for (const auto& [impl, x] : spread) std::printf(" %s %.2f", impl.c_str(), x);
      std::printf("\n");
    }
    if (!overlap.is_null()) {
      std::printf("\nGradient overlap: Wide&Deep (hidden 1024, 1024), 2 all-reduce workers, batch 512, 1 MiB buckets\n");
      std::printf("%8s %9s %14s %24s %12s\n", "overlap", "buckets", "pass ms/step", "wait after backward ms", "samples/s");
      for (const auto& r : overlap)
        std::printf("%8s %9.1f %14.3f %24.3f %12.0f\n", r.value("overlap", false) ? "on" : "off",
                    r.value("buckets_per_step", 0.0), r.value("pass_ms_per_step", 0.0),
                    r.value("wait_after_backward_ms_per_step", 0.0), r.value("samples_per_sec", 0.0));
    }
    for (const auto& p : problems) std::printf("problem: %s\n", p.c_str());
    if (!o.json_path.empty()) {
      nlohmann::json report = {{"benchmark", "allreduce"},
                               {"cores", sysconf(_SC_NPROCESSORS_ONLN)},
                               {"rounds", o.rounds},
                               {"spread", spread},
                               {"rows", rows},
                               {"problems", problems},
                               {"overlap", overlap},
                               {"goals",
                                {{"vs_mpi_tcp", mpi_tcp_goal},
                                 {"vs_gloo", gloo_goal},
                                 {"mpi_tcp_met", any_tcp ? nlohmann::json(tcp_met) : nlohmann::json()},
                                 {"gloo_met", any_gloo ? nlohmann::json(gloo_met) : nlohmann::json()}}}};
      if (status st = write_json_report(o.json_path, report); !st) throw bench_failure(st.err().message);
    }
    bool luoshu_failed = false;
    for (const auto& p : problems) luoshu_failed = luoshu_failed || p.rfind("luoshu", 0) == 0;
    return luoshu_failed ? 1 : 0;
  } catch (const usage_error& e) {
    spdlog::error("bench allreduce: {}", e.what());
    return 2;
  } catch (const std::exception& e) {
    spdlog::error("bench allreduce: {}", e.what());
    return 1;
  }
}

} // namespace luoshu::bench
