#include "actors/compute.hpp"

#include <caf/all.hpp>
#include <spdlog/spdlog.h>

#include <cstdlib>
#include <set>

#include "actors/atoms.hpp"
#include "actors/runtime.hpp"
#include "ops/kernel.hpp"
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

} // namespace
} // namespace luoshu::actors

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(luoshu::actors::step_request)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(luoshu::actors::step_result)

namespace luoshu::actors {

namespace {

struct compute_state {
  std::vector<std::shared_ptr<const partition_plan>> plans;
  int partition = 0;
  kernel_registry kernels;
  std::unique_ptr<variable_store> vars;
  std::vector<std::unique_ptr<partition_runner>> runners; ///< one per plan
  std::map<int, caf::actor> peers;                        ///< partition -> compute actor

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
  static inline const char* name = "luoshu.compute";
};

using compute_actor = caf::stateful_actor<compute_state>;

/// The trace track of the compute actor's own events.
constexpr int compute_track = 1000;

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
            auto bytes = transport::encode(m);
            if (s.trace)
              s.trace->instant("send " + key + " to partition " + std::to_string(p), "message", compute_track,
                               "\"bytes\":" + std::to_string(bytes.size()) + ",\"step\":" + std::to_string(s.next_step));
            self->send(s.peers.at(p), tensor_atom::value, std::move(bytes));
          }
        }
      }
      for (int p : sent_to) s.step_peers.insert(p);
      ++s.units_done;
    }
    // The step is done: release the buffers our peers sent for it, count
    // what we sent, and hand the result over unless too much is in flight.
    for (int p : s.senders[s.next_step]) self->send(s.peers.at(p), release_atom::value, s.next_step);
    s.senders.erase(s.next_step);
    for (int p : s.step_peers) ++s.unreleased[p];
    s.step_peers.clear();
    s.held.fetches = std::move(s.fetches);
    s.values.erase(s.next_step);
    ++s.next_step;
    s.active = false;
    s.holding = true;
    finish_if_allowed(self);
  }
}

caf::behavior compute(compute_actor* self, std::vector<std::shared_ptr<const partition_plan>> plans, int partition,
                      uint64_t seed, trace_recorder* trace) {
  auto& s = self->state;
  s.plans = std::move(plans);
  s.partition = partition;
  s.trace = trace;
  cpu::register_kernels(s.kernels);
  s.vars = std::make_unique<variable_store>(seed);
  if (trace) trace->name_track(compute_track, "compute actor " + std::to_string(partition));
  for (auto& p : s.plans)
    s.runners.push_back(std::make_unique<partition_runner>(*p, partition, *s.vars, s.kernels, trace));
  return {
      [self](peer_atom, int p, caf::actor a) { self->state.peers[p] = std::move(a); },
      [self](step_atom, step_request& req) -> caf::result<step_result> {
        auto& s = self->state;
        if (s.active || s.holding) return caf::make_error(caf::sec::runtime_error, "a step is already running");
        if (req.plan >= s.plans.size()) return caf::make_error(caf::sec::runtime_error, "no such plan");
        if (req.step != s.next_step)
          return caf::make_error(caf::sec::runtime_error, "steps must run in order: expected step " +
                                                              std::to_string(s.next_step) + ", got " +
                                                              std::to_string(req.step));
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
        if (m->step < s.next_step) {
          spdlog::error("compute {}: tensor '{}' of finished step {} ignored", s.partition, m->name, m->step);
          return;
        }
        if (s.trace)
          s.trace->instant("recv " + m->name, "message", compute_track,
                           "\"bytes\":" + std::to_string(bytes.size()) + ",\"step\":" + std::to_string(m->step));
        s.values[m->step][m->name] = m->value;
        for (auto& [p, a] : s.peers)
          if (a.address() == self->current_sender()) s.senders[m->step].insert(p);
        if (m->step == s.next_step) progress(self);
      },
      [self](release_atom, int64_t) {
        auto& s = self->state;
        for (auto& [p, a] : s.peers)
          if (a.address() == self->current_sender() && s.unreleased[p] > 0) --s.unreleased[p];
        finish_if_allowed(self);
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
  d->actor_ = std::make_unique<caf::actor>(n.system().spawn(compute, plans, n.rank(), seed, d->trace_.get()));
  auto reg = n.register_actor(compute_name(n.rank()), *d->actor_);
  if (!reg) return reg.err();
  if (!*reg) return error{"another node already registered " + compute_name(n.rank())};
  for (int p = 0; p < n.world_size(); ++p) {
    if (p == n.rank()) continue;
    auto peer = n.lookup(compute_name(p));
    if (!peer) return peer.err();
    caf::anon_send(*d->actor_, peer_atom::value, p, *peer);
  }
  return d;
}

result<std::vector<tensor>> distributed_program::run(size_t plan, int64_t step,
                                                     const std::map<std::string, tensor>& feeds, bool training,
                                                     std::chrono::milliseconds timeout) {
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
                 std::string why = node_->failure();
                 out = error{"step " + std::to_string(step) + ": " +
                             (why.empty() ? describe(node_->system(), e) : why)};
               });
  return out;
}

} // namespace luoshu::actors
