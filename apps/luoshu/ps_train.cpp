#include "apps/luoshu/ps_train.hpp"

#include <caf/all.hpp>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "actors/node.hpp"
#include "actors/ps.hpp"
#include "apps/luoshu/launch.hpp"
#include "schedulers/ps_trainer.hpp"

namespace luoshu::app {

namespace {

std::string state_file(const std::string& dir) { return dir + "/ps-state"; }

/// Worker side: steps through the shards with schedulers::ps_trainer.
class ps_strategy final : public step_strategy {
public:
  ps_strategy(actors::node& n, std::vector<caf::actor> shards, int worker, int workers)
      : node_(n), shards_(std::move(shards)), worker_(worker), workers_(workers) {}

  status attach(graph& g, const model& m, executor& ex, variable_store& vars, const optimizer_config& opt,
                int64_t resume_step) override {
    client_ = std::make_unique<actors::ps_client>(node_.system(), shards_, worker_);
    if (status st = client_->connect(); !st) return st;
    schedulers::ps_trainer_options o;
    o.worker = worker_;
    // Tables read through embedding() with the model's ids: pull only the
    // rows of each batch.
    if (m.ids.valid())
      for (size_t i = 0; i < g.size(); ++i) {
        const node& nd = g.at(static_cast<node_id>(i));
        if (nd.op == op_kind::embedding && nd.inputs[1] == m.ids.id() && g.at(nd.inputs[0]).op == op_kind::variable)
          o.ids_of[g.at(nd.inputs[0]).name] = m.ids;
      }
    trainer_ = std::make_unique<schedulers::ps_trainer>(g, m.loss, opt, ex, vars, *client_, o);
    if (status st = trainer_->init(worker_ == 0 && resume_step == 0); !st) return st;
    if (resume_step > 0 && worker_ == 0)
      if (status st = client_->load(resume_dir_); !st) return error{"resuming: " + st.err().message};
    return node_.barrier("ps-init");
  }

  result<double> step(const feed_map& share) override { return trainer_->step(share); }
  status sync() override { return trainer_->fetch_parameters(); }

  status save(const std::string& dir, int64_t steps) override {
    if (worker_ != 0) return {};
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec) return error{"checkpoint directory " + dir + ": " + ec.message()};
    if (status st = client_->save(dir); !st) return st;
    // The step count last, atomically: a directory without it is not a checkpoint.
    const std::string tmp = state_file(dir) + ".tmp";
    {
      std::ofstream f(tmp);
      f << "step " << steps << "\n";
      if (!f) return error{"cannot write " + tmp};
    }
    if (std::rename(tmp.c_str(), state_file(dir).c_str()) != 0) return error{"cannot write " + state_file(dir)};
    return {};
  }

  result<int64_t> saved_step(const std::string& dir) override {
    resume_dir_ = dir;
    std::ifstream f(state_file(dir));
    std::string word;
    long long steps = -1;
    if (!(f >> word >> steps) || word != "step" || steps < 0)
      return error{dir + " is not a parameter-server checkpoint (no readable " + state_file(dir) + ")"};
    return static_cast<int64_t>(steps);
  }

  int worker() const override { return worker_; }
  int workers() const override { return workers_; }

private:
  actors::node& node_;
  std::vector<caf::actor> shards_;
  int worker_, workers_;
  std::string resume_dir_;
  std::unique_ptr<actors::ps_client> client_;
  std::unique_ptr<schedulers::ps_trainer> trainer_;
};

int fail(const std::string& m, int code = 1) {
  spdlog::error("{}", m);
  return code;
}

} // namespace

int run_ps_train(const train_config& cfg, const ps_train_options& o,
                 int (*train_one)(const train_config&, step_strategy*, bool report)) {
  auto cons = actors::ps_consistency::parse(o.consistency);
  if (!cons) return fail(cons.err().message, 2);
  if (o.servers < 1 || o.workers < 1) return fail("--servers and --workers must be >= 1", 2);
  if (cfg.run.batch_size % o.workers != 0)
    return fail(cfg.source + ": run.batch_size " + std::to_string(cfg.run.batch_size) + " is not a multiple of " +
                    std::to_string(o.workers) + " workers",
                2);

  if (!actors::in_job()) { // start the job on this machine: servers, then workers
    launch_plan plan;
    for (int i = 0; i < o.servers + o.workers; ++i) {
      launch_node n;
      n.role = i < o.servers ? "server" : "worker";
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
  if (node.world_size() != o.servers + o.workers)
    return fail("the job has " + std::to_string(node.world_size()) + " nodes but --servers " +
                std::to_string(o.servers) + " --workers " + std::to_string(o.workers) + " need " +
                std::to_string(o.servers + o.workers));
  const bool server = node.rank() < o.servers;
  if (server != (node.self().role == transport::node_role::server))
    return fail("list the " + std::to_string(o.servers) + " server node(s) before the workers in the cluster file");

  int rc = 0;
  caf::actor shard;
  if (server) {
    actors::ps_shard_options so;
    so.shard = node.rank();
    so.shards = o.servers;
    so.workers = o.workers;
    so.consistency = *cons;
    shard = actors::spawn_ps_shard(node.system(), so);
    if (auto r = node.register_actor("ps-shard-" + std::to_string(node.rank()), shard); !r) return fail(r.err().message);
    for (const char* b : {"ps-ready", "ps-init"})
      if (status st = node.barrier(b); !st) rc = fail(st.err().message);
  } else {
    if (status st = node.barrier("ps-ready"); !st) return fail(st.err().message);
    std::vector<caf::actor> shards;
    for (int s = 0; s < o.servers; ++s) {
      auto a = node.lookup("ps-shard-" + std::to_string(s));
      if (!a) return fail(a.err().message);
      shards.push_back(*a);
    }
    const int w = node.rank() - o.servers;
    ps_strategy strategy(node, std::move(shards), w, o.workers);
    rc = train_one(cfg, &strategy, w == 0);
  }
  status done = rc == 0 ? node.barrier("ps-done") : status{};
  if (shard) caf::anon_send_exit(shard, caf::exit_reason::user_shutdown);
  if (!done) return fail(done.err().message);
  return rc;
}

} // namespace luoshu::app
