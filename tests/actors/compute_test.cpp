// Compute actors of a two-partition program in one process (two nodes, each
// with its own actor system, and a coordinator, all on 127.0.0.1 with
// OS-chosen ports): every tensor over the bulk lane, end of data, and
// failures that name the peer (a malformed lane frame, a peer that stops).
// Also the node's own services: published values, served actors that
// answer every request in fresh four-node jobs, and bad addresses.

#include "actors/compute.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <caf/all.hpp>

#include <cstring>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <span>
#include <thread>

#include "actors/collective.hpp"
#include "actors/coordinator.hpp"
#include "graph/luoshu.hpp"
#include "ops/random.hpp"
#include "transport/bulk/frame.hpp"
#include "transport/bulk/lane.hpp"
#include "transport/bulk/shm_slots.hpp"
#include "transport/codec.hpp"

namespace luoshu::actors {
namespace {

using namespace std::chrono_literals;

struct small_mlp {
  graph g;
  expr loss;
  train_ops ops;
  small_mlp() {
    expr x = g.placeholder("x", dtype::f32, {-1, 12});
    expr y = g.placeholder("y", dtype::i64, {-1});
    expr h = relu(linear(x, g.variable("w1", {12, 16}, init::he_uniform()), g.variable("b1", {16}, init::zeros())));
    expr logits = linear(h, g.variable("w2", {16, 4}, init::he_uniform()), g.variable("b2", {4}, init::zeros()));
    loss = mean(softmax_cross_entropy(logits, y)).named("loss");
    optimizer_config cfg;
    cfg.kind = optimizer_config::kind_t::sgd;
    cfg.lr.base = 0.1;
    ops = minimize(loss, cfg);
  }
};

std::map<std::string, tensor> feeds(int step) {
  tensor x(dtype::f32, {6, 12});
  tensor y(dtype::i64, {6});
  for (int64_t i = 0; i < x.numel(); ++i)
    x.data<float>()[i] =
        static_cast<float>(ops::uniform01(static_cast<uint64_t>(step), static_cast<uint64_t>(i)) * 2 - 1);
  for (int64_t i = 0; i < 6; ++i) y.data<int64_t>()[i] = static_cast<int64_t>(ops::mix64(step * 10 + i) % 4);
  return {{"x", x}, {"y", y}, {"lr", tensor::scalar<float>(0.1f)}};
}

/// Runs f(0) ... f(n - 1) on n threads (each node drives its own program).
void on_threads(int n, const std::function<void(int)>& f) {
  std::vector<std::thread> ts;
  for (int r = 1; r < n; ++r) ts.emplace_back([&f, r] { f(r); });
  f(0);
  for (auto& t : ts) t.join();
}
void both(const std::function<void(int)>& f) { on_threads(2, f); }

/// A coordinator and nodes.size() nodes (worker-0, worker-1, ...) joined to
/// it, each on its own thread; `then(r)` runs on node r's thread once it
/// joined and returns an error, or "" when fine.
void start_nodes(std::unique_ptr<coordinator_service>& coordinator, std::span<std::unique_ptr<node>> nodes,
                 uint64_t bulk_threshold, const std::function<std::string(int)>& then = {}) {
  const int n = static_cast<int>(nodes.size());
  coordinator_config cc;
  cc.token = "test-token";
  cc.world_size = n;
  auto svc = coordinator_service::start(cc, "127.0.0.1", 0);
  if (!svc) throw luoshu_error(svc.err().message);
  coordinator = std::move(*svc);
  std::vector<std::string> errors(static_cast<size_t>(n));
  on_threads(n, [&](int r) {
    node_options o;
    o.coordinator_port = coordinator->port();
    o.token = "test-token";
    o.self.rank = r;
    o.self.name = "worker-" + std::to_string(r);
    o.world_size = n;
    o.bulk_threshold = bulk_threshold;
    o.request_timeout = 5s;
    auto joined = node::join(o);
    if (!joined) return void(errors[static_cast<size_t>(r)] = joined.err().message);
    nodes[static_cast<size_t>(r)] = std::move(*joined);
    if (then) errors[static_cast<size_t>(r)] = then(r);
  });
  for (auto& e : errors)
    if (!e.empty()) throw luoshu_error(e);
}

/// A coordinator, two nodes and their programs (every tensor over the lane).
struct job {
  std::unique_ptr<coordinator_service> coordinator;
  std::unique_ptr<node> nodes[2];
  std::unique_ptr<distributed_program> programs[2];
  small_mlp model;

  job() {
    auto place = place_by_variables(model.g, {{"w1", 0}, {"b1", 0}}, 1);
    auto plan = std::make_shared<const partition_plan>(partition_graph(model.g, place, {model.loss}, model.ops.updates));
    start_nodes(coordinator, nodes, 0, [&](int r) -> std::string {
      auto p = distributed_program::start(*nodes[r], {plan}, 1);
      if (!p) return p.err().message;
      programs[r] = std::move(*p);
      return "";
    });
  }
  ~job() {
    for (auto& p : programs) p.reset();
    for (auto& n : nodes) n.reset();
  }

  /// Runs `step` on both nodes; the loss (from partition 1) or the errors.
  result<float> step(int s, std::chrono::milliseconds timeout = 30s) {
    result<std::vector<tensor>> out[2] = {error{"not run"}, error{"not run"}};
    both([&](int r) { out[r] = programs[r]->run(0, s, feeds(s), true, timeout); });
    if (!out[0] || !out[1])
      return error{(out[0] ? "" : out[0].err().message) + " | " + (out[1] ? "" : out[1].err().message)};
    return static_cast<float>(out[1]->at(0).item());
  }
};

/// A job that ran step 0 (its loss in `loss0`). Two CAF nodes in one process
/// sometimes lose their fresh direct BASP connection right after start-up:
/// the peers' proxies go down with remote_link_unreachable (reported as "is
/// gone"), or a request to a fresh proxy is lost and times out. Separate
/// processes (model_parallel_test.sh) have not shown it, so a job that fails
/// that way while starting is built again, at most 3 times.
std::unique_ptr<job> started_job(float* loss0 = nullptr) {
  for (int attempt = 0;; ++attempt) {
    std::unique_ptr<job> j;
    try {
      j = std::make_unique<job>();
    } catch (const luoshu_error& e) {
      if (attempt == 2 || std::string(e.what()).find("request timed out") == std::string::npos) throw;
      continue;
    }
    auto l = j->step(0, 10s);
    if (l) {
      if (loss0) *loss0 = *l;
      return j;
    }
    if (attempt == 2 || (l.err().message.find("remote_link_unreachable") == std::string::npos &&
                         l.err().message.find("timed out") == std::string::npos))
      throw luoshu_error("step 0: " + l.err().message);
  }
}

TEST(ComputeActor, EveryTensorOverTheLaneMatchesTheLocalRun) {
  float loss0 = 0;
  auto jp = started_job(&loss0);
  job& j = *jp;
  std::vector<variable_store> stores;
  stores.emplace_back(1);
  stores.emplace_back(1);
  kernel_registry kernels;
  cpu::register_kernels(kernels);
  auto place = place_by_variables(j.model.g, {{"w1", 0}, {"b1", 0}}, 1);
  auto plan = partition_graph(j.model.g, place, {j.model.loss}, j.model.ops.updates);
  for (int s = 0; s < 5; ++s) {
    auto l = s == 0 ? result<float>(loss0) : j.step(s);
    ASSERT_TRUE(l) << l.err().message;
    run_options ro;
    ro.step = s;
    auto ref = run_plan_locally(plan, {&stores[0], &stores[1]}, kernels, feeds(s), 1, ro);
    ASSERT_TRUE(ref) << ref.err().message;
    EXPECT_EQ(*l, static_cast<float>(ref->at(0).item())) << "step " << s;
  }
  for (auto& p : j.programs) {
    auto c = p->transfers();
    EXPECT_GT(c.lane_sent, 0u);
    EXPECT_GT(c.lane_received, 0u);
    EXPECT_EQ(c.basp_sent, 0u);
    EXPECT_EQ(c.basp_received, 0u);
  }
}

TEST(ComputeActor, EndOfDataStopsTheActorsAndRefusesLaterSteps) {
  auto jp = started_job();
  job& j = *jp;
  ASSERT_TRUE(j.step(1));
  status st[2];
  auto t0 = std::chrono::steady_clock::now();
  both([&](int r) { st[r] = j.programs[r]->finish(20s); });
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 15s);
  for (auto& s : st) EXPECT_TRUE(s) << s.err().message;
  for (auto& p : j.programs) {
    EXPECT_TRUE(p->finished());
    auto r = p->run(0, 2, feeds(2), true, 5s);
    ASSERT_FALSE(r);
    EXPECT_NE(r.err().message.find("requested after end of data"), std::string::npos) << r.err().message;
    EXPECT_TRUE(p->finish(1s)); // idempotent
  }
}

TEST(ComputeActor, APeerThatEndedItsDataIsNamedNotWaitedFor) {
  auto jp = started_job();
  job& j = *jp;
  status st0;
  std::thread t([&] { st0 = j.programs[0]->finish(20s); });
  // Partition 1 asks for step 1, which partition 0 will never supply.
  auto r = j.programs[1]->run(0, 1, feeds(1), true, 20s);
  ASSERT_FALSE(r);
  EXPECT_NE(r.err().message.find("partition 0 (worker-0) ended its data after 1 steps"), std::string::npos)
      << r.err().message;
  EXPECT_TRUE(j.programs[1]->finish(20s));
  t.join();
  EXPECT_TRUE(st0) << st0.err().message;
}

TEST(ComputeActor, AMalformedLaneFrameFailsNamingThePeer) {
  auto jp = started_job();
  job& j = *jp;
  // A connection that says it is partition 1, then sends a broken header.
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(j.programs[0]->lane_port());
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  transport::tensor_message hello;
  hello.name = "luoshu.lane.hello";
  hello.step = 1;
  auto frame = transport::bulk::encode_prefix(hello, 1);
  std::vector<char> junk(transport::bulk::header_bytes, '\x5a');
  frame.insert(frame.end(), junk.begin(), junk.end());
  ASSERT_EQ(::send(fd, frame.data(), frame.size(), 0), static_cast<ssize_t>(frame.size()));
  result<std::vector<tensor>> r = error{"not run"};
  for (int i = 0; i < 50; ++i) { // the error reaches the actor asynchronously
    std::this_thread::sleep_for(100ms);
    r = j.programs[0]->run(0, 1, feeds(1), true, 5s);
    if (!r) break;
  }
  ::close(fd);
  ASSERT_FALSE(r);
  EXPECT_NE(r.err().message.find("bulk lane from partition 1 (worker-1) failed: bulk lane: bad frame header"),
            std::string::npos)
      << r.err().message;
}

TEST(ComputeActor, APeerThatStopsIsNamed) {
  auto jp = started_job();
  job& j = *jp;
  j.programs[1].reset(); // its actor exits without ending its data
  auto t0 = std::chrono::steady_clock::now();
  auto r = j.programs[0]->run(0, 1, feeds(1), true, 20s);
  ASSERT_FALSE(r);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 15s);
  // Named either by its actor's down message or by its closed lane listener,
  // whichever partition 0 notices first.
  EXPECT_NE(r.err().message.find("partition 1 (worker-1)"), std::string::npos) << r.err().message;
  auto f = j.programs[0]->finish(5s);
  ASSERT_FALSE(f);
  EXPECT_NE(f.err().message.find("partition 1 (worker-1)"), std::string::npos) << f.err().message;
}

/// A coordinator and two joined nodes (no programs).
struct two_nodes {
  std::unique_ptr<coordinator_service> coordinator;
  std::unique_ptr<node> nodes[2];
  two_nodes() { start_nodes(coordinator, nodes, node_options{}.bulk_threshold); }
};

TEST(Node, PublishedValuesAreFetchedWaitedForAndNeverReplaced) {
  two_nodes t;
  result<std::string> early = error{"not run"};
  std::thread waiter([&] { early = t.nodes[0]->fetch("lane/1", 10s); }); // before it is published
  std::this_thread::sleep_for(100ms);
  auto pub = t.nodes[1]->publish("lane/1", "4242 10.0.0.7");
  waiter.join();
  ASSERT_TRUE(pub.ok()) << pub.err().message;
  EXPECT_TRUE(*pub);
  ASSERT_TRUE(early.ok()) << early.err().message;
  EXPECT_EQ(*early, "4242 10.0.0.7");
  auto again = t.nodes[0]->publish("lane/1", "1 elsewhere");
  ASSERT_TRUE(again.ok());
  EXPECT_FALSE(*again) << "a published name is never replaced";
  auto late = t.nodes[1]->fetch("lane/1", 1s);
  ASSERT_TRUE(late.ok()) << late.err().message;
  EXPECT_EQ(*late, "4242 10.0.0.7");
  auto big = t.nodes[0]->publish("big", std::string(5000, 'x'));
  ASSERT_FALSE(big.ok()) << "values over 4 KiB are refused";
  EXPECT_NE(big.err().message.find("must each have 1 to 4096 bytes"), std::string::npos) << big.err().message;
  auto missing = t.nodes[0]->fetch("never", 300ms);
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.err().message.find("fetching 'never'"), std::string::npos) << missing.err().message;
}

TEST(Node, ACollectiveRankWithAMalformedAddressIsAnErrorNamingIt) {
  two_nodes t;
  // Rank 1 of ring "g" as a hostile or broken node would announce it.
  ASSERT_TRUE(*t.nodes[1]->publish("collective/g/1/lane", "not-a-port 127.0.0.1"));
  collective_options o;
  o.group = "g";
  o.connect_timeout = 5s;
  auto c = communicator::create(*t.nodes[0], 0, 2, o);
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.err().message.find("rank 1 published a malformed address 'not-a-port 127.0.0.1'"), std::string::npos)
      << c.err().message;
}

/// An actor that answers x with x + offset. (Spawned with an argument: CAF
/// 0.17 binds a null reference for a function actor without any, which
/// UBSan reports.)
caf::behavior adder(int offset) {
  return {[offset](int x) { return x + offset; }};
}

// Fresh jobs of four nodes, each serving an actor that every other node
// asks at once. Half the jobs use the pattern compute actors use (the lower
// rank connects, the higher one looks up), half only look up (messages go
// through the coordinator). With CAF 0.17's automatic connections on, about
// 3 in 100 lookup-only jobs lost requests (two nodes connected to each other
// at once), and so did jobs where both sides connect.
TEST(Node, ServedActorsAnswerEveryRequestInFreshFourNodeJobs) {
  constexpr int nodes_n = 4, jobs = 200, asks = 3;
  int lost = 0, wrong = 0;
  std::mutex mu;
  for (int job = 0; job < jobs; ++job) {
    std::unique_ptr<coordinator_service> coordinator;
    std::vector<std::unique_ptr<node>> nodes(nodes_n);
    std::vector<caf::actor> echo(nodes_n);
    start_nodes(coordinator, nodes, 0, [&](int r) -> std::string {
      node& n = *nodes[static_cast<size_t>(r)];
      echo[static_cast<size_t>(r)] = n.system().spawn(adder, 1000 * r);
      const auto name = [](int p) { return "echo/" + std::to_string(p); };
      if (status st = n.serve(name(r), echo[static_cast<size_t>(r)]); !st) return st.err().message;
      std::map<int, caf::actor> peers;
      const bool connect = job % 2 == 0;
      for (int p = r + 1; p < nodes_n && connect; ++p) {
        auto a = n.connect(name(p), 10s);
        if (!a) return a.err().message;
        peers[p] = *a;
      }
      if (auto pub = n.publish(name(r) + "/up", "yes"); !pub || !*pub) return "cannot publish up";
      for (int p = 0; p < (connect ? r : nodes_n); ++p) {
        if (p == r) continue;
        auto a = n.fetch(name(p) + "/up", 10s) ? n.lookup(name(p), 10s) : result<caf::actor>(error{"no up"});
        if (!a) return a.err().message;
        peers[p] = *a;
      }
      caf::scoped_actor self{n.system()};
      for (int k = 0; k < asks; ++k)
        for (auto& [p, a] : peers)
          self->request(a, 2s, k).receive(
              [&, p = p](int y) {
                std::lock_guard lock(mu);
                wrong += y != k + 1000 * p;
              },
              [&](caf::error&) {
                std::lock_guard lock(mu);
                ++lost;
              });
      if (status st = n.barrier("asked", 30s); !st) return st.err().message;
      caf::anon_send_exit(echo[static_cast<size_t>(r)], caf::exit_reason::user_shutdown);
      return "";
    });
  }
  EXPECT_EQ(lost, 0) << "requests between served actors went unanswered";
  EXPECT_EQ(wrong, 0) << "an answer came from the wrong actor";
}

TEST(Node, ConnectingToAnUnservedOrBadAddressIsAnErrorNamingIt) {
  two_nodes t;
  auto echo = t.nodes[1]->system().spawn(adder, 0);
  ASSERT_TRUE(t.nodes[1]->serve("echo", echo).ok());
  auto twice = t.nodes[0]->serve("echo", echo);
  ASSERT_FALSE(twice.ok());
  EXPECT_NE(twice.err().message.find("serving 'echo': another actor already has that name"), std::string::npos)
      << twice.err().message;
  auto ok = t.nodes[0]->connect("echo", 5s);
  ASSERT_TRUE(ok.ok()) << ok.err().message;
  {
    caf::scoped_actor self{t.nodes[0]->system()};
    int got = -1;
    self->request(*ok, 5s, 41).receive([&](int y) { got = y; }, [](caf::error&) {});
    EXPECT_EQ(got, 41);
  }
  auto missing = t.nodes[0]->connect("nobody", 300ms);
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.err().message.find("connecting to 'nobody': fetching 'nobody/address'"), std::string::npos)
      << missing.err().message;
  ASSERT_TRUE(*t.nodes[1]->publish("bad/address", "http://x"));
  auto bad = t.nodes[0]->connect("bad", 1s);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.err().message.find("connecting to 'bad': a malformed address 'http://x' (expected PORT HOST)"),
            std::string::npos)
      << bad.err().message;
  // Nothing listens on port 1 of loopback.
  ASSERT_TRUE(*t.nodes[1]->publish("gone/address", "1 127.0.0.1"));
  auto gone = t.nodes[0]->connect("gone", 500ms);
  ASSERT_FALSE(gone.ok());
  EXPECT_NE(gone.err().message.find("cannot connect to 'gone' at 127.0.0.1:1"), std::string::npos)
      << gone.err().message;
  // A port that accepts TCP but never answers CAF's handshake: connect
  // still returns within its timeout.
  const int silent = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(silent, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(silent, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(silent, 8), 0);
  socklen_t len = sizeof addr;
  ASSERT_EQ(::getsockname(silent, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  ASSERT_TRUE(*t.nodes[1]->publish("silent/address", std::to_string(ntohs(addr.sin_port)) + " 127.0.0.1"));
  const auto started = std::chrono::steady_clock::now();
  auto hung = t.nodes[0]->connect("silent", 1s);
  const auto took = std::chrono::steady_clock::now() - started;
  ::close(silent);
  ASSERT_FALSE(hung.ok());
  EXPECT_NE(hung.err().message.find("cannot connect to 'silent' at 127.0.0.1:"), std::string::npos)
      << hung.err().message;
  EXPECT_LT(took, 5s) << "connect must keep to its timeout";
  caf::anon_send_exit(echo, caf::exit_reason::user_shutdown);
}

using bulk_slots_ptr = std::shared_ptr<transport::bulk::shm_slots>;

/// Rank 0 of a 2-rank ring "group" against a rank 1 played by hand over a
/// real lane, which offers `offer` (null: no shared memory) and then sends
/// rank 0's stage-0 chunk of all-reduce #1 over 4 f32 as said to be in
/// `slot`. The error rank 0's all-reduce ends with.
std::string hostile_slot(const std::string& group, bulk_slots_ptr offer, int32_t slot) {
  two_nodes t;
  namespace bulk = transport::bulk;
  using transport::collective_message;
  bulk::receive_handlers h;
  h.on_message = [](bulk::connection_id, std::vector<char>, bulk::pooled_bytes) {}; // what rank 0 sends
  auto lis = bulk::listen(t.nodes[1]->system(), "127.0.0.1", 0, h);
  if (!lis) return "listen: " + lis.err().message;
  const std::string name = "collective/" + group + "/";
  if (!*t.nodes[1]->publish(name + "1/lane", std::to_string(lis->port()) + " 127.0.0.1")) return "publish";
  result<std::unique_ptr<communicator>> c = error{"not run"};
  std::thread rank0([&] {
    collective_options o;
    o.group = group;
    o.connect_timeout = 10s;
    o.timeout = 10s;
    c = communicator::create(*t.nodes[0], 0, 2, o);
  });
  auto addr = t.nodes[1]->fetch(name + "0/lane", 10s);
  std::optional<bulk::sender> lane;
  if (addr) {
    auto l = bulk::connect(t.nodes[1]->system(), "127.0.0.1",
                           static_cast<uint16_t>(std::stoul(addr->substr(0, addr->find(' ')))));
    if (l) lane.emplace(std::move(*l));
  }
  if (lane) {
    collective_message hello;
    hello.kind = collective_message::kind_t::hello;
    hello.hello.group = group;
    hello.hello.rank = 1;
    hello.hello.size = 2;
    if (offer) {
      hello.hello.shm_name = offer->name();
      hello.hello.shm_nonce = offer->nonce();
      hello.hello.shm_slots = offer->slots();
      hello.hello.shm_slot_bytes = offer->slot_bytes();
    }
    (void)lane->send_message(transport::encode(hello), 0, [](char*) {});
  }
  (void)t.nodes[1]->publish(name + "1/shm", "0");
  rank0.join();
  if (!lane) return "no lane to rank 0";
  if (!c) return "create: " + c.err().message;
  collective_message chunk;
  chunk.chunk = {1, transport::collective_kind::allreduce, dtype::f32, reduce_op::sum, 0, 0, 0, 2, 4, slot};
  if (!lane->send_message(transport::encode(chunk), 0, [](char*) {})) return "sending the chunk";
  tensor x(dtype::f32, shape{4});
  x.fill(1);
  status st = (*c)->allreduce(x, x, reduce_op::sum).get();
  c->reset();
  (void)lane->close(1s);
  return st ? "the all-reduce succeeded" : st.err().message;
}

TEST(Node, ALeftNeighbourNamingABadSharedMemorySlotIsAnErrorNamingIt) {
  // A slot it never offered.
  std::string e = hostile_slot("h1", nullptr, 3);
  EXPECT_NE(e.find("rank 1 sent a chunk in shared-memory slot 3 but none of its shared memory is mapped here"),
            std::string::npos)
      << e;
  // Slots it offered (and rank 0 mapped), but one past them, and one it
  // never filled.
  auto slots = transport::bulk::shm_slots::create(4, 4096);
  ASSERT_TRUE(slots.ok()) << slots.err().message;
  std::shared_ptr<transport::bulk::shm_slots> offer = std::move(*slots);
  e = hostile_slot("h2", offer, 9);
  EXPECT_NE(e.find("rank 1 sent a chunk in shared-memory slot 9 of 4"), std::string::npos) << e;
  slots = transport::bulk::shm_slots::create(4, 4096);
  ASSERT_TRUE(slots.ok()) << slots.err().message;
  offer = std::move(*slots);
  e = hostile_slot("h3", offer, 1);
  EXPECT_NE(e.find("rank 1 sent a chunk in shared-memory slot 1 not marked full"), std::string::npos) << e;
}

} // namespace
} // namespace luoshu::actors
