#include "actors/node.hpp"

#include <caf/all.hpp>
#include <caf/io/all.hpp>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <set>
#include <thread>

#include "actors/coordinator.hpp"
#include "actors/runtime.hpp"
#include "transport/codec.hpp"

namespace luoshu::actors {

namespace {

struct agent_state {
  coordinator_actor coordinator;
  int32_t rank = -1;
  std::chrono::milliseconds interval{500};
  std::string failure;
  static inline const char* name = "luoshu.node_agent";
};

/// Sends heartbeats and keeps the job's failure, if any.
caf::behavior node_agent(caf::stateful_actor<agent_state>* self, coordinator_actor coordinator) {
  self->state.coordinator = coordinator;
  self->monitor(coordinator);
  self->set_down_handler([self](caf::down_msg& dm) {
    if (dm.source == self->state.coordinator.address() && self->state.failure.empty())
      self->state.failure = "the coordinator disconnected";
  });
  return {
      [self](heartbeat_atom, int32_t rank, int64_t interval_ms) {
        self->state.rank = rank;
        self->state.interval = std::chrono::milliseconds(std::max<int64_t>(10, interval_ms));
        self->send(self, tick_atom::value);
      },
      [self](tick_atom) {
        self->send(self->state.coordinator, heartbeat_atom::value, self->state.rank);
        self->delayed_send(self, self->state.interval, tick_atom::value);
      },
      [self](failure_atom, std::string& reason) {
        if (self->state.failure.empty()) self->state.failure = reason;
      },
      [self](status_atom) { return self->state.failure; },
  };
}

std::string getenv_str(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

result<int32_t> parse_int(const std::string& var, const std::string& v) {
  char* end = nullptr;
  errno = 0;
  long x = std::strtol(v.c_str(), &end, 10);
  if (v.empty() || *end != '\0' || errno != 0 || x < 0 || x > 1 << 20)
    return error{var + "='" + v + "' is not a valid non-negative number"};
  return static_cast<int32_t>(x);
}

/// Bytes with an optional binary suffix: "4096", "64K", "1M", "2G".
result<uint64_t> parse_bytes(const std::string& var, const std::string& v) {
  const error bad{var + "='" + v + "' is not a byte count (e.g. 0, 65536, 64K, 1M)"};
  if (v.empty() || v.find_first_not_of("0123456789") == 0) return bad;
  char* end = nullptr;
  errno = 0;
  unsigned long long x = std::strtoull(v.c_str(), &end, 10);
  if (errno != 0) return bad;
  std::string suffix = end;
  int shift = 0;
  if (suffix == "K" || suffix == "k" || suffix == "KiB") shift = 10;
  else if (suffix == "M" || suffix == "m" || suffix == "MiB") shift = 20;
  else if (suffix == "G" || suffix == "g" || suffix == "GiB") shift = 30;
  else if (!suffix.empty()) return bad;
  if (x > (~0ull >> shift)) return bad;
  return static_cast<uint64_t>(x) << shift;
}

} // namespace

struct node::impl {
  runtime_config cfg;
  caf::actor_system sys{cfg};
  coordinator_actor coordinator;
  caf::actor agent;
  std::string where;
  std::chrono::milliseconds request_timeout{30000};
};

namespace {

/// Asks the coordinator (`xs`: a request it answers with a T). An error
/// says `what`, then why: the job's failure when `job_failure` gives one,
/// else CAF's error.
template <class T, class... Ts>
result<T> ask_coordinator(caf::actor_system& sys, const coordinator_actor& coordinator,
                          std::chrono::milliseconds timeout, const std::string& what, const std::function<std::string()>& job_failure, Ts&&... xs) {
  result<T> out = error{"no reply"};
  caf::scoped_actor self{sys};
  self->request(coordinator, timeout, std::forward<Ts>(xs)...)
      .receive([&](T& v) { out = std::move(v); },
               [&](caf::error& e) {
                 std::string why = job_failure ? job_failure() : std::string();
                 out = error{what + ": " + (why.empty() ? describe(sys, e) : why)};
               });
  return out;
}

} // namespace

bool in_job() { return std::getenv("LUOSHU_COORDINATOR") != nullptr; }

result<node_options> node_options_from_env() {
  node_options o;
  std::string coord = getenv_str("LUOSHU_COORDINATOR");
  if (coord.empty()) return error{"LUOSHU_COORDINATOR is not set (expected host:port of the coordinator)"};
  auto colon = coord.rfind(':');
  if (colon == std::string::npos || colon == 0)
    return error{"LUOSHU_COORDINATOR='" + coord + "' is not host:port"};
  o.coordinator_host = coord.substr(0, colon);
  if (o.coordinator_host.size() > 2 && o.coordinator_host.front() == '[' && o.coordinator_host.back() == ']')
    o.coordinator_host = o.coordinator_host.substr(1, o.coordinator_host.size() - 2);
  auto port = parse_int("LUOSHU_COORDINATOR port", coord.substr(colon + 1));
  if (!port || *port == 0 || *port > 65535) return error{"LUOSHU_COORDINATOR='" + coord + "' has no valid port"};
  o.coordinator_port = static_cast<uint16_t>(*port);

  o.token = getenv_str("LUOSHU_TOKEN");
  if (o.token.empty()) {
    std::string file = getenv_str("LUOSHU_TOKEN_FILE");
    if (file.empty()) return error{"LUOSHU_TOKEN (or LUOSHU_TOKEN_FILE) is not set: nodes need the cluster token"};
    std::ifstream f(file);
    if (!f || !std::getline(f, o.token) || o.token.empty())
      return error{"LUOSHU_TOKEN_FILE='" + file + "' cannot be read or is empty"};
  }

  std::string rank = getenv_str("LUOSHU_RANK");
  std::string host = getenv_str("HOSTNAME");
  if (rank.empty() && !host.empty()) {
    // A StatefulSet pod is called <name>-<ordinal>.
    auto dash = host.rfind('-');
    if (dash != std::string::npos && dash + 1 < host.size() &&
        host.find_first_not_of("0123456789", dash + 1) == std::string::npos)
      rank = host.substr(dash + 1);
  }
  if (!rank.empty()) {
    auto r = parse_int("LUOSHU_RANK", rank);
    if (!r) return r.err();
    o.self.rank = *r;
  }
  std::string world = getenv_str("LUOSHU_WORLD_SIZE");
  if (!world.empty()) {
    auto w = parse_int("LUOSHU_WORLD_SIZE", world);
    if (!w) return w.err();
    o.world_size = *w;
  }
  std::string role = getenv_str("LUOSHU_ROLE");
  if (!role.empty() && !transport::parse_role(role, o.self.role))
    return error{"LUOSHU_ROLE='" + role + "' is not coordinator, server or worker"};
  std::string threshold = getenv_str("LUOSHU_BULK_THRESHOLD");
  if (!threshold.empty()) {
    auto t = parse_bytes("LUOSHU_BULK_THRESHOLD", threshold);
    if (!t) return t.err();
    o.bulk_threshold = *t;
  }
  o.bulk_host = getenv_str("LUOSHU_BULK_HOST");
  o.self.name = getenv_str("LUOSHU_NODE_NAME");
  o.self.device = getenv_str("LUOSHU_DEVICE");
  if (o.self.device.empty()) o.self.device = "cpu";
  char hn[256] = {};
  gethostname(hn, sizeof hn - 1);
  o.self.host = hn;
  o.self.pid = static_cast<int32_t>(getpid());
  if (o.self.name.empty())
    o.self.name = std::string(transport::name(o.self.role)) + (o.self.rank >= 0 ? "-" + std::to_string(o.self.rank) : "");
  return o;
}

node::node(std::unique_ptr<impl> p) : impl_(std::move(p)) {}

node::~node() {
  leave();
  caf::anon_send_exit(impl_->agent, caf::exit_reason::user_shutdown);
}

caf::actor_system& node::system() { return impl_->sys; }

result<std::unique_ptr<node>> node::join(const node_options& o) {
  auto p = std::make_unique<impl>();
  p->where = o.coordinator_host + ":" + std::to_string(o.coordinator_port);
  p->request_timeout = o.request_timeout;
  auto deadline = std::chrono::steady_clock::now() + o.connect_timeout;
  for (;;) {
    auto c = caf::io::remote_actor<coordinator_actor>(p->sys, o.coordinator_host, o.coordinator_port);
    if (c) {
      p->coordinator = *c;
      break;
    }
    if (std::chrono::steady_clock::now() >= deadline)
      return error{"cannot reach the coordinator at " + p->where + " within " +
                   std::to_string(o.connect_timeout.count() / 1000) + " s: " + describe(p->sys, c.error())};
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  p->agent = p->sys.spawn(node_agent, p->coordinator);

  transport::join_request req;
  req.token = o.token;
  req.self = o.self;
  req.world_size = o.world_size;
  result<transport::join_reply> reply = error{"no reply"};
  {
    caf::scoped_actor self{p->sys};
    self->request(p->coordinator, o.request_timeout, join_atom::value, transport::encode(req), p->agent)
        .receive([&](std::vector<char>& bytes) { reply = transport::decode_join_reply(bytes); },
                 [&](caf::error& e) { reply = error{describe(p->sys, e)}; });
  }
  if (!reply) {
    caf::anon_send_exit(p->agent, caf::exit_reason::user_shutdown);
    return error{"joining the job at " + p->where + " failed: " + reply.err().message};
  }
  if (!reply->accepted) {
    caf::anon_send_exit(p->agent, caf::exit_reason::user_shutdown);
    return error{"the coordinator at " + p->where + " refused this node: " + reply->reason};
  }
  caf::anon_send(p->agent, heartbeat_atom::value, reply->rank, reply->heartbeat_ms);
  std::unique_ptr<node> n(new node(std::move(p)));
  n->rank_ = reply->rank;
  n->world_size_ = reply->world_size;
  n->self_ = o.self;
  n->self_.rank = reply->rank;
  n->options_ = o;
  return n;
}

status node::barrier(const std::string& name, std::chrono::milliseconds timeout) {
  if (left_) return error{"barrier '" + name + "': this node already left the job"};
  transport::barrier_request req;
  req.name = name;
  req.rank = rank_;
  status out;
  caf::scoped_actor self{impl_->sys};
  self->request(impl_->coordinator, timeout, barrier_atom::value, transport::encode(req))
      .receive(
          [&](std::string& reason) {
            if (!reason.empty()) out = error{reason};
          },
          [&](caf::error& e) {
            std::string why = failure();
            out = error{"barrier '" + name + "' failed: " + (why.empty() ? describe(impl_->sys, e) : why)};
          });
  return out;
}

result<bool> node::register_actor(const std::string& name, const caf::actor& a) {
  return ask_coordinator<bool>(impl_->sys, impl_->coordinator, impl_->request_timeout, "registering '" + name + "'",
                               {}, register_atom::value, name, a);
}

result<caf::actor> node::lookup(const std::string& name, std::chrono::milliseconds timeout) {
  return ask_coordinator<caf::actor>(impl_->sys, impl_->coordinator, timeout, "finding '" + name + "'",
                                     [this] { return failure(); }, lookup_atom::value, name);
}

result<bool> node::publish(const std::string& name, const std::string& value) {
  return ask_coordinator<bool>(impl_->sys, impl_->coordinator, impl_->request_timeout, "publishing '" + name + "'",
                               {}, publish_atom::value, name, value);
}

result<std::string> node::fetch(const std::string& name, std::chrono::milliseconds timeout) {
  return ask_coordinator<std::string>(impl_->sys, impl_->coordinator, timeout, "fetching '" + name + "'",
                                      [this] { return failure(); }, fetch_atom::value, name);
}

status node::serve(const std::string& name, const caf::actor& a) {
  auto [bind, advertised] = bulk_address(*this);
  auto port = caf::io::publish(a, 0, bind.empty() ? nullptr : bind.c_str(), true);
  if (!port)
    return error{"serving '" + name + "': cannot listen on " + (bind.empty() ? "any address" : bind) + ": " +
                 describe(impl_->sys, port.error())};
  auto announce = [&]() -> status {
    auto reg = register_actor(name, a);
    if (!reg) return reg.err();
    if (!*reg) return error{"serving '" + name + "': another actor already has that name"};
    auto pub = publish(name + "/address", endpoint{advertised, *port}.text());
    if (!pub) return pub.err();
    if (!*pub) return error{"serving '" + name + "': another node already published its address"};
    return {};
  };
  status st = announce();
  if (!st) (void)caf::io::unpublish(a, *port); // nobody will come: stop listening
  return st;
}

result<caf::actor> node::connect(const std::string& name, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  auto text = fetch(name + "/address", timeout);
  if (!text) return error{"connecting to '" + name + "': " + text.err().message};
  auto at = parse_endpoint(*text);
  if (!at) return error{"connecting to '" + name + "': " + at.err().message};
  const std::string where = "'" + name + "' at " + at->host + ":" + std::to_string(at->port);
  for (;;) {
    // Through the middleman's own request, bounded by the time left:
    // caf::io::remote_actor waits without a limit, e.g. on a port whose
    // program accepts but never answers CAF's handshake.
    const auto left = std::max(std::chrono::duration_cast<std::chrono::milliseconds>(deadline -
                                                                                     std::chrono::steady_clock::now()),
                               std::chrono::milliseconds(100));
    std::string why;
    caf::actor found;
    caf::scoped_actor self{impl_->sys};
    self->request(impl_->sys.middleman().actor_handle(), left, caf::connect_atom::value, at->host, at->port)
        .receive(
            [&](const caf::node_id&, caf::strong_actor_ptr& ptr, const std::set<std::string>&) {
              if (ptr) found = caf::actor_cast<caf::actor>(std::move(ptr));
              else why = "nothing is served there";
            },
            [&](caf::error& e) { why = describe(impl_->sys, e); });
    if (found) return found;
    // The address is published only once something listens there: a
    // failure is the network or a node that is gone; retry until the
    // deadline in case it is the network.
    if (std::chrono::steady_clock::now() >= deadline) return error{"cannot connect to " + where + ": " + why};
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
}

result<endpoint> parse_endpoint(const std::string& s) {
  const size_t sp = s.find(' ');
  char* end = nullptr;
  const unsigned long port = sp == std::string::npos ? 0 : std::strtoul(s.c_str(), &end, 10);
  if (sp == std::string::npos || sp == 0 || end != s.c_str() + sp || port == 0 || port > 65535 ||
      sp + 1 >= s.size())
    return error{"a malformed address '" + s.substr(0, 80) + "' (expected PORT HOST)"};
  return endpoint{s.substr(sp + 1), static_cast<uint16_t>(port)};
}

std::string node::failure() {
  std::string out;
  caf::scoped_actor self{impl_->sys};
  self->request(impl_->agent, std::chrono::seconds(5), status_atom::value)
      .receive([&](std::string& f) { out = f; }, [&](caf::error&) {});
  return out;
}

void node::leave() {
  if (left_) return;
  left_ = true;
  caf::scoped_actor self{impl_->sys};
  self->request(impl_->coordinator, std::chrono::seconds(5), leave_atom::value, rank_)
      .receive([](bool) {}, [](caf::error&) {});
}

std::pair<std::string, std::string> bulk_address(const node& n) {
  const node_options& o = n.options();
  if (!o.bulk_host.empty()) return {o.bulk_host, o.bulk_host};
  const std::string& c = o.coordinator_host;
  if (c == "localhost" || c == "::1" || c.rfind("127.", 0) == 0) return {"127.0.0.1", "127.0.0.1"};
  return {"", n.self().host};
}

} // namespace luoshu::actors
