#include "actors/coordinator.hpp"

#include <caf/all.hpp>
#include <caf/io/all.hpp>
#include <spdlog/spdlog.h>

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "actors/runtime.hpp"
#include "transport/codec.hpp"

namespace luoshu::actors {

namespace {

using clock = std::chrono::steady_clock;
using transport::join_reply;
using transport::member_info;

struct member {
  member_info info;
  caf::actor agent;
  clock::time_point last_seen;
  bool left = false;
};

struct barrier_state {
  std::map<int32_t, caf::typed_response_promise<std::string>> arrived;
};

/// Values that members publish once by name and others wait for: actors
/// (register/lookup) and short strings (publish/fetch).
template <class T>
struct named_table {
  explicit named_table(const char* a) : asking(a) {}
  const char* asking; ///< how an error names a request: "lookup of", "fetching"
  std::map<std::string, T> values;
  std::map<std::string, std::vector<caf::typed_response_promise<T>>> waiting;
  size_t waiters = 0;

  /// Publishes `v` as `name` and answers whoever waits for it; false when
  /// the name is taken.
  bool put(const std::string& name, const T& v) {
    if (!values.emplace(name, v).second) return false;
    auto it = waiting.find(name);
    if (it != waiting.end()) {
      for (auto& rp : it->second) rp.deliver(v);
      waiters -= it->second.size();
      waiting.erase(it);
    }
    return true;
  }

  /// The value of `name`, or a promise kept once it is published; an error
  /// once the job failed, or for a name over `max_name` bytes or more than
  /// `max_waiting` requests waiting.
  template <class Self>
  caf::result<T> get(Self* self, const std::string& name, const std::string& failure, size_t max_name = SIZE_MAX,
                     size_t max_waiting = SIZE_MAX) {
    auto it = values.find(name);
    if (it != values.end()) return it->second;
    if (!failure.empty()) return error_for(name, failure);
    if (name.size() > max_name)
      return caf::make_error(caf::sec::runtime_error, "a fetched name has " + std::to_string(name.size()) +
                                                          " bytes (at most " + std::to_string(max_name) + ")");
    if (waiters >= max_waiting)
      return caf::make_error(caf::sec::runtime_error,
                             "already " + std::to_string(waiters) + " fetches wait for values nobody published");
    auto rp = self->template make_response_promise<T>();
    waiting[name].push_back(rp);
    ++waiters;
    return rp;
  }

  /// The job failed: every waiting request gets `reason`.
  void fail(const std::string& reason) {
    for (auto& [name, ps] : waiting)
      for (auto& rp : ps) rp.deliver(error_for(name, reason));
    waiting.clear();
    waiters = 0;
  }

  caf::error error_for(const std::string& name, const std::string& reason) const {
    return caf::make_error(caf::sec::runtime_error, std::string(asking) + " '" + name + "': " + reason);
  }
};

struct coordinator_state {
  coordinator_config cfg;
  clock::time_point started = clock::now();
  std::map<int32_t, member> members; ///< by rank
  std::map<std::string, barrier_state> barriers;
  std::string failure;               ///< empty while the job is healthy
  std::vector<caf::actor> watchers;
  named_table<caf::actor> registry{"lookup of"};  ///< node::register_actor / lookup
  named_table<std::string> values{"fetching"};    ///< node::publish / fetch
  static inline const char* name = "luoshu.coordinator";
};

/// The longest name or value node::publish takes, how many values a job
/// keeps, and how many fetches may wait at once (a member that misbehaves
/// cannot grow the coordinator without bound).
constexpr size_t max_value_bytes = 4096;
constexpr size_t max_values = 65536;
constexpr size_t max_waiting_fetches = 4096;

std::string describe(const member_info& m) {
  return m.name + " (rank " + std::to_string(m.rank) + ", pid " + std::to_string(m.pid) + " on " + m.host + ")";
}

std::string seconds(std::chrono::milliseconds ms) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f s", static_cast<double>(ms.count()) / 1000.0);
  return buf;
}

} // namespace

coordinator_actor spawn_coordinator(caf::actor_system& sys, coordinator_config cfg) {
  auto impl = [](coordinator_actor::stateful_pointer<coordinator_state> self,
                 coordinator_config cfg) -> coordinator_actor::behavior_type {
    self->state.cfg = cfg;
    auto& st = self->state;

    // Marks the job failed (once): pending barriers fail, watchers and
    // members hear about it.
    auto fail = [self](const std::string& reason) {
      auto& s = self->state;
      if (!s.failure.empty()) return;
      s.failure = reason;
      spdlog::error("coordinator: {}", reason);
      for (auto& w : s.watchers) caf::anon_send(w, failure_atom::value, reason);
      for (auto& [name, b] : s.barriers)
        for (auto& [rank, rp] : b.arrived) rp.deliver(std::string("barrier '" + name + "' cannot pass: " + reason));
      s.barriers.clear();
      s.registry.fail(reason);
      s.values.fail(reason);
      for (auto& [rank, m] : s.members)
        if (!m.left) caf::anon_send(m.agent, failure_atom::value, reason);
    };

    self->set_down_handler([self, fail](caf::down_msg& dm) {
      for (auto& [rank, m] : self->state.members)
        if (!m.left && m.agent.address() == dm.source) {
          fail("node " + describe(m.info) + " disconnected: its process exited or the connection was lost");
          return;
        }
    });

    self->delayed_send(self, st.cfg.heartbeat_interval, tick_atom::value);

    return {
        [self, fail](join_atom, std::vector<char>& bytes, caf::actor agent) -> std::vector<char> {
          auto& s = self->state;
          join_reply reply;
          reply.world_size = s.cfg.world_size;
          reply.heartbeat_ms = s.cfg.heartbeat_interval.count();
          auto refuse = [&](std::string why) {
            spdlog::warn("coordinator: refused a join: {}", why);
            reply.accepted = false;
            reply.reason = std::move(why);
            return transport::encode(reply);
          };
          auto req = transport::decode_join_request(bytes);
          if (!req) return refuse(req.err().message);
          if (!agent) return refuse("join request without a node agent");
          if (req->token != s.cfg.token) return refuse("wrong cluster token (node " + req->self.name + " on " + req->self.host + ")");
          if (!s.failure.empty()) return refuse("the job has already failed: " + s.failure);
          if (req->world_size > 0 && req->world_size != s.cfg.world_size)
            return refuse("node " + req->self.name + " expects a world of " + std::to_string(req->world_size) +
                          " but the job has " + std::to_string(s.cfg.world_size));
          int32_t rank = req->self.rank;
          if (rank >= s.cfg.world_size)
            return refuse("rank " + std::to_string(rank) + " is outside the world of " + std::to_string(s.cfg.world_size));
          if (rank >= 0 && s.members.count(rank))
            return refuse("rank " + std::to_string(rank) + " is already taken by " + describe(s.members[rank].info));
          if (rank < 0) {
            for (int32_t r = 0; r < s.cfg.world_size && rank < 0; ++r)
              if (!s.members.count(r)) rank = r;
            if (rank < 0) return refuse("the job is full (" + std::to_string(s.cfg.world_size) + " members)");
          }
          member m;
          m.info = req->self;
          m.info.rank = rank;
          m.agent = agent;
          m.last_seen = clock::now();
          self->monitor(agent);
          spdlog::info("coordinator: {} joined ({} of {})", describe(m.info), s.members.size() + 1, s.cfg.world_size);
          s.members[rank] = std::move(m);
          reply.accepted = true;
          reply.rank = rank;
          return transport::encode(reply);
        },
        [self](barrier_atom, std::vector<char>& bytes) -> caf::result<std::string> {
          auto& s = self->state;
          auto req = transport::decode_barrier_request(bytes);
          if (!req) return std::string(req.err().message);
          if (!s.failure.empty()) return "barrier '" + req->name + "' cannot pass: " + s.failure;
          auto it = s.members.find(req->rank);
          if (it == s.members.end() || it->second.left)
            return "barrier '" + req->name + "': rank " + std::to_string(req->rank) + " is not a member";
          auto& b = s.barriers[req->name];
          if (b.arrived.count(req->rank))
            return "barrier '" + req->name + "': rank " + std::to_string(req->rank) + " arrived twice";
          auto rp = self->make_response_promise<std::string>();
          b.arrived.emplace(req->rank, rp);
          if (static_cast<int32_t>(b.arrived.size()) == s.cfg.world_size) {
            for (auto& [r, p] : b.arrived) p.deliver(std::string());
            s.barriers.erase(req->name);
          }
          return rp;
        },
        [self](heartbeat_atom, int32_t rank) {
          auto it = self->state.members.find(rank);
          if (it != self->state.members.end()) it->second.last_seen = clock::now();
        },
        [self](leave_atom, int32_t rank) -> bool {
          auto it = self->state.members.find(rank);
          if (it == self->state.members.end()) return false;
          it->second.left = true;
          self->demonitor(it->second.agent);
          spdlog::info("coordinator: {} left", describe(it->second.info));
          auto& s = self->state;
          bool all_left = static_cast<int32_t>(s.members.size()) == s.cfg.world_size;
          for (auto& [r, m] : s.members) all_left = all_left && m.left;
          if (all_left && s.failure.empty())
            for (auto& w : s.watchers) caf::anon_send(w, leave_atom::value);
          return true;
        },
        [self](status_atom) -> std::string {
          auto& s = self->state;
          nlohmann::json j;
          j["world_size"] = s.cfg.world_size;
          j["failure"] = s.failure;
          j["members"] = nlohmann::json::array();
          for (auto& [rank, m] : s.members)
            j["members"].push_back({{"rank", rank}, {"name", m.info.name}, {"host", m.info.host},
                                    {"pid", m.info.pid}, {"role", transport::name(m.info.role)},
                                    {"device", m.info.device}, {"left", m.left}});
          return j.dump();
        },
        [self](register_atom, std::string& name, caf::actor a) -> bool {
          return a && self->state.registry.put(name, a);
        },
        [self](lookup_atom, std::string& name) -> caf::result<caf::actor> {
          return self->state.registry.get(self, name, self->state.failure);
        },
        [self](publish_atom, std::string& name, std::string& value) -> caf::result<bool> {
          auto& s = self->state;
          // Small values only (addresses, ids); a name is published once.
          if (name.empty() || name.size() > max_value_bytes || value.size() > max_value_bytes)
            return caf::make_error(caf::sec::runtime_error, "a published name and value must each have 1 to " +
                                                                std::to_string(max_value_bytes) + " bytes");
          if (s.values.values.count(name)) return false;
          if (s.values.values.size() >= max_values)
            return caf::make_error(caf::sec::runtime_error,
                                   "the job already holds " + std::to_string(max_values) + " published values");
          return s.values.put(name, value);
        },
        [self](fetch_atom, std::string& name) -> caf::result<std::string> {
          return self->state.values.get(self, name, self->state.failure, max_value_bytes, max_waiting_fetches);
        },
        [self](watch_atom, caf::actor w) {
          if (!self->state.failure.empty()) caf::anon_send(w, failure_atom::value, self->state.failure);
          else self->state.watchers.push_back(w);
        },
        [self, fail](tick_atom) {
          auto& s = self->state;
          if (!s.failure.empty()) return;
          auto now = clock::now();
          auto waited = std::chrono::duration_cast<std::chrono::milliseconds>(now - s.started);
          if (static_cast<int32_t>(s.members.size()) < s.cfg.world_size && waited > s.cfg.join_timeout) {
            std::string missing;
            for (int32_t r = 0; r < s.cfg.world_size; ++r)
              if (!s.members.count(r)) missing += (missing.empty() ? "" : ", ") + std::to_string(r);
            fail("only " + std::to_string(s.members.size()) + " of " + std::to_string(s.cfg.world_size) +
                 " nodes joined within " + seconds(s.cfg.join_timeout) + " (missing ranks: " + missing + ")");
            return;
          }
          for (auto& [rank, m] : s.members) {
            auto silent = std::chrono::duration_cast<std::chrono::milliseconds>(now - m.last_seen);
            if (!m.left && silent > s.cfg.heartbeat_timeout) {
              fail("node " + describe(m.info) + " sent no heartbeat for " + seconds(silent) +
                   " (hung or overloaded; the limit is " + seconds(s.cfg.heartbeat_timeout) + ")");
              return;
            }
          }
          self->delayed_send(self, s.cfg.heartbeat_interval, tick_atom::value);
        },
    };
  };
  return sys.spawn(impl, std::move(cfg));
}

struct coordinator_service::impl {
  runtime_config cfg;
  caf::actor_system sys{cfg};
  coordinator_actor coordinator;
  std::unique_ptr<caf::scoped_actor> watcher; ///< receives failure/finished notices
};

coordinator_service::coordinator_service(std::unique_ptr<impl> p) : impl_(std::move(p)) {}

coordinator_service::~coordinator_service() {
  impl_->watcher.reset();
  caf::anon_send_exit(impl_->coordinator, caf::exit_reason::user_shutdown);
}

result<std::unique_ptr<coordinator_service>> coordinator_service::start(coordinator_config cfg,
                                                                        const std::string& host, uint16_t port) {
  if (cfg.world_size <= 0) return error{"the job needs a world size of at least 1"};
  if (cfg.token.empty()) return error{"the coordinator needs a cluster token"};
  auto p = std::make_unique<impl>();
  p->coordinator = spawn_coordinator(p->sys, cfg);
  auto bound = caf::io::publish(p->coordinator, port, host.c_str(), true);
  if (!bound) {
    caf::anon_send_exit(p->coordinator, caf::exit_reason::user_shutdown);
    return error{"cannot listen on " + host + ":" + std::to_string(port) + ": " + describe(p->sys, bound.error())};
  }
  p->watcher = std::make_unique<caf::scoped_actor>(p->sys);
  (*p->watcher)->send(p->coordinator, watch_atom::value, caf::actor_cast<caf::actor>(*p->watcher));
  std::unique_ptr<coordinator_service> s(new coordinator_service(std::move(p)));
  s->port_ = *bound;
  return s;
}

coordinator_service::outcome coordinator_service::wait(std::chrono::milliseconds timeout) {
  if (!failure_.empty()) return outcome::failed;
  if (finished_) return outcome::finished;
  (*impl_->watcher)->receive(
      [&](failure_atom, std::string& reason) { failure_ = reason; },
      [&](leave_atom) { finished_ = true; },
      caf::after(timeout) >> [] {});
  if (!failure_.empty()) return outcome::failed;
  return finished_ ? outcome::finished : outcome::running;
}

std::string coordinator_service::status() {
  std::string out;
  (*impl_->watcher)->request(impl_->coordinator, std::chrono::seconds(5), status_atom::value)
      .receive([&](std::string& s) { out = s; }, [&](caf::error& e) { out = describe(impl_->sys, e); });
  return out;
}

} // namespace luoshu::actors
