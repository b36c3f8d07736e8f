#include "actors/compute.hpp"

#include <caf/all.hpp>
#include <spdlog/spdlog.h>

#include <cstdlib>
#include <optional>
#include <set>

#include "actors/atoms.hpp"
#include "actors/runtime.hpp"
#include "ops/kernel.hpp"
#include "transport/bulk/lane.hpp"
#include "transport/codec.hpp"

namespace luoshu::actors {

namespace {

/// What the driving thread hands its compute actor for one step (a local
/// message: tensors travel by reference, never serialised).
struct step_request {
  size_t plan = 0;
  int64_t step = 0;
  bool training = true;
  std::map<std::string, tensor> feeds;
};
struct step_result {
  std::vector<tensor> fetches;
};
/// A tensor the lane listener received (on the I/O thread), handed to the
/// compute actor by reference.
struct lane_delivery {
  transport::bulk::connection_id connection = 0;
  transport::tensor_message message;
};

} // namespace
} // namespace luoshu::actors

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(luoshu::actors::step_request)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(luoshu::actors::step_result)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(luoshu::actors::lane_delivery)

namespace luoshu::actors {

namespace bulk = transport::bulk;

transfer_counts transfer_counters::snapshot() const {
  transfer_counts c;
  c.lane_sent = lane_sent.load();
  c.lane_sent_bytes = lane_sent_bytes.load();
  c.lane_received = lane_received.load();
  c.lane_received_bytes = lane_received_bytes.load();
  c.basp_sent = basp_sent.load();
  c.basp_sent_bytes = basp_sent_bytes.load();
  c.basp_received = basp_received.load();
  c.basp_received_bytes = basp_received_bytes.load();
  return c;
}

/// This process's bulk lane listener and the buffers it shares with the
/// compute actor's senders.
struct program_lane {
  std::shared_ptr<bulk::buffer_pool> pool;
  std::optional<bulk::listener> listener;
  std::string host; ///< advertised address
};

namespace {

// Atoms the lane listener uses to reach its compute actor (local only).
using lane_recv_atom = caf::atom_constant<caf::atom("lanerecv")>;
using lane_fail_atom = caf::atom_constant<caf::atom("lanefail")>;

/// The first frame on every lane connection: the sender's partition (as
/// the step), no tensor.
const std::string lane_hello = "luoshu.lane.hello";

/// What a compute actor knows about another partition.
struct peer_info {
  caf::actor actor;
  std::string name;      ///< the node's name, for messages
  std::string lane_host; ///< where its bulk lane listens
  uint16_t lane_port = 0;
};

struct compute_state {
  std::vector<std::shared_ptr<const partition_plan>> plans;
  int partition = 0;
  kernel_registry kernels;
  std::shared_ptr<device_stream> stream; ///< this actor's own stream on its device (null on the CPU)
  std::unique_ptr<variable_store> vars;
  std::vector<std::unique_ptr<partition_runner>> runners; ///< one per plan (after stream: they use it)
  std::map<int, peer_info> peers;                         ///< partition -> its compute actor and lane
  std::string node_name;                                  ///< this process's node, for messages

  int64_t next_step = 0;                                   ///< the step being (or next to be) run
  std::map<int64_t, std::map<std::string, tensor>> values; ///< per step: feeds, received and local values
  bool active = false;                                     ///< feeds for next_step arrived
  step_request current;
  caf::response_promise promise;
  size_t units_done = 0;
  std::vector<tensor> fetches;

  // Back-pressure: a consumer releases a producer's buffers of a step once
  // that step is done; a producer holds its step's completion (and so its
  // driver) while more than max_in_flight steps await release by a peer.
  static constexpr int max_in_flight = 2;
  std::map<int, int> unreleased;                 ///< peer partition -> steps sent, not yet released
  std::map<int64_t, std::set<int>> senders;      ///< step -> partitions whose tensors it received
  std::set<int> step_peers;                      ///< partitions the current step sent to
  trace_recorder* trace = nullptr;               ///< optional timeline
  int64_t wait_since = -1;                       ///< when a unit started waiting for input (trace)
  bool holding = false;                          ///< step done, completion held back
  step_result held;

  // Transport: tensors of at least `threshold` bytes go over the bulk lane.
  uint64_t threshold = uint64_t{1} << 20;
  bulk::lane_options lane_opts;                           ///< shares the program's buffer pool
  std::string lane_host;                                  ///< our listener, as advertised
  uint16_t lane_port = 0;
  std::map<int, std::unique_ptr<bulk::sender>> lanes;     ///< partition -> connection to its lane (lazy)
  std::map<bulk::connection_id, int> lane_peers;          ///< incoming connection -> sending partition
  transfer_counters* counters = nullptr;

  // End of data and failures.
  std::string broken;                 ///< a failure that ends the program (a peer gone, a lane error)
  bool ending = false;                ///< the driver called finish()
  bool end_sent = false;              ///< peers were told how many steps we ran
  caf::response_promise finish_promise;
  std::map<int, int64_t> ended;       ///< peer -> the number of steps it ran (its end of data)
  std::set<int> gone;                 ///< peers whose actor terminated before ending its data
  static inline const char* name = "luoshu.compute";
};

using compute_actor = caf::stateful_actor<compute_state>;

/// The trace track of the compute actor's own events.
constexpr int compute_track = 1000;

void progress(compute_actor* self);

std::string peer_name(const compute_state& s, int p) {
  auto it = s.peers.find(p);
  std::string out = "partition " + std::to_string(p);
  if (it != s.peers.end() && !it->second.name.empty()) out += " (" + it->second.name + ")";
  return out;
}

/// Fails the step in flight (or held) with `why`; with `sticky`, every later
/// step and finish() fail with it too.
void fail_step(compute_actor* self, const std::string& why, bool sticky) {
  auto& s = self->state;
  if (sticky && s.broken.empty()) s.broken = why;
  if (s.active || s.holding) {
    s.promise.deliver(caf::make_error(caf::sec::runtime_error, why));
    s.active = false;
    s.holding = false;
  }
}

/// After finish(): once no step is in flight, tells every peer how many
/// steps ran; once every peer ended its data too (or is gone), answers the
/// driver and stops.
void try_finish(compute_actor* self) {
  auto& s = self->state;
  if (!s.ending || s.active) return;
  const int world = s.plans.front()->partitions;
  if (!s.end_sent) {
    s.end_sent = true;
    for (auto& [p, peer] : s.peers) self->send(peer.actor, end_atom::value, s.partition, s.next_step);
  }
  for (int p = 0; p < world; ++p)
    if (p != s.partition && !s.ended.count(p) && !s.gone.count(p)) return;
  if (s.holding) { // every peer ended, so no release is coming: the step did finish
    s.holding = false;
    s.promise.deliver(std::move(s.held));
  }
  if (!s.broken.empty()) s.finish_promise.deliver(caf::make_error(caf::sec::runtime_error, s.broken));
  else s.finish_promise.deliver(true);
  s.lanes.clear(); // closes our connections after what is queued
  self->quit();
}

/// Sends `m` to partition `p` over the bulk lane, connecting on first use.
/// The sender copies the tensor's bytes once and queues them; while its
/// queue is full (64 MiB unwritten) send() blocks this actor's thread, up to
/// the lane's send_timeout, then fails.
// TODO(perf): connect and back-pressure without blocking a scheduler thread.
status lane_send(compute_actor* self, int p, const transport::tensor_message& m) {
  auto& s = self->state;
  auto it = s.lanes.find(p);
  if (it == s.lanes.end()) {
    auto pi = s.peers.find(p);
    if (pi == s.peers.end() || pi->second.lane_port == 0) return error{"its lane address is unknown"};
    auto c = bulk::connect(self->system(), pi->second.lane_host, pi->second.lane_port, s.lane_opts);
    if (!c) return c.err();
    auto snd = std::make_unique<bulk::sender>(std::move(*c));
    transport::tensor_message hello;
    hello.name = lane_hello;
    hello.step = s.partition;
    if (auto r = snd->send(hello); !r) return r.err();
    it = s.lanes.emplace(p, std::move(snd)).first;
  }
  if (auto r = it->second->send(m); !r) return r.err();
  return status::success();
}

/// Files a tensor from partition `from` under (step, key), however it came.
void file_tensor(compute_actor* self, int from, transport::tensor_message&& m, size_t bytes, bool lane) {
  auto& s = self->state;
  if (m.step < s.next_step) {
    spdlog::error("compute {}: tensor '{}' of finished step {} ignored", s.partition, m.name, m.step);
    return;
  }
  if (s.trace)
    s.trace->instant("recv " + m.name, "message", compute_track,
                     "\"bytes\":" + std::to_string(bytes) + ",\"step\":" + std::to_string(m.step) +
                         ",\"lane\":" + (lane ? "true" : "false"));
  const int64_t step = m.step;
  s.values[step][m.name] = std::move(m.value);
  if (from >= 0) s.senders[step].insert(from);
  if (step == s.next_step) progress(self);
}

/// Hands a finished step to the driver once no peer has more than
/// max_in_flight of our steps still unreleased.
void finish_if_allowed(compute_actor* self) {
  auto& s = self->state;
  if (!s.holding) return;
  for (auto& [p, n] : s.unreleased)
    if (n > compute_state::max_in_flight) return;
  s.holding = false;
  s.promise.deliver(std::move(s.held));
}

/// Runs every unit of the current step whose inputs are present; finishes
/// the step when all ran.
void progress(compute_actor* self) {
  auto& s = self->state;
  while (s.active) {
    const partition_plan& plan = *s.plans[s.current.plan];
    partition_runner& runner = *s.runners[s.current.plan];
    auto& vals = s.values[s.next_step];
    const auto& units = runner.units();
    while (s.units_done < units.size()) {
      int ui = units[s.units_done];
      if (!runner.ready(ui, vals)) { // wait for a peer's tensor
        if (s.trace && s.wait_since < 0) s.wait_since = trace_recorder::now_us();
        return;
      }
      if (s.trace && s.wait_since >= 0) {
        s.trace->span("wait for inputs of unit " + std::to_string(ui), "wait", s.wait_since,
                      trace_recorder::now_us() - s.wait_since, compute_track);
        s.wait_since = -1;
      }
      int64_t unit_t0 = s.trace ? trace_recorder::now_us() : 0;
      run_options ro;
      ro.step = s.next_step;
      ro.training = s.current.training;
      auto r = runner.run(ui, vals, ro);
      if (!r) {
        s.promise.deliver(caf::make_error(caf::sec::runtime_error,
                                          "partition " + std::to_string(s.partition) + ": " + r.err().message));
        s.active = false;
        return;
      }
      if (s.trace)
        s.trace->span("unit " + std::to_string(ui) + " step " + std::to_string(s.next_step), "unit", unit_t0,
                      trace_recorder::now_us() - unit_t0, compute_track);
      for (auto& [index, t] : r->fetches)
        if (index < s.fetches.size()) s.fetches[index] = t;
      const unit& u = plan.units[static_cast<size_t>(ui)];
      std::set<int> sent_to;
      for (size_t k = 0; k < r->sends.size(); ++k) {
        const auto& [key, t] = r->sends[k];
        for (int to : u.sends[k].to) {
          int p = plan.units[static_cast<size_t>(to)].partition;
          if (p == s.partition) {
            vals[key] = t; // same process: hand over the reference
          } else {
            sent_to.insert(p);
            transport::tensor_message m;
            m.name = key;
            m.step = s.next_step;
            m.value = t;
            const uint64_t nbytes = t.defined() ? t.nbytes() : 0;
            const bool lane = nbytes >= s.threshold && nbytes <= s.lane_opts.max_payload_bytes &&
                              (!t.defined() || t.device().kind == device::kind_t::cpu);
            size_t wire = 0;
            if (lane) {
              if (status st = lane_send(self, p, m); !st) {
                fail_step(self,
                          "partition " + std::to_string(s.partition) + ": sending '" + key + "' to " +
                              peer_name(s, p) + " over the bulk lane: " + st.err().message,
                          true);
                return;
              }
              wire = nbytes;
              ++s.counters->lane_sent;
              s.counters->lane_sent_bytes += nbytes;
            } else {
              auto bytes = transport::encode(m);
              wire = bytes.size();
              ++s.counters->basp_sent;
              s.counters->basp_sent_bytes += wire;
              self->send(s.peers.at(p).actor, tensor_atom::value, std::move(bytes));
            }
            if (s.trace)
              s.trace->instant("send " + key + " to partition " + std::to_string(p), "message", compute_track,
                               "\"bytes\":" + std::to_string(wire) + ",\"step\":" + std::to_string(s.next_step) +
                                   ",\"lane\":" + (lane ? "true" : "false"));
          }
        }
      }
      for (int p : sent_to) s.step_peers.insert(p);
      ++s.units_done;
    }
    // The step is done: release the buffers our peers sent for it, count
    // what we sent, and hand the result over unless too much is in flight.
    for (int p : s.senders[s.next_step])
      if (auto it = s.peers.find(p); it != s.peers.end()) self->send(it->second.actor, release_atom::value, s.next_step);
    s.senders.erase(s.next_step);
    for (int p : s.step_peers) ++s.unreleased[p];
    s.step_peers.clear();
    s.held.fetches = std::move(s.fetches);
    s.values.erase(s.next_step);
    ++s.next_step;
    s.active = false;
    s.holding = true;
    finish_if_allowed(self);
    try_finish(self);
  }
}

/// What a compute actor is started with besides its plans.
struct compute_setup {
  int partition = 0;
  uint64_t seed = 0;
  trace_recorder* trace = nullptr;
  transfer_counters* counters = nullptr;
  std::string node_name;
  uint64_t threshold = 0;
  std::shared_ptr<bulk::buffer_pool> pool;
  std::shared_ptr<device_stream> stream; ///< where the partition's kernels run (null: CPU)
};

caf::behavior compute(compute_actor* self, std::vector<std::shared_ptr<const partition_plan>> plans,
                      compute_setup setup) {
  auto& s = self->state;
  s.plans = std::move(plans);
  const int partition = setup.partition;
  trace_recorder* trace = setup.trace;
  const uint64_t seed = setup.seed;
  s.partition = partition;
  s.trace = trace;
  s.counters = setup.counters;
  s.node_name = setup.node_name;
  s.threshold = setup.threshold;
  s.lane_opts.pool = setup.pool;
  self->set_down_handler([self](caf::down_msg& dm) {
    auto& s = self->state;
    for (auto& [p, peer] : s.peers) {
      if (peer.actor.address() != dm.source || s.ended.count(p)) continue;
      s.gone.insert(p);
      fail_step(self,
                "partition " + std::to_string(s.partition) + ": " + peer_name(s, p) +
                    " is gone before its end of data (" + self->system().render(dm.reason) + ")",
                true);
      try_finish(self);
      return;
    }
  });
  cpu::register_kernels(s.kernels);
  cuda::register_kernels(s.kernels);
  s.stream = setup.stream;
  s.vars = std::make_unique<variable_store>(seed);
  if (trace) trace->name_track(compute_track, "compute actor " + std::to_string(partition));
  for (auto& p : s.plans)
    s.runners.push_back(std::make_unique<partition_runner>(*p, partition, *s.vars, s.kernels, trace, s.stream.get()));
  return {
      [self](peer_atom, int p, caf::actor a, std::string& name, std::string& host, uint16_t port) {
        self->monitor(a);
        self->state.peers[p] = peer_info{std::move(a), std::move(name), std::move(host), port};
      },
      // Our own listener's address (from the driver), and peers asking for it.
      [self](lane_atom, std::string& host, uint16_t port) {
        self->state.lane_host = std::move(host);
        self->state.lane_port = port;
      },
      [self](lane_atom) { return std::make_tuple(self->state.lane_host, self->state.lane_port, self->state.node_name); },
      [self](step_atom, step_request& req) -> caf::result<step_result> {
        auto& s = self->state;
        if (s.ending)
          return caf::make_error(caf::sec::runtime_error,
                                 "step " + std::to_string(req.step) +
                                     " requested after end of data (finish() was called): no more steps run");
        if (!s.broken.empty()) return caf::make_error(caf::sec::runtime_error, s.broken);
        if (s.active || s.holding) return caf::make_error(caf::sec::runtime_error, "a step is already running");
        if (req.plan >= s.plans.size()) return caf::make_error(caf::sec::runtime_error, "no such plan");
        if (req.step != s.next_step)
          return caf::make_error(caf::sec::runtime_error, "steps must run in order: expected step " +
                                                              std::to_string(s.next_step) + ", got " +
                                                              std::to_string(req.step));
        for (auto& [p, n] : s.ended)
          if (req.step >= n)
            return caf::make_error(caf::sec::runtime_error, peer_name(s, p) + " ended its data after " +
                                                                std::to_string(n) + " steps: step " +
                                                                std::to_string(req.step) + " cannot run");
        auto& vals = s.values[req.step];
        for (auto& [k, t] : req.feeds) vals[k] = t;
        size_t nfetch = 0;
        for (auto& u : s.plans[req.plan]->units)
          for (auto& [index, e] : u.fetches) nfetch = std::max(nfetch, index + 1);
        s.current = std::move(req);
        s.fetches.assign(nfetch, tensor());
        s.units_done = 0;
        s.active = true;
        s.promise = self->make_response_promise();
        progress(self);
        return caf::delegated<step_result>();
      },
      [self](tensor_atom, std::vector<char>& bytes) {
        auto m = transport::decode_tensor_message(bytes);
        if (!m) {
          spdlog::error("compute {}: dropped a malformed tensor message: {}", self->state.partition, m.err().message);
          return;
        }
        auto& s = self->state;
        ++s.counters->basp_received;
        s.counters->basp_received_bytes += bytes.size();
        int from = -1;
        for (auto& [p, peer] : s.peers)
          if (peer.actor.address() == self->current_sender()) from = p;
        file_tensor(self, from, std::move(*m), bytes.size(), false);
      },
      [self](lane_recv_atom, lane_delivery& d) {
        auto& s = self->state;
        auto it = s.lane_peers.find(d.connection);
        if (it == s.lane_peers.end()) { // the first frame says who sends
          const int world = s.plans.front()->partitions;
          if (d.message.name != lane_hello || d.message.step < 0 || d.message.step >= world ||
              d.message.step == s.partition) {
            spdlog::error("compute {}: bulk lane connection {} did not identify itself as a peer partition; "
                          "its tensors are ignored",
                          s.partition, d.connection);
            s.lane_peers[d.connection] = -1;
          } else {
            s.lane_peers[d.connection] = static_cast<int>(d.message.step);
          }
          return;
        }
        if (it->second < 0) return;
        const size_t bytes = d.message.value.defined() ? d.message.value.nbytes() : 0;
        ++s.counters->lane_received;
        s.counters->lane_received_bytes += bytes;
        file_tensor(self, it->second, std::move(d.message), bytes, true);
      },
      [self](lane_fail_atom, bulk::connection_id c, std::string& why) {
        auto& s = self->state;
        auto it = s.lane_peers.find(c);
        if (it == s.lane_peers.end() || it->second < 0) {
          spdlog::error("compute {}: bulk lane connection {} (no peer partition): {}", s.partition, c, why);
          return;
        }
        fail_step(self,
                  "partition " + std::to_string(s.partition) + ": the bulk lane from " + peer_name(s, it->second) +
                      " failed: " + why,
                  true);
        try_finish(self);
      },
      [self](release_atom, int64_t) {
        auto& s = self->state;
        for (auto& [p, peer] : s.peers)
          if (peer.actor.address() == self->current_sender() && s.unreleased[p] > 0) --s.unreleased[p];
        finish_if_allowed(self);
        try_finish(self);
      },
      // End of data from a peer: it ran `steps` steps and runs no more.
      [self](end_atom, int p, int64_t steps) {
        auto& s = self->state;
        s.ended[p] = steps;
        if (s.active && s.next_step >= steps)
          fail_step(self,
                    "partition " + std::to_string(s.partition) + ": " + peer_name(s, p) + " ended its data after " +
                        std::to_string(steps) + " steps: step " + std::to_string(s.next_step) + " cannot finish",
                    false);
        try_finish(self);
      },
      // End of data from our driver.
      [self](end_atom) -> caf::result<bool> {
        auto& s = self->state;
        if (s.ending) return caf::make_error(caf::sec::runtime_error, "end of data was already signalled");
        s.ending = true;
        s.finish_promise = self->make_response_promise();
        try_finish(self);
        return caf::delegated<bool>();
      },
  };
}

std::string compute_name(int p) { return "compute/" + std::to_string(p); }

} // namespace

distributed_program::~distributed_program() {
  if (actor_) {
    // Wait until the actor is gone: it may still be writing to trace_.
    caf::scoped_actor self{node_->system()};
    self->monitor(*actor_);
    caf::anon_send_exit(*actor_, caf::exit_reason::user_shutdown);
    self->receive([](const caf::down_msg&) {}, caf::after(std::chrono::seconds(10)) >> [] {});
  }
  if (lane_ && lane_->listener) lane_->listener->close();
  if (trace_) {
    if (status st = trace_->write(trace_path_); !st) spdlog::error("trace: {}", st.err().message);
  }
}

result<std::unique_ptr<distributed_program>> distributed_program::start(
    node& n, std::vector<std::shared_ptr<const partition_plan>> plans, uint64_t seed) {
  if (plans.empty()) return error{"distributed_program: no plan"};
  for (auto& p : plans)
    if (p->partitions != n.world_size())
      return error{"the program has " + std::to_string(p->partitions) + " partitions but the job has " +
                   std::to_string(n.world_size()) + " nodes"};
  std::unique_ptr<distributed_program> d(new distributed_program());
  d->node_ = &n;
  d->partition_ = n.rank();
  if (const char* t = std::getenv("LUOSHU_TRACE"); t && *t) {
    d->trace_path_ = t;
    d->trace_ = std::make_unique<trace_recorder>(n.rank(), n.self().name);
  }
  d->counters_ = std::make_shared<transfer_counters>();
  d->lane_ = std::make_unique<program_lane>();
  d->lane_->pool = std::make_shared<bulk::buffer_pool>(size_t{256} << 20);

  compute_setup setup;
  setup.partition = n.rank();
  setup.seed = seed;
  setup.trace = d->trace_.get();
  setup.counters = d->counters_.get();
  setup.node_name = n.self().name;
  setup.threshold = n.options().bulk_threshold;
  setup.pool = d->lane_->pool;
  // The node's device (LUOSHU_DEVICE, or the cluster file's device for the
  // worker): the compute actor gets its own stream there.
  try {
    device dev = n.self().device.empty() ? device::cpu() : device::parse(n.self().device);
    if (dev.kind != device::kind_t::cpu) {
      kernel_registry probe;
      cuda::register_kernels(probe);
      device_backend* b = probe.backend(dev.kind);
      if (!b)
        return error{"node " + n.self().name + " is placed on " + dev.to_string() +
                     " but this build has no CUDA support"};
      setup.stream = b->make_stream(dev.index);
    }
  } catch (const luoshu_error& e) {
    return error{"node " + n.self().name + ": device '" + n.self().device + "': " + e.what()};
  }
  d->actor_ = std::make_unique<caf::actor>(n.system().spawn(compute, plans, std::move(setup)));

  // The bulk lane: one listener per process; its tensors and errors go to
  // the compute actor (the callbacks run on CAF's I/O thread).
  auto [bind, advertised] = bulk_address(n);
  bulk::lane_options lo;
  lo.pool = d->lane_->pool;
  caf::actor target = *d->actor_;
  bulk::receive_handlers h;
  h.on_tensor = [target](bulk::connection_id c, transport::tensor_message m) {
    caf::anon_send(target, lane_recv_atom::value, lane_delivery{c, std::move(m)});
  };
  h.on_error = [target](bulk::connection_id c, const error& e) {
    caf::anon_send(target, lane_fail_atom::value, c, e.message);
  };
  auto l = bulk::listen(n.system(), bind, 0, std::move(h), lo);
  if (!l) return error{"node " + n.self().name + ": " + l.err().message};
  d->lane_->listener.emplace(std::move(*l));
  d->lane_->host = advertised;
  caf::anon_send(*d->actor_, lane_atom::value, advertised, d->lane_->listener->port());

  if (status st = n.serve(compute_name(n.rank()), *d->actor_); !st) return st.err();
  // One connection per pair of partitions, opened by the lower rank (both
  // opening one loses messages in CAF 0.17, node::connect). The lower rank
  // says so once it connected ("compute/P/to/Q"); the higher one looks up
  // the lower one's actor only then, so that its messages take the direct
  // connection from the first.
  const auto wait_s = std::to_string(n.options().connect_timeout.count() / 1000.0).substr(0, 4);
  const auto pair_name = [](int lo, int hi) { return compute_name(lo) + "/to/" + std::to_string(hi); };
  std::vector<caf::actor> peers(static_cast<size_t>(n.world_size()));
  for (int p = n.rank() + 1; p < n.world_size(); ++p) {
    // Every node joined already, so a peer serves its actor promptly: wait
    // connect_timeout (not the generous default) and name the partition.
    auto peer = n.connect(compute_name(p), n.options().connect_timeout);
    if (!peer)
      return error{"partition " + std::to_string(p) + " cannot be reached within " + wait_s + " s (" +
                   peer.err().message + ")"};
    peers[static_cast<size_t>(p)] = *peer;
    if (auto pub = n.publish(pair_name(n.rank(), p), "connected"); !pub || !*pub)
      return error{"node " + n.self().name + ": cannot say that it connected to partition " + std::to_string(p) +
                   (pub ? std::string(": another node already did for " + compute_name(n.rank()))
                        : ": " + pub.err().message)};
  }
  for (int p = 0; p < n.rank(); ++p) {
    auto up = n.fetch(pair_name(p, n.rank()), n.options().connect_timeout);
    auto peer = up ? n.lookup(compute_name(p), n.options().connect_timeout) : result<caf::actor>(up.err());
    if (!peer)
      return error{"partition " + std::to_string(p) + " did not connect to partition " + std::to_string(n.rank()) +
                   " within " + wait_s + " s (" + peer.err().message + ")"};
    peers[static_cast<size_t>(p)] = *peer;
  }
  for (int p = 0; p < n.world_size(); ++p) {
    if (p == n.rank()) continue;
    const caf::actor& peer = peers[static_cast<size_t>(p)];
    // Where the peer's lane listens (its actor answers once served).
    result<std::tuple<std::string, uint16_t, std::string>> where = error{"no reply"};
    caf::scoped_actor self{n.system()};
    self->request(peer, n.options().request_timeout, lane_atom::value)
        .receive([&](std::string& host, uint16_t port, std::string& name) { where = std::make_tuple(host, port, name); },
                 [&](caf::error& e) {
                   where = error{"asking partition " + std::to_string(p) + " for its bulk lane address: " +
                                 describe(n.system(), e)};
                 });
    if (!where) return where.err();
    auto& [host, port, name] = *where;
    caf::anon_send(*d->actor_, peer_atom::value, p, peer, name, host, port);
  }
  return d;
}

result<std::vector<tensor>> distributed_program::run(size_t plan, int64_t step,
                                                     const std::map<std::string, tensor>& feeds, bool training,
                                                     std::chrono::milliseconds timeout) {
  if (finished_)
    return error{"step " + std::to_string(step) +
                 ": requested after end of data (finish() was called): the program runs no more steps"};
  step_request req;
  req.plan = plan;
  req.step = step;
  req.training = training;
  req.feeds = feeds;
  result<std::vector<tensor>> out = error{"no reply"};
  caf::scoped_actor self{node_->system()};
  self->request(*actor_, timeout, step_atom::value, std::move(req))
      .receive([&](step_result& r) { out = std::move(r.fetches); },
               [&](caf::error& e) {
                 std::string why = e == caf::sec::runtime_error ? std::string() : node_->failure();
                 out = error{"step " + std::to_string(step) + ": " +
                             (why.empty() ? describe(node_->system(), e) : why)};
               });
  return out;
}

status distributed_program::finish(std::chrono::milliseconds timeout) {
  if (finished_) return finish_status_;
  finished_ = true;
  status out;
  caf::scoped_actor self{node_->system()};
  self->monitor(*actor_);
  self->request(*actor_, timeout, end_atom::value)
      .receive([](bool) {},
               [&](caf::error& e) {
                 std::string why = e == caf::sec::runtime_error ? std::string() : node_->failure();
                 out = error{"end of data: " + (why.empty() ? describe(node_->system(), e) : why)};
               });
  // The actor stops once it answered; wait for it (bounded).
  bool stopped = false;
  while (!stopped) {
    bool got = false;
    self->receive(
        [&](const caf::down_msg& dm) {
          got = true;
          if (dm.source == actor_->address()) stopped = true;
        },
        caf::after(std::chrono::seconds(10)) >> [] {});
    if (!got) break;
  }
  if (!stopped && out) out = error{"end of data: the compute actor of partition " + std::to_string(partition_) +
                                   " did not stop within 10 s"};
  finish_status_ = out;
  return out;
}

transfer_counts distributed_program::transfers() const { return counters_->snapshot(); }

uint16_t distributed_program::lane_port() const {
  return lane_ && lane_->listener ? lane_->listener->port() : 0;
}

} // namespace luoshu::actors
