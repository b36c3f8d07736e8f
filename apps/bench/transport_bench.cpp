#include "apps/bench/transport_bench.hpp"

#include <caf/all.hpp>
#include <caf/io/all.hpp>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <deque>
#include <fstream>
#include <iostream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <thread>

#include "actors/runtime.hpp"
#include "apps/bench/baseline_run.hpp"
#include "apps/bench/loopback.hpp"
#include "graph/tensor.hpp"
#include "transport/bulk/frame.hpp"
#include "transport/bulk/lane.hpp"
#include "transport/codec.hpp"

namespace luoshu::bench {

namespace {

namespace bulk = transport::bulk;
using transport::tensor_message;
using transport::wire_bytes;
using namespace std::chrono_literals;
// The shared overloads (apps/bench/loopback.hpp) next to this file's own.
using bench::cell;
using bench::to_json;

// The round-trip tensor: 16 floats.
constexpr int64_t ping_elements = 16;
// Throughput rounds per path and size (the best counts).
constexpr int rounds = 2;

// --- (a) the BASP path: a typed actor in the peer -----------------------------------

using bdata_atom = caf::atom_constant<caf::atom("bdata")>;
using bsync_atom = caf::atom_constant<caf::atom("bsync")>;
using bping_atom = caf::atom_constant<caf::atom("bping")>;

/// The peer's end of the BASP path: decodes every tensor it gets (that is
/// what a receiver of an encoded tensor_message has to do), counts them, and
/// answers pings with the decoded tensor encoded again.
using basp_peer = caf::typed_actor<caf::reacts_to<bdata_atom, wire_bytes>,
                                   caf::replies_to<bsync_atom>::with<uint64_t>,
                                   caf::replies_to<bping_atom, wire_bytes>::with<wire_bytes>>;

// `received` is an argument because CAF 0.17's init_fun_factory
// dereferences a null tuple pointer for function actors spawned without any
// (UBSan reports it).
basp_peer::behavior_type basp_peer_impl(basp_peer::pointer /*self*/, std::shared_ptr<uint64_t> received) {
  return {
    [=](bdata_atom, const wire_bytes& b) {
      auto m = transport::decode_tensor_message(b);
      if (!m) {
        spdlog::error("peer: BASP: {}", m.err().message);
        return;
      }
      ++*received;
    },
    [=](bsync_atom) -> uint64_t { return *received; },
    [=](bping_atom, const wire_bytes& b) -> wire_bytes {
      auto m = transport::decode_tensor_message(b);
      if (!m) return {};
      m->name = "pong";
      return transport::encode(*m);
    },
  };
}

// --- the peer process -----------------------------------------------------------------

int run_peer() {
  // stdout is the control pipe: logs go to stderr.
  spdlog::set_default_logger(spdlog::stderr_color_mt("peer"));
  actors::runtime_config cfg;
  caf::actor_system sys{cfg};

  raw_server raw;

  // The lane: tensors arrive on the I/O thread; acks and pongs go back over
  // the peer's own sender (set before the parent starts sending).
  std::atomic<bulk::sender*> back{nullptr};
  uint64_t lane_count = 0; // only touched on the I/O thread
  bulk::receive_handlers h;
  h.on_tensor = [&](bulk::connection_id, tensor_message m) {
    if (m.name == "data") {
      ++lane_count;
      return;
    }
    bulk::sender* s = back.load();
    if (s == nullptr) return;
    if (m.name == "end") {
      auto r = s->send({"ack", static_cast<int64_t>(lane_count), {}});
      lane_count = 0;
      if (!r) spdlog::error("peer: lane ack: {}", r.err().message);
    } else if (m.name == "ping") {
      m.name = "pong";
      auto r = s->send(m);
      if (!r) spdlog::error("peer: lane pong: {}", r.err().message);
    }
  };
  h.on_error = [](bulk::connection_id, const error& e) { spdlog::error("peer: lane: {}", e.message); };
  auto listener = bulk::listen(sys, "127.0.0.1", 0, std::move(h));
  if (!listener) {
    spdlog::error("peer: {}", listener.err().message);
    return 1;
  }

  auto actor = sys.spawn(basp_peer_impl, std::make_shared<uint64_t>(0));
  auto basp_port = caf::io::publish(actor, 0, "127.0.0.1", true);
  if (!basp_port) {
    spdlog::error("peer: cannot publish the BASP actor: {}", sys.render(basp_port.error()));
    return 1;
  }
  std::printf("ports %u %u %u\n", unsigned{raw.port()}, unsigned{listener->port()}, unsigned{*basp_port});
  std::fflush(stdout);

  std::string line;
  unsigned lane_back_port = 0;
  if (!std::getline(std::cin, line) || std::sscanf(line.c_str(), "lane %u", &lane_back_port) != 1) {
    spdlog::error("peer: expected 'lane PORT', got '{}'", line);
    return 1;
  }
  auto sender = bulk::connect(sys, "127.0.0.1", static_cast<uint16_t>(lane_back_port));
  if (!sender) {
    spdlog::error("peer: {}", sender.err().message);
    return 1;
  }
  back = &*sender;
  std::printf("ready\n");
  std::fflush(stdout);

  // Until "quit", or EOF when the parent is gone.
  while (std::getline(std::cin, line) && line != "quit") {}

  listener->close(); // no callback runs after this
  back = nullptr;
  (void)sender->close(2s);
  caf::anon_send_exit(actor, caf::exit_reason::user_shutdown);
  return 0;
}

// --- the parent: the peer process, measurements -------------------------------------

/// Lane messages coming back from the peer (acks, pongs).
class lane_inbox {
public:
  void push(tensor_message m) {
    std::lock_guard lock(mu_);
    q_.push_back(std::move(m));
    cv_.notify_one();
  }
  void fail(std::string e) {
    std::lock_guard lock(mu_);
    error_ = std::move(e);
    cv_.notify_one();
  }
  tensor_message pop(std::chrono::milliseconds timeout) {
    std::unique_lock lock(mu_);
    if (!cv_.wait_for(lock, timeout, [&] { return !q_.empty() || !error_.empty(); }))
      throw bench_failure("lane: no answer from the peer in time");
    if (!error_.empty()) throw bench_failure("lane: " + error_);
    tensor_message m = std::move(q_.front());
    q_.pop_front();
    return m;
  }

private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<tensor_message> q_;
  std::string error_;
};

struct latency {
  bool measured = false;
  uint64_t round_trips = 0;
  double median_us = 0, mean_us = 0, p99_us = 0;
};

/// Everything the parent talks to.
struct links {
  caf::actor_system* sys = nullptr;
  std::optional<raw_link> raw;
  std::optional<bulk::sender> lane;
  lane_inbox* lane_in = nullptr;
  basp_peer basp;
};

throughput raw_path_throughput(links& l, const tensor& t, double seconds) { return raw_throughput(*l.raw, t, seconds); }

throughput lane_throughput(links& l, const tensor& t, double seconds) {
  const tensor_message data{"data", 0, t};
  return stream_for(
    seconds, t.nbytes(),
    [&] {
      auto r = l.lane->send(data);
      if (!r) throw bench_failure("lane: " + r.err().message);
    },
    [&]() -> uint64_t {
      auto r = l.lane->send({"end", 0, {}});
      if (!r) throw bench_failure("lane: " + r.err().message);
      auto ack = l.lane_in->pop(120s);
      if (ack.name != "ack") throw bench_failure("lane: expected an ack, got '" + ack.name + "'");
      return static_cast<uint64_t>(ack.step);
    });
}

throughput basp_throughput(links& l, const tensor& t, double seconds) {
  // BASP has no flow control of its own: a sync request after every `window`
  // messages, at most two outstanding, bounds the bytes in flight.
  const uint64_t window = std::max<uint64_t>(1, (uint64_t{32} << 20) / std::max<uint64_t>(t.nbytes(), 1));
  const tensor_message data{"data", 0, t};
  try {
    (void)transport::encode(tensor_message{"data", 0, tensor(t.type(), t.shape())});
  } catch (const luoshu_error& e) {
    throughput r;
    r.note = e.what();
    return r;
  }
  caf::scoped_actor self{*l.sys};
  using sync_handle = decltype(self->request(l.basp, caf::infinite, bsync_atom::value));
  std::deque<sync_handle> syncs;
  uint64_t last_count = 0;
  auto await_one = [&] {
    bool ok = false;
    std::string why;
    syncs.front().receive([&](uint64_t c) { ok = true, last_count = c; },
                          [&](caf::error& e) { why = l.sys->render(e); });
    syncs.pop_front();
    if (!ok) throw bench_failure("BASP: sync failed: " + why);
  };
  // The peer counts from its start: measure from where it stands now.
  syncs.push_back(self->request(l.basp, 120s, bsync_atom::value));
  await_one();
  const uint64_t base = last_count;
  uint64_t sent = 0;
  return stream_for(
    seconds, t.nbytes(),
    [&] {
      self->send(l.basp, bdata_atom::value, transport::encode(data));
      if (++sent % window == 0) {
        syncs.push_back(self->request(l.basp, 120s, bsync_atom::value));
        if (syncs.size() > 2) await_one();
      }
    },
    [&]() -> uint64_t {
      syncs.push_back(self->request(l.basp, 120s, bsync_atom::value));
      while (!syncs.empty()) await_one();
      return last_count - base;
    });
}

/// Round trips of a small tensor for `seconds` (at least 100).
template <class RoundTrip>
latency measure_rtt(double seconds, RoundTrip&& round_trip) {
  for (int i = 0; i < 20; ++i) round_trip(); // warm-up
  std::vector<double> us;
  const auto t0 = steady::now();
  while (us.size() < 100 || (since(t0) < seconds && us.size() < 200000)) {
    const auto s = steady::now();
    round_trip();
    us.push_back(std::chrono::duration<double, std::micro>(steady::now() - s).count());
  }
  std::sort(us.begin(), us.end());
  latency r;
  r.measured = true;
  r.round_trips = us.size();
  r.median_us = us[us.size() / 2];
  r.p99_us = us[std::min(us.size() - 1, us.size() * 99 / 100)];
  double sum = 0;
  for (double x : us) sum += x;
  r.mean_us = sum / static_cast<double>(us.size());
  return r;
}

tensor ping_tensor() {
  tensor t(dtype::f32, shape{ping_elements});
  for (int64_t i = 0; i < ping_elements; ++i) t.data<float>()[i] = static_cast<float>(i);
  return t;
}

latency raw_rtt(links& l, double seconds) {
  const tensor t = ping_tensor();
  wire_bytes prefix = bulk::encode_prefix({"ping", 0, t}, 0);
  return measure_rtt(seconds, [&] {
    bulk::set_header_seq(prefix.data(), ++l.raw->seq);
    if (!write_frame(l.raw->fd.get(), prefix, t.raw(), t.nbytes())) throw bench_failure("raw TCP: write failed");
    auto pong = l.raw->in->next();
    if (!pong || pong->name != "pong" || l.raw->in->payload_size() != t.nbytes())
      throw bench_failure("raw TCP: bad pong");
  });
}

latency lane_rtt(links& l, double seconds) {
  const tensor_message ping{"ping", 0, ping_tensor()};
  return measure_rtt(seconds, [&] {
    auto r = l.lane->send(ping);
    if (!r) throw bench_failure("lane: " + r.err().message);
    auto pong = l.lane_in->pop(10s);
    if (pong.name != "pong" || pong.value.nbytes() != ping.value.nbytes()) throw bench_failure("lane: bad pong");
  });
}

latency basp_rtt(links& l, double seconds) {
  const tensor_message ping{"ping", 0, ping_tensor()};
  caf::scoped_actor self{*l.sys};
  return measure_rtt(seconds, [&] {
    bool ok = false;
    std::string why;
    self->request(l.basp, 10s, bping_atom::value, transport::encode(ping))
      .receive(
        [&](wire_bytes& b) {
          auto m = transport::decode_tensor_message(b);
          ok = m && m->name == "pong" && m->value.nbytes() == ping.value.nbytes();
          if (!ok) why = m ? "bad pong" : m.err().message;
        },
        [&](caf::error& e) { why = l.sys->render(e); });
    if (!ok) throw bench_failure("BASP: ping failed: " + why);
  });
}

// --- sizes, formatting ------------------------------------------------------------------

std::optional<double> ratio(const throughput& a, const throughput& raw) {
  if (!a.measured || !raw.measured) return std::nullopt;
  return a.gbps / raw.gbps;
}

/// Latency ratios compare medians.
std::optional<double> ratio(const latency& a, const latency& raw) {
  if (!a.measured || !raw.measured) return std::nullopt;
  return a.median_us / raw.median_us;
}

std::string cell(const throughput& t) {
  if (!t.measured) return "n/a";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3f", t.gbps);
  return buf;
}


nlohmann::json to_json(const latency& l) {
  if (!l.measured) return {{"measured", false}};
  return {{"measured", true}, {"median_us", l.median_us}, {"mean_us", l.mean_us}, {"p99_us", l.p99_us}, {"round_trips", l.round_trips}};
}

int run_parent(const transport_bench_options& o) {
  std::vector<uint64_t> sizes;
  if (o.sizes.empty()) {
    for (uint64_t b = 1024; b <= (uint64_t{256} << 20); b *= 4) sizes.push_back(b);
  } else {
    for (const auto& s : o.sizes) sizes.push_back(parse_size(s));
  }
  if (!(o.seconds > 0 && o.seconds <= 600)) throw usage_error("--seconds must be in (0, 600]");
  for (const auto& p : o.paths)
    if (p != "raw" && p != "lane" && p != "basp") throw usage_error("unknown path '" + p + "' (raw, lane, basp)");
  const auto started = steady::now();

  peer_process peer({"bench", "transport", "--peer"});
  unsigned raw_port = 0, lane_port = 0, basp_port = 0;
  {
    auto line = peer.read_line(60s);
    if (std::sscanf(line.c_str(), "ports %u %u %u", &raw_port, &lane_port, &basp_port) != 3)
      throw bench_failure("unexpected line from the peer: '" + line + "'");
  }

  actors::runtime_config cfg;
  caf::actor_system sys{cfg};
  lane_inbox inbox;
  bulk::receive_handlers h;
  h.on_tensor = [&](bulk::connection_id, tensor_message m) { inbox.push(std::move(m)); };
  h.on_error = [&](bulk::connection_id, const error& e) { inbox.fail(e.message); };
  h.on_close = [&](bulk::connection_id) { inbox.fail("the peer closed its lane (did it exit?)"); };
  auto back = bulk::listen(sys, "127.0.0.1", 0, std::move(h));
  if (!back) throw bench_failure(back.err().message);
  peer.send_line("lane " + std::to_string(back->port()));

  links l;
  l.sys = &sys;
  l.lane_in = &inbox;
  l.raw.emplace(static_cast<uint16_t>(raw_port));
  auto lane = bulk::connect(sys, "127.0.0.1", static_cast<uint16_t>(lane_port));
  if (!lane) throw bench_failure(lane.err().message);
  l.lane.emplace(std::move(*lane));
  auto basp = caf::io::remote_actor<basp_peer>(sys, "127.0.0.1", static_cast<uint16_t>(basp_port));
  if (!basp) throw bench_failure("BASP: cannot reach the peer's actor: " + sys.render(basp.error()));
  l.basp = *basp;
  if (auto line = peer.read_line(60s); line != "ready") throw bench_failure("unexpected line from the peer: '" + line + "'");

  std::printf("luoshu bench transport: 2 processes on loopback, %u cores; per size and path the best of %d\n"
              "interleaved rounds of %.2f s; round trips %.1f s per path\n",
              std::thread::hardware_concurrency(), rounds, o.seconds / rounds, o.seconds);
  std::printf("  BASP = typed CAF actor messages carrying an encoded tensor_message (encode + decode included)\n");
  std::printf("  lane = the bulk tensor lane (transport/bulk); raw = raw TCP, same framing, same processes\n\n");

  // Round trips first, on a quiet machine.
  latency rtt_raw, rtt_lane, rtt_basp;
  if (o.wants("raw")) rtt_raw = raw_rtt(l, o.seconds);
  if (o.wants("lane")) rtt_lane = lane_rtt(l, o.seconds);
  if (o.wants("basp")) rtt_basp = basp_rtt(l, o.seconds);

  std::printf("%-10s %10s %10s %10s %9s %9s\n", "size", "raw GB/s", "lane GB/s", "BASP GB/s", "lane/raw", "BASP/raw");
  nlohmann::json rows = nlohmann::json::array();
  std::vector<std::string> short_sizes;
  for (uint64_t bytes : sizes) {
    tensor t(dtype::u8, shape{static_cast<int64_t>(bytes)});
    std::memset(t.raw(), 0x5a, bytes);
    const double warm = std::min(0.2, o.seconds / 4);
    // Warm-up (page faults, pools, TCP windows), then `rounds` interleaved
    // rounds of seconds / rounds each, so that every path sees the same
    // machine; the best round counts (a neighbour's burst of work hits one
    // round, not the path).
    const char* names[] = {"raw", "lane", "basp"};
    using measure_fn = throughput (*)(links&, const tensor&, double);
    const measure_fn fns[] = {raw_path_throughput, lane_throughput, basp_throughput};
    throughput best[3];
    nlohmann::json round_gbps[3] = {nlohmann::json::array(), nlohmann::json::array(), nlohmann::json::array()};
    for (int p = 0; p < 3; ++p) {
      best[p].note = "not selected (--paths)";
      if (o.wants(names[p])) fns[p](l, t, warm);
    }
    for (int r = 0; r < rounds; ++r)
      for (int p = 0; p < 3; ++p) {
        if (!o.wants(names[p])) continue;
        throughput x = fns[p](l, t, o.seconds / rounds);
        if (!x.measured) {
          best[p] = x;
          continue;
        }
        round_gbps[p].push_back(x.gbps);
        if (!best[p].measured || x.gbps > best[p].gbps) best[p] = x;
      }
    const throughput& raw = best[0];
    const throughput& ln = best[1];
    const throughput& bp = best[2];
    const std::optional<double> lane_ratio = ratio(ln, raw), basp_ratio = ratio(bp, raw);
    if (bytes >= (uint64_t{1} << 20) && lane_ratio && *lane_ratio < 0.7) short_sizes.push_back(human(bytes));
    std::printf("%-10s %10s %10s %10s %9s %9s\n", human(bytes).c_str(), cell(raw).c_str(), cell(ln).c_str(),
                cell(bp).c_str(), cell(lane_ratio, "%.2f").c_str(), cell(basp_ratio, "%.2f").c_str());
    std::fflush(stdout);
    nlohmann::json row = {{"bytes", bytes}, {"size", human(bytes)}, {"raw", to_json(raw)}, {"lane", to_json(ln)},
                          {"basp", to_json(bp)}};
    for (int p = 0; p < 3; ++p)
      if (best[p].measured) row[names[p]]["rounds_gbps"] = round_gbps[p];
    if (lane_ratio) row["lane_vs_raw"] = *lane_ratio;
    if (basp_ratio) row["basp_vs_raw"] = *basp_ratio;
    rows.push_back(std::move(row));
  }

  const std::optional<double> lane_rtt_ratio = ratio(rtt_lane, rtt_raw), basp_rtt_ratio = ratio(rtt_basp, rtt_raw);
  std::printf("\nround trip of a %lld-byte tensor (median / p99 µs):\n", static_cast<long long>(ping_elements * 4));
  auto rtt_line = [](const char* name, const latency& x, std::optional<double> r) {
    if (!x.measured) return;
    std::printf("  %-4s %8.1f / %8.1f", name, x.median_us, x.p99_us);
    if (r) std::printf("   %.2fx raw", *r);
    std::printf("\n");
  };
  rtt_line("raw", rtt_raw, std::nullopt);
  rtt_line("lane", rtt_lane, lane_rtt_ratio);
  rtt_line("BASP", rtt_basp, basp_rtt_ratio);

  auto verdict = [](std::optional<bool> ok) { return !ok ? "not measured" : *ok ? "met" : "NOT met"; };
  std::optional<bool> lane_ok, lane_rtt_ok, basp_rtt_ok;
  const bool any_large = std::any_of(sizes.begin(), sizes.end(), [](uint64_t b) { return b >= (uint64_t{1} << 20); });
  if (o.wants("raw") && o.wants("lane") && any_large) lane_ok = short_sizes.empty();
  if (lane_rtt_ratio) lane_rtt_ok = *lane_rtt_ratio <= 3.0;
  if (basp_rtt_ratio) basp_rtt_ok = *basp_rtt_ratio <= 3.0;
  std::string shorts;
  for (const auto& s : short_sizes) shorts += (shorts.empty() ? "" : ", ") + s;
  std::printf("\ngoals: lane >= 0.70x raw TCP at every size >= 1 MiB: %s%s\n", verdict(lane_ok),
              shorts.empty() ? "" : (" (short at " + shorts + ")").c_str());
  std::printf("       small-message round trip within 3x raw TCP: lane %s, BASP %s\n", verdict(lane_rtt_ok),
              verdict(basp_rtt_ok));

  // Tear down: raw socket and lane first (the peer's readers see EOF), then the peer.
  l.raw.reset();
  (void)l.lane->close(10s);
  const int peer_status = peer.finish(15s);
  back->close();
  std::printf("total %.1f s; peer exited with status %d\n", since(started), peer_status);

  if (!o.json_path.empty()) {
    nlohmann::json report = {
      {"benchmark", "transport"},
      {"processes", 2},
      {"cores", std::thread::hardware_concurrency()},
      {"seconds_per_measurement", o.seconds},
      {"rounds", rounds},
      {"method", "throughput: per size, after a warm-up, `rounds` interleaved rounds of seconds/rounds per path; "
                 "the best round is reported (all in rounds_gbps). RTT: median of ping-pongs over `seconds`."},
      {"paths",
       {{"raw", "raw loopback TCP, lane framing (32-byte header + codec meta), blocking sockets, sendmsg + recv, TCP_NODELAY"},
        {"lane", "bulk tensor lane on caf::io brokers (transport/bulk)"},
        {"basp", "typed CAF actor message carrying encode(tensor_message); peer decodes"}}},
      {"throughput", rows},
      {"rtt",
       {{"payload_bytes", ping_elements * 4},
        {"raw", to_json(rtt_raw)},
        {"lane", to_json(rtt_lane)},
        {"basp", to_json(rtt_basp)},
        {"lane_vs_raw", opt_json(lane_rtt_ratio)},
        {"basp_vs_raw", opt_json(basp_rtt_ratio)}}},
      {"goals",
       {{"large_tensor_path", "lane"},
        {"min_throughput_ratio_from_1MiB", 0.7},
        {"throughput_met", opt_json(lane_ok)},
        {"short_sizes", short_sizes},
        {"max_rtt_ratio", 3.0},
        {"lane_rtt_met", opt_json(lane_rtt_ok)},
        {"basp_rtt_met", opt_json(basp_rtt_ok)}}},
      {"total_seconds", since(started)},
    };
    if (status st = write_json_report(o.json_path, report); !st) throw bench_failure(st.err().message);
  }
  return peer_status == 0 ? 0 : 1;
}

} // namespace

int run_transport_bench(const transport_bench_options& o) {
  try {
    return o.peer ? run_peer() : run_parent(o);
  } catch (const usage_error& e) {
    spdlog::error("bench transport: {}", e.what());
    return 2;
  } catch (const bench_failure& e) {
    spdlog::error("bench transport: {}", e.what());
    return 1;
  }
}

} // namespace luoshu::bench
