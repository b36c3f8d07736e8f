#include "apps/luoshu/dist_train.hpp"

#include <caf/all.hpp>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "actors/collective.hpp"
#include "actors/node.hpp"
#include "actors/ps.hpp"
#include "apps/luoshu/launch.hpp"
#include "schedulers/allreduce_trainer.hpp"
#include "schedulers/ps_trainer.hpp"

namespace luoshu::app {

namespace {

// --- checkpoints of a job ---------------------------------------------------------
// A job's checkpoint directory holds what each strategy keeps (the shards'
// files, worker 0's variable store) and, written last and atomically, a
// state file with the step count: a directory without it is no checkpoint.

std::string state_file(const std::string& dir) { return dir + "/job-state"; }
std::string replica_file(const std::string& dir) { return dir + "/replica.ckpt"; }

status write_state(const std::string& dir, const std::string& strategy, int64_t steps) {
  const std::string tmp = state_file(dir) + ".tmp";
  {
    std::ofstream f(tmp);
    f << "step " << steps << "\nstrategy " << strategy << "\n";
    if (!f) return error{"cannot write " + tmp};
  }
  if (std::rename(tmp.c_str(), state_file(dir).c_str()) != 0) return error{"cannot write " + state_file(dir)};
  return {};
}

result<int64_t> read_state(const std::string& dir, const std::string& strategy) {
  std::ifstream f(state_file(dir));
  std::string w1, w2, saved_by;
  long long steps = -1;
  if (!(f >> w1 >> steps >> w2 >> saved_by) || w1 != "step" || w2 != "strategy" || steps < 0)
    return error{dir + " is not a checkpoint of a distributed job (no readable " + state_file(dir) + ")"};
  if (saved_by != strategy)
    return error{dir + " was saved by --strategy " + saved_by + ", not " + strategy};
  return static_cast<int64_t>(steps);
}

status make_dir(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return error{"checkpoint directory " + dir + ": " + ec.message()};
  return {};
}

/// Embedding tables the model reads with its ids placeholder (rows to pull
/// per batch), by variable name.
std::map<std::string, expr> embedding_tables(graph& g, const model& m) {
  std::map<std::string, expr> out;
  if (!m.ids.valid()) return out;
  for (size_t i = 0; i < g.size(); ++i) {
    const node& nd = g.at(static_cast<node_id>(i));
    if (nd.op == op_kind::embedding && nd.inputs[1] == m.ids.id() && g.at(nd.inputs[0]).op == op_kind::variable)
      out[g.at(nd.inputs[0]).name] = m.ids;
  }
  return out;
}

/// What every worker strategy shares: the node, its place among the workers.
class worker_strategy : public step_strategy {
public:
  worker_strategy(actors::node& n, std::string name, int worker, int workers, const dist_train_options& o)
      : node_(n), name_(std::move(name)), worker_(worker), workers_(workers), opt_(o) {}
  int worker() const override { return worker_; }
  int workers() const override { return workers_; }
  result<int64_t> saved_step(const std::string& dir) override {
    resume_dir_ = dir;
    return read_state(dir, name_);
  }
  /// One line about the gradient exchange (worker 0 prints it at the end).
  virtual std::string report() const { return ""; }

protected:
  /// Writes this worker's variables, except those named in `on_shards`
  /// (the parameter server's checkpoint has them), to the replica file.
  /// For --strategy ps these are the variables nothing trains (batch norm's
  /// running statistics); without them a resumed run would evaluate with
  /// fresh ones.
  static status save_replica(const variable_store& vars, const std::set<std::string>& on_shards,
                             const std::string& dir, int64_t steps) {
    variable_store kept(vars.seed());
    for (const auto& [name, v] : vars.all())
      if (!on_shards.count(name)) kept.set(name, v);
    return kept.save(replica_file(dir), {{"step", std::to_string(steps)}});
  }
  status open_ring() {
    actors::collective_options co;
    co.group = "train";
    auto c = actors::communicator::create(node_, worker_, workers_, co);
    if (!c) return c.err();
    comm_ = std::move(*c);
    return {};
  }
  schedulers::allreduce_trainer_options ar_options() const {
    schedulers::allreduce_trainer_options o;
    o.fusion_bytes = opt_.fusion_bytes;
    o.overlap = opt_.overlap;
    return o;
  }
  static std::string exchange_report(const schedulers::allreduce_stats& s, bool overlap) {
    if (s.steps == 0) return "";
    return fmt::format("gradient all-reduce: {} steps, {:.1f} buckets/step, forward+backward {:.3f} s, waiting for "
                       "reductions after backward {:.3f} s ({:.1f}% of the pass; overlap {})",
                       s.steps, static_cast<double>(s.buckets) / static_cast<double>(s.steps), s.backward_seconds,
                       s.exposed_seconds, 100 * s.exposed_seconds / std::max(s.backward_seconds, 1e-9),
                       overlap ? "on" : "off");
  }

  actors::node& node_;
  std::string name_;
  int worker_, workers_;
  dist_train_options opt_;
  std::string resume_dir_;
  std::unique_ptr<actors::communicator> comm_; ///< before the trainers: destroyed after them
};

/// Worker side of --strategy ps: steps through the shards with schedulers::ps_trainer.
class ps_strategy final : public worker_strategy {
public:
  ps_strategy(actors::node& n, std::vector<caf::actor> shards, int worker, int workers, const dist_train_options& o)
      : worker_strategy(n, "ps", worker, workers, o), shards_(std::move(shards)) {}

  status attach(graph& g, const model& m, executor& ex, variable_store& vars, const optimizer_config& opt,
                int64_t resume_step) override {
    client_ = std::make_unique<actors::ps_client>(node_.system(), shards_, worker_);
    if (status st = client_->connect(); !st) return st;
    schedulers::ps_trainer_options o;
    o.worker = worker_;
    o.ids_of = embedding_tables(g, m); // pull only the rows of each batch
    trainer_ = std::make_unique<schedulers::ps_trainer>(g, m.loss, opt, ex, vars, *client_, o);
    vars_ = &vars;
    for (expr v : g.variables(true)) on_shards_.insert(v.name());
    if (resume_step > 0 && worker_ == 0) {
      // What the shards do not hold (written by save_replica); a checkpoint
      // from before it was written has none.
      std::error_code ec;
      if (std::filesystem::exists(replica_file(resume_dir_), ec)) {
        if (auto r = vars.load(replica_file(resume_dir_)); !r) return error{"resuming: " + r.err().message};
      } else if (g.variables(false).size() > on_shards_.size()) {
        spdlog::warn("resuming from {}: it has no {}; variables nothing trains (batch-norm statistics) start afresh",
                     resume_dir_, replica_file(resume_dir_));
      }
    }
    if (status st = trainer_->init(worker_ == 0 && resume_step == 0); !st) return st;
    if (resume_step > 0 && worker_ == 0)
      if (status st = client_->load(resume_dir_); !st) return error{"resuming: " + st.err().message};
    return node_.barrier("train-init");
  }
  result<double> step(const feed_map& share) override { return trainer_->step(share); }
  status sync() override { return trainer_->fetch_parameters(); }
  status save(const std::string& dir, int64_t steps) override {
    if (worker_ != 0) return {};
    if (status st = make_dir(dir); !st) return st;
    if (status st = client_->save(dir); !st) return st;
    if (status st = save_replica(*vars_, on_shards_, dir, steps); !st) return st;
    return write_state(dir, name_, steps);
  }

private:
  std::vector<caf::actor> shards_;
  variable_store* vars_ = nullptr;
  std::set<std::string> on_shards_; ///< the variables the shards hold
  std::unique_ptr<actors::ps_client> client_;
  std::unique_ptr<schedulers::ps_trainer> trainer_;
};

/// Worker side of --strategy allreduce: a replica of the whole model.
class allreduce_strategy final : public worker_strategy {
public:
  allreduce_strategy(actors::node& n, int worker, int workers, const dist_train_options& o)
      : worker_strategy(n, "allreduce", worker, workers, o) {}

  status attach(graph& g, const model& m, executor& ex, variable_store& vars, const optimizer_config& opt,
                int64_t resume_step) override {
    if (status st = open_ring(); !st) return st;
    vars_ = &vars;
    trainer_ = std::make_unique<schedulers::allreduce_trainer>(g, m.loss, opt, ex, vars, *comm_, ar_options());
    // Worker 0's parameters (or its checkpoint) become everyone's.
    if (resume_step > 0 && worker_ == 0)
      if (auto r = vars.load(replica_file(resume_dir_)); !r) return error{"resuming: " + r.err().message};
    if (status st = trainer_->init(); !st) return st;
    trainer_->set_steps_done(resume_step);
    return node_.barrier("train-init");
  }
  result<double> step(const feed_map& share) override { return trainer_->step(share); }
  status sync() override { return {}; } // every replica holds the parameters
  status save(const std::string& dir, int64_t steps) override {
    if (worker_ != 0) return {};
    if (status st = make_dir(dir); !st) return st;
    if (status st = vars_->save(replica_file(dir), {{"step", std::to_string(steps)}}); !st) return st;
    return write_state(dir, name_, steps);
  }
  std::string report() const override { return trainer_ ? exchange_report(trainer_->stats(), opt_.overlap) : ""; }

private:
  variable_store* vars_ = nullptr;
  std::unique_ptr<schedulers::allreduce_trainer> trainer_;
};

/// Worker side of --strategy hybrid: embedding tables through the
/// parameter server, every other parameter through all-reduce, in one
/// forward/backward pass per step.
class hybrid_strategy final : public worker_strategy {
public:
  hybrid_strategy(actors::node& n, std::vector<caf::actor> shards, int worker, int workers, const dist_train_options& o)
      : worker_strategy(n, "hybrid", worker, workers, o), shards_(std::move(shards)) {}

  status attach(graph& g, const model& m, executor& ex, variable_store& vars, const optimizer_config& opt,
                int64_t resume_step) override {
    auto tables = embedding_tables(g, m);
    if (tables.empty())
      return error{"--strategy hybrid: the model has no embedding table read with its ids (use ps or allreduce)"};
    std::vector<expr> sparse, dense;
    for (expr v : g.variables(true)) (tables.count(v.name()) ? sparse : dense).push_back(v);
    for (const auto& [name, ids] : tables) on_shards_.insert(name);
    if (dense.empty()) return error{"--strategy hybrid: the model has only embedding tables (use ps)"};
    client_ = std::make_unique<actors::ps_client>(node_.system(), shards_, worker_);
    if (status st = client_->connect(); !st) return st;
    if (status st = open_ring(); !st) return st;
    vars_ = &vars;
    schedulers::ps_trainer_options po;
    po.worker = worker_;
    po.ids_of = tables;
    ps_ = std::make_unique<schedulers::ps_trainer>(g, m.loss, opt, ex, vars, *client_, po, sparse);
    ar_ = std::make_unique<schedulers::allreduce_trainer>(g, m.loss, opt, ex, vars, *comm_, ar_options(), dense);
    if (status st = ps_->init(worker_ == 0 && resume_step == 0); !st) return st;
    if (resume_step > 0 && worker_ == 0) {
      if (status st = client_->load(resume_dir_); !st) return error{"resuming: " + st.err().message};
      if (auto r = vars.load(replica_file(resume_dir_)); !r) return error{"resuming: " + r.err().message};
    }
    if (status st = ar_->init(); !st) return st;
    ar_->set_steps_done(resume_step);
    return node_.barrier("train-init");
  }

  result<double> step(const feed_map& share) override {
    schedulers::ps_step_extras extra;
    extra.fetches = ar_->grad_fetches();
    extra.on_fetch = [this](size_t f, const tensor& v) { ar_->on_grad(f, v); };
    ar_->begin_step();
    auto loss = ps_->step(share, &extra);
    if (!loss) return loss;
    if (status st = ar_->finish_step(extra.values); !st) return st.err();
    return loss;
  }
  status sync() override { return ps_->fetch_parameters(); }
  status save(const std::string& dir, int64_t steps) override {
    if (worker_ != 0) return {};
    if (status st = make_dir(dir); !st) return st;
    if (status st = client_->save(dir); !st) return st;
    if (status st = save_replica(*vars_, on_shards_, dir, steps); !st) return st;
    return write_state(dir, name_, steps);
  }
  std::string report() const override { return ar_ ? exchange_report(ar_->stats(), opt_.overlap) : ""; }

private:
  std::vector<caf::actor> shards_;
  variable_store* vars_ = nullptr;
  std::set<std::string> on_shards_; ///< the embedding tables (the shards hold them)
  std::unique_ptr<actors::ps_client> client_;
  std::unique_ptr<schedulers::ps_trainer> ps_;
  std::unique_ptr<schedulers::allreduce_trainer> ar_;
};

int fail(const std::string& m, int code = 1) {
  spdlog::error("{}", m);
  return code;
}

} // namespace

int run_dist_train(const train_config& cfg, const dist_train_options& o,
                   int (*train_one)(const train_config&, step_strategy*, bool report)) {
  const std::string& kind = o.strategy;
  if (kind != "ps" && kind != "allreduce" && kind != "hybrid")
    return fail("--strategy " + kind + ": expected local, ps, allreduce or hybrid", 2);
  const int servers = kind == "allreduce" ? 0 : o.servers;
  auto cons = actors::ps_consistency::parse(o.consistency);
  if (!cons) return fail(cons.err().message, 2);
  if ((kind != "allreduce" && servers < 1) || o.workers < 1) return fail("--servers and --workers must be >= 1", 2);
  if (cfg.run.batch_size % o.workers != 0)
    return fail(cfg.source + ": run.batch_size " + std::to_string(cfg.run.batch_size) + " is not a multiple of " +
                    std::to_string(o.workers) + " workers",
                2);
  if (o.fusion_bytes == 0) return fail("--fusion-bytes must be >= 1", 2);

  if (!actors::in_job()) { // start the job on this machine: servers, then workers
    launch_plan plan;
    for (int i = 0; i < servers + o.workers; ++i) {
      launch_node n;
      n.role = i < servers ? "server" : "worker";
      plan.nodes.push_back(n);
    }
    char self[4096];
    ssize_t len = ::readlink("/proc/self/exe", self, sizeof self - 1);
    if (len <= 0) return fail("cannot find this program's path to start the job's nodes");
    plan.command = o.argv;
    plan.command[0] = std::string(self, static_cast<size_t>(len));
    plan.timeout_s = o.timeout_s;
    return launch(plan);
  }

  auto no = actors::node_options_from_env();
  if (!no) return fail(no.err().message);
  auto joined = actors::node::join(*no);
  if (!joined) return fail(joined.err().message);
  actors::node& node = **joined;
  if (node.world_size() != servers + o.workers)
    return fail("the job has " + std::to_string(node.world_size()) + " nodes but --strategy " + kind + " with " +
                (servers ? "--servers " + std::to_string(servers) + " " : std::string()) + "--workers " +
                std::to_string(o.workers) + " needs " + std::to_string(servers + o.workers));
  const bool server = node.rank() < servers;
  if (server != (node.self().role == transport::node_role::server))
    return fail(servers ? "list the " + std::to_string(servers) + " server node(s) before the workers in the cluster file"
                        : "--strategy allreduce has no server nodes: make every node a worker");

  int rc = 0;
  caf::actor shard;
  if (server) {
    actors::ps_shard_options so;
    so.shard = node.rank();
    so.shards = servers;
    so.workers = o.workers;
    so.consistency = *cons;
    shard = actors::spawn_ps_shard(node.system(), so);
    if (status st = actors::serve_ps_shard(node, node.rank(), shard); !st) return fail(st.err().message);
    for (const char* b : {"train-ready", "train-init"})
      if (status st = node.barrier(b); !st) rc = fail(st.err().message);
  } else {
    if (status st = node.barrier("train-ready"); !st) return fail(st.err().message);
    auto connected = actors::connect_ps_shards(node, servers);
    if (!connected) return fail(connected.err().message);
    std::vector<caf::actor> shards = std::move(*connected);
    const int w = node.rank() - servers;
    std::unique_ptr<worker_strategy> strategy;
    if (kind == "ps") strategy = std::make_unique<ps_strategy>(node, std::move(shards), w, o.workers, o);
    else if (kind == "allreduce") strategy = std::make_unique<allreduce_strategy>(node, w, o.workers, o);
    else strategy = std::make_unique<hybrid_strategy>(node, std::move(shards), w, o.workers, o);
    rc = train_one(cfg, strategy.get(), w == 0);
    if (rc == 0 && w == 0)
      if (std::string r = strategy->report(); !r.empty()) std::printf("%s\n", r.c_str());
    if (rc == 0)
      if (status st = node.barrier("train-done"); !st) rc = fail(st.err().message);
    strategy.reset(); // closes the ring before the node goes
    if (shard) caf::anon_send_exit(shard, caf::exit_reason::user_shutdown);
    return rc;
  }
  status done = rc == 0 ? node.barrier("train-done") : status{};
  if (shard) caf::anon_send_exit(shard, caf::exit_reason::user_shutdown);
  if (!done) return fail(done.err().message);
  return rc;
}

} // namespace luoshu::app
