#include "apps/bench/ps_bench.hpp"

#include "apps/bench/baseline_run.hpp"
#include "graph/data/criteo.hpp"

#include <unistd.h>

#include <filesystem>

#include <caf/all.hpp>
#include <caf/io/all.hpp>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <thread>

#include "actors/ps.hpp"
#include "actors/runtime.hpp"
#include "apps/bench/loopback.hpp"
#include "graph/data/criteo.hpp"

namespace luoshu::bench {

namespace {

using namespace std::chrono_literals;
using actors::ps_client;
using actors::ps_table_spec;
// The shared overload (apps/bench/loopback.hpp) next to this file's own.
using bench::to_json;

// Rounds per measurement (the best counts).
constexpr int rounds = 2;
// Dense tables: f32 rows of 256 values (1 KiB), 4 MiB and 16 MiB in all.
constexpr uint32_t dense_width = 256;
constexpr uint64_t dense_bytes[] = {uint64_t{4} << 20, uint64_t{16} << 20};
// Sparse tables: ids drawn uniformly from [0, 10^6), this many per request.
constexpr uint64_t sparse_ids = 1'000'000;
constexpr size_t sparse_batch = 65536;
constexpr uint32_t sparse_dims[] = {16, 64};
// Goals (issue 4): dense push+pull >= 0.5x raw TCP from 1 MiB up; sparse
// pull >= 5 million keys/s from one shard at dimension 16.
constexpr double dense_goal = 0.5;
constexpr double sparse_goal = 5e6;

// --- the peer process: shards on request -----------------------------------------

/// Control lines (stdin): "shards S" replaces the hosted shards with S new
/// ones and answers "shards PORT..." (one published port per shard);
/// "quit" (or EOF) ends. The raw TCP server's port is announced first.
int run_peer() {
  spdlog::set_default_logger(spdlog::stderr_color_mt("peer"));
  actors::runtime_config cfg;
  caf::actor_system sys{cfg};
  raw_server raw;
  std::printf("raw %u\n", unsigned{raw.port()});
  std::fflush(stdout);

  std::vector<std::pair<caf::actor, uint16_t>> shards;
  auto drop = [&] {
    for (auto& [a, port] : shards) {
      (void)caf::io::unpublish(a, port);
      caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
    }
    shards.clear();
  };
  std::string line;
  while (std::getline(std::cin, line) && line != "quit") {
    int n = 0;
    if (std::sscanf(line.c_str(), "shards %d", &n) != 1 || n < 1 || n > 64) {
      spdlog::error("peer: expected 'shards S' (1 to 64) or 'quit', got '{}'", line);
      return 1;
    }
    drop();
    std::string ports;
    for (int i = 0; i < n; ++i) {
      actors::ps_shard_options so;
      so.shard = i;
      so.shards = n;
      so.workers = 1;
      so.consistency.kind = actors::ps_consistency::kind_t::asp;
      auto a = actors::spawn_ps_shard(sys, so);
      auto port = caf::io::publish(a, 0, "127.0.0.1", true);
      if (!port) {
        spdlog::error("peer: cannot publish shard {}: {}", i, sys.render(port.error()));
        return 1;
      }
      shards.emplace_back(a, *port);
      ports += ' ';
      ports += std::to_string(*port);
    }
    std::printf("shards%s\n", ports.c_str());
    std::fflush(stdout);
  }
  drop();
  return 0;
}

// --- measurements --------------------------------------------------------------------

/// Units (bytes or keys) per second: the best of `rounds` rounds.
struct rate {
  double per_sec = 0;
  uint64_t requests = 0; ///< in the best round
  double seconds = 0;    ///< of the best round
  std::vector<double> rounds_per_sec;
};

/// One warm-up call of `op` (it returns the units it moved), then `rounds`
/// rounds of seconds / rounds each (at least 2 calls).
template <class Op>
rate measure(double seconds, Op&& op) {
  op();
  rate best;
  for (int r = 0; r < rounds; ++r) {
    const auto t0 = steady::now();
    uint64_t units = 0, n = 0;
    while (n < 2 || since(t0) < seconds / rounds) {
      units += op();
      ++n;
    }
    const double s = since(t0), x = static_cast<double>(units) / s;
    best.rounds_per_sec.push_back(x);
    if (x > best.per_sec) best.per_sec = x, best.requests = n, best.seconds = s;
  }
  return best;
}

/// The value of a finished ps call, or a bench_failure naming `what`.
template <class T>
T wait(actors::ps_future<T> f, const char* what) {
  auto r = f.get();
  if (!r) throw bench_failure(std::string(what) + ": " + r.err().message);
  return std::move(*r);
}

ps_table_spec table(uint32_t id, bool sparse, uint64_t rows, uint32_t width) {
  ps_table_spec t;
  t.id = id;
  t.name = (sparse ? "sparse" : "dense") + std::to_string(id);
  t.sparse = sparse;
  t.rows = rows;
  t.width = width;
  t.type = dtype::f32;
  t.init = {initializer::kind_t::uniform, -0.01, 0.01};
  t.seed = 1;
  t.optimizer.rule = transport::ps_optimizer::rule_t::sgd;
  t.optimizer.lr = 1e-4;
  return t;
}

tensor filled(int64_t rows, uint32_t width, float v) {
  tensor t(dtype::f32, shape{rows, width});
  std::fill_n(t.data<float>(), t.numel(), v);
  return t;
}

struct shard_result {
  int shards = 0;
  rate dense[2]; ///< bytes/s, per dense_bytes
  rate pull[2];  ///< keys/s, per sparse_dims
  rate push[2];
};

shard_result measure_shards(caf::actor_system& sys, std::vector<caf::actor> handles, double seconds) {
  shard_result res;
  res.shards = static_cast<int>(handles.size());
  ps_client client(sys, std::move(handles), 0);

  for (size_t i = 0; i < 2; ++i) {
    const uint64_t rows = dense_bytes[i] / (dense_width * sizeof(float));
    const auto id = static_cast<uint32_t>(1 + i);
    if (auto st = client.create(table(id, false, rows, dense_width)); !st) throw bench_failure("create: " + st.err().message);
    std::vector<uint64_t> keys(rows);
    for (uint64_t k = 0; k < rows; ++k) keys[k] = k;
    const tensor grads = filled(static_cast<int64_t>(rows), dense_width, 1e-3f);
    res.dense[i] = measure(seconds, [&] {
      const tensor got = wait(client.push_pull(id, keys, grads, 0), "dense push_pull");
      if (got.nbytes() != grads.nbytes()) throw bench_failure("dense push_pull: wrong reply size");
      return 2 * grads.nbytes();
    });
  }

  std::mt19937_64 rng(7);
  std::uniform_int_distribution<uint64_t> pick(0, sparse_ids - 1);
  std::vector<std::vector<uint64_t>> batches(8, std::vector<uint64_t>(sparse_batch));
  for (auto& b : batches)
    for (auto& k : b) k = pick(rng);
  for (size_t i = 0; i < 2; ++i) {
    const auto id = static_cast<uint32_t>(10 + i);
    const uint32_t dim = sparse_dims[i];
    if (auto st = client.create(table(id, true, sparse_ids, dim)); !st) throw bench_failure("create: " + st.err().message);
    // Touch every id once, so that rows made on first touch are not timed.
    std::vector<uint64_t> all(sparse_batch);
    for (uint64_t first = 0; first < sparse_ids; first += sparse_batch) {
      all.resize(std::min<uint64_t>(sparse_batch, sparse_ids - first));
      for (uint64_t k = 0; k < all.size(); ++k) all[k] = first + k;
      (void)wait(client.pull(id, all, 0), "sparse pull");
    }
    size_t next = 0;
    res.pull[i] = measure(seconds, [&] {
      const auto& keys = batches[next++ % batches.size()];
      const tensor got = wait(client.pull(id, keys, 0), "sparse pull");
      if (got.shape()[0] != static_cast<int64_t>(keys.size())) throw bench_failure("sparse pull: wrong row count");
      return keys.size();
    });
    const tensor grads = filled(static_cast<int64_t>(sparse_batch), dim, 1e-3f);
    res.push[i] = measure(seconds, [&] {
      const auto& keys = batches[next++ % batches.size()];
      (void)wait(client.push(id, keys, grads, 0), "sparse push");
      return keys.size();
    });
  }
  return res;
}

/// Raw TCP one way for a `bytes` tensor: a warm-up, then the best of `rounds`.
throughput raw_best(raw_link& raw, uint64_t bytes, double seconds) {
  tensor t(dtype::u8, shape{static_cast<int64_t>(bytes)});
  std::fill_n(t.data<uint8_t>(), bytes, uint8_t{0x5a});
  (void)raw_throughput(raw, t, std::min(0.2, seconds / 4));
  throughput best;
  for (int r = 0; r < rounds; ++r) {
    throughput x = raw_throughput(raw, t, seconds / rounds);
    if (!best.measured || x.gbps > best.gbps) best = x;
  }
  return best;
}

nlohmann::json to_json(const rate& r, double scale) {
  nlohmann::json rs = nlohmann::json::array();
  for (double x : r.rounds_per_sec) rs.push_back(x / scale);
  return {{"value", r.per_sec / scale}, {"requests", r.requests}, {"seconds", r.seconds}, {"rounds", rs}};
}

std::vector<caf::actor> connect_shards(caf::actor_system& sys, peer_process& peer, int n) {
  peer.send_line("shards " + std::to_string(n));
  const std::string line = peer.read_line(60s);
  std::istringstream in(line);
  std::string word;
  in >> word;
  std::vector<caf::actor> handles;
  unsigned port = 0;
  while (in >> port) {
    auto a = caf::io::remote_actor(sys, "127.0.0.1", static_cast<uint16_t>(port));
    if (!a) throw bench_failure("cannot reach a shard at 127.0.0.1:" + std::to_string(port) + ": " + sys.render(a.error()));
    handles.push_back(*a);
  }
  if (word != "shards" || handles.size() != static_cast<size_t>(n))
    throw bench_failure("unexpected line from the peer: '" + line + "'");
  return handles;
}

/// Wide&Deep training samples/s through `luoshu train` (this program), in
/// one process and with --strategy ps (2 servers, 2 workers, BSP), on the
/// same generated Criteo rows; returns {local, ps} or throws.
std::pair<double, double> wide_deep_samples_per_sec(int64_t rows) {
  namespace fs = std::filesystem;
  fs::path dir = fs::temp_directory_path() / ("luoshu-bench-ps-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  struct cleanup {
    fs::path d;
    ~cleanup() {
      std::error_code ec;
      fs::remove_all(d, ec);
    }
  } guard{dir};
  data::criteo_gen_options g;
  g.rows = rows;
  if (auto r = data::write_criteo((dir / "train.tsv").string(), g); !r) throw bench_failure(r.err().message);
  {
    std::ofstream c(dir / "wd.yaml");
    c << "model: {kind: wide_deep, embedding_dim: 16, hidden: [256, 128]}\n"
      << "data: {format: criteo, train: " << (dir / "train.tsv").string() << ", buckets: 1000000}\n"
      << "optimizer: {kind: adam, lr: 0.001}\n"
      << "run: {epochs: 1, batch_size: 512, seed: 1}\n";
  }
  char self[4096];
  ssize_t len = ::readlink("/proc/self/exe", self, sizeof self - 1);
  if (len <= 0) throw bench_failure("cannot find this program's path");
  const std::string exe(self, static_cast<size_t>(len));
  auto run = [&](const std::string& extra, const char* tag) {
    const fs::path summary = dir / (std::string(tag) + ".json");
    std::string cmd = "'" + exe + "' train '" + (dir / "wd.yaml").string() + "' --quiet --summary-json '" +
                      summary.string() + "' " + extra + " > '" + (dir / tag).string() + ".log' 2>&1";
    if (std::system(cmd.c_str()) != 0) {
      std::ifstream log(dir / (std::string(tag) + ".log"));
      std::string all((std::istreambuf_iterator<char>(log)), std::istreambuf_iterator<char>());
      throw bench_failure(std::string("Wide&Deep ") + tag + " run failed: " + all.substr(all.size() > 800 ? all.size() - 800 : 0));
    }
    std::ifstream f(summary);
    return nlohmann::json::parse(f).value("samples_per_sec", 0.0);
  };
  double local = run("", "local");
  double ps = run("--strategy ps --servers 2 --workers 2 --job-timeout 600", "ps");
  return {local, ps};
}


int run_parent(const ps_bench_options& o) {
  if (!(o.seconds > 0 && o.seconds <= 600)) throw usage_error("--seconds must be in (0, 600]");
  if (o.shards.empty()) throw usage_error("--shards needs at least one shard count");
  for (int s : o.shards)
    if (s < 1 || s > 64) throw usage_error("--shards: counts go from 1 to 64, got " + std::to_string(s));
  const auto started = steady::now();

  peer_process peer({"bench", "ps", "--peer"});
  unsigned raw_port = 0;
  if (auto line = peer.read_line(60s); std::sscanf(line.c_str(), "raw %u", &raw_port) != 1)
    throw bench_failure("unexpected line from the peer: '" + line + "'");
  raw_link raw(static_cast<uint16_t>(raw_port));
  actors::runtime_config cfg;
  caf::actor_system sys{cfg};

  std::printf("luoshu bench ps: ps_shard actors in a second process, one ps_client here, loopback, %u cores;\n"
              "each number the best of %d rounds of %.2f s\n",
              std::thread::hardware_concurrency(), rounds, o.seconds / rounds);
  std::printf("  dense: f32 table, rows of %u values, push_pull of every row (GB/s = bytes pushed + pulled / s)\n",
              dense_width);
  std::printf("  sparse: f32 embedding rows, %zu uniform random ids of 10^6 per request (keys/s)\n", sparse_batch);
  std::printf("  raw: raw loopback TCP one way between the same two processes, same run\n\n");

  throughput raw_tcp[2];
  for (size_t i = 0; i < 2; ++i) raw_tcp[i] = raw_best(raw, dense_bytes[i], o.seconds);
  std::printf("raw TCP: %s %.3f GB/s, %s %.3f GB/s\n\n", human(dense_bytes[0]).c_str(), raw_tcp[0].gbps,
              human(dense_bytes[1]).c_str(), raw_tcp[1].gbps);
  const std::string dense_head[2] = {"dense " + human(dense_bytes[0]), "dense " + human(dense_bytes[1])};
  std::printf("%-7s %-19s %-19s %10s %10s %10s %10s\n", "", dense_head[0].c_str(), dense_head[1].c_str(), "pull d16",
              "push d16", "pull d64", "push d64");
  std::printf("%-7s %-19s %-19s %10s %10s %10s %10s\n", "shards", "GB/s (x raw)", "GB/s (x raw)", "Mkeys/s", "Mkeys/s",
              "Mkeys/s", "Mkeys/s");

  std::vector<shard_result> results;
  std::vector<std::string> dense_short;
  std::optional<double> one_shard_pull16;
  for (int s : o.shards) {
    shard_result r = measure_shards(sys, connect_shards(sys, peer, s), o.seconds);
    std::string dense_cells[2];
    for (size_t i = 0; i < 2; ++i) {
      const double gbps = r.dense[i].per_sec / 1e9, x = gbps / raw_tcp[i].gbps;
      if (x < dense_goal) dense_short.push_back(human(dense_bytes[i]) + " at " + std::to_string(s) + " shard(s)");
      dense_cells[i] = cell(gbps, "%.3f") + " (" + cell(x, "%.2f") + ")";
    }
    if (s == 1) one_shard_pull16 = r.pull[0].per_sec;
    std::printf("%-7d %-19s %-19s %10.2f %10.2f %10.2f %10.2f\n", s, dense_cells[0].c_str(), dense_cells[1].c_str(),
                r.pull[0].per_sec / 1e6, r.push[0].per_sec / 1e6, r.pull[1].per_sec / 1e6, r.push[1].per_sec / 1e6);
    std::fflush(stdout);
    results.push_back(std::move(r));
  }

  std::string shorts;
  for (const auto& s : dense_short) shorts += (shorts.empty() ? "" : ", ") + s;
  const bool dense_ok = dense_short.empty();
  std::optional<bool> sparse_ok;
  if (one_shard_pull16) sparse_ok = *one_shard_pull16 >= sparse_goal;
  std::printf("\ngoals: dense push+pull >= %.2fx raw TCP for tensors >= 1 MiB: %s%s\n", dense_goal,
              dense_ok ? "met" : "not met", shorts.empty() ? "" : (" (short: " + shorts + ")").c_str());
  std::printf("       sparse pull >= %.0f million keys/s from one shard at dim 16: %s", sparse_goal / 1e6,
              !sparse_ok ? "not measured (no 1-shard run)" : *sparse_ok ? "met" : "not met");
  if (one_shard_pull16) std::printf(" (%.2f million keys/s)", *one_shard_pull16 / 1e6);
  std::printf("\n");

  raw.in.reset();
  raw.fd.reset();
  const int peer_status = peer.finish(15s);

  std::optional<std::pair<double, double>> wd;
  if (o.wide_deep_rows > 0) {
    wd = wide_deep_samples_per_sec(o.wide_deep_rows);
    std::printf("\nWide&Deep training (emb 16, MLP 256-128, adam, batch 512, %lld generated Criteo rows), samples/s:\n"
                "  1 local worker %.0f; 2 workers + 2 servers (bsp) %.0f (%.2fx)\n",
                static_cast<long long>(o.wide_deep_rows), wd->first, wd->second, wd->second / wd->first);
  }
  std::printf("total %.1f s; peer exited with status %d\n", since(started), peer_status);

  if (!o.json_path.empty()) {
    nlohmann::json rows = nlohmann::json::array();
    for (const auto& r : results) {
      nlohmann::json dense = nlohmann::json::array(), sparse = nlohmann::json::array();
      for (size_t i = 0; i < 2; ++i) {
        nlohmann::json d = to_json(r.dense[i], 1e9);
        d["bytes"] = dense_bytes[i];
        d["vs_raw"] = r.dense[i].per_sec / 1e9 / raw_tcp[i].gbps;
        dense.push_back(std::move(d));
        sparse.push_back({{"dim", sparse_dims[i]}, {"pull_keys_per_sec", to_json(r.pull[i], 1)},
                          {"push_keys_per_sec", to_json(r.push[i], 1)}});
      }
      rows.push_back({{"shards", r.shards}, {"dense_gbps", dense}, {"sparse", sparse}});
    }
    nlohmann::json raw_json = nlohmann::json::array();
    for (size_t i = 0; i < 2; ++i) {
      nlohmann::json x = to_json(raw_tcp[i]);
      x["bytes"] = dense_bytes[i];
      raw_json.push_back(std::move(x));
    }
    nlohmann::json report = {
      {"benchmark", "ps"},
      {"processes", 2},
      {"cores", std::thread::hardware_concurrency()},
      {"seconds_per_measurement", o.seconds},
      {"rounds", rounds},
      {"consistency", "asp"},
      {"dense", {{"dtype", "f32"}, {"width", dense_width}, {"op", "push_pull of every row; GB/s = 2 * table bytes / s"}}},
      {"sparse", {{"dtype", "f32"}, {"ids", sparse_ids}, {"batch", sparse_batch}, {"distribution", "uniform"}}},
      {"raw_tcp", raw_json},
      {"results", rows},
      {"goals",
       {{"dense_vs_raw_min", dense_goal},
        {"dense_met", dense_ok},
        {"dense_short", dense_short},
        {"sparse_pull_one_shard_dim16_min", sparse_goal},
        {"sparse_pull_one_shard_dim16", opt_json(one_shard_pull16)},
        {"sparse_met", opt_json(sparse_ok)}}},
      {"total_seconds", since(started)},
    };
    if (wd)
      report["wide_deep"] = {{"rows", o.wide_deep_rows},
                             {"local_samples_per_sec", wd->first},
                             {"ps_2_servers_2_workers_samples_per_sec", wd->second}};
    if (status st = write_json_report(o.json_path, report); !st) throw bench_failure(st.err().message);
  }
  return peer_status == 0 ? 0 : 1;
}

} // namespace

int run_ps_bench(const ps_bench_options& o) {
  try {
    return o.peer ? run_peer() : run_parent(o);
  } catch (const usage_error& e) {
    spdlog::error("bench ps: {}", e.what());
    return 2;
  } catch (const bench_failure& e) {
    spdlog::error("bench ps: {}", e.what());
    return 1;
  }
}

} // namespace luoshu::bench
