#include "apps/luoshu/node_cmd.hpp"

#include <signal.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <thread>

#include "actors/coordinator.hpp"
#include "actors/node.hpp"

namespace luoshu::app {

namespace {
volatile sig_atomic_t g_stop = 0;
void on_signal(int) { g_stop = 1; }
} // namespace

int run_node(const node_cmd_options& o) {
  auto opts = actors::node_options_from_env();
  if (!opts) {
    spdlog::error("node: {}", opts.err().message);
    return 2;
  }
  auto n = actors::node::join(*opts);
  if (!n) {
    spdlog::error("node: {}", n.err().message);
    return n.err().message.find("refused") != std::string::npos ? 2 : 1;
  }
  std::printf("%s joined as rank %d of %d\n", (*n)->self().name.c_str(), (*n)->rank(), (*n)->world_size());
  std::fflush(stdout);
  for (int i = 0; i < o.barriers; ++i) {
    if (status st = (*n)->barrier("step-" + std::to_string(i)); !st) {
      spdlog::error("node rank {}: {}", (*n)->rank(), st.err().message);
      return 1;
    }
    if (o.sleep_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(o.sleep_ms));
  }
  std::printf("rank %d passed %d barrier(s)\n", (*n)->rank(), o.barriers);
  (*n)->leave();
  return 0;
}

int run_coordinator(const coordinator_cmd_options& o) {
  actors::coordinator_config cfg;
  cfg.world_size = o.world;
  cfg.token = o.token;
  if (cfg.token.empty() && !o.token_file.empty()) {
    std::ifstream f(o.token_file);
    if (!f || !std::getline(f, cfg.token)) {
      spdlog::error("coordinator: cannot read the token file {}", o.token_file);
      return 2;
    }
  }
  if (cfg.token.empty())
    if (const char* t = std::getenv("LUOSHU_TOKEN")) cfg.token = t;
  if (cfg.token.empty()) {
    spdlog::error("coordinator: no cluster token (--token, --token-file or LUOSHU_TOKEN)");
    return 2;
  }
  cfg.heartbeat_timeout = std::chrono::milliseconds(static_cast<int64_t>(o.heartbeat_timeout_s * 1000));
  cfg.heartbeat_interval = std::min(std::chrono::milliseconds(500), cfg.heartbeat_timeout / 4);
  cfg.join_timeout = std::chrono::milliseconds(static_cast<int64_t>(o.join_timeout_s * 1000));
  if (o.port < 0 || o.port > 65535) {
    spdlog::error("coordinator: --port must be 0..65535");
    return 2;
  }
  auto svc = actors::coordinator_service::start(cfg, o.host, static_cast<uint16_t>(o.port));
  if (!svc) {
    spdlog::error("coordinator: {}", svc.err().message);
    return 1;
  }
  spdlog::info("coordinator: listening on {}:{} for {} node(s)", o.host, (*svc)->port(), o.world);
  if (!o.port_file.empty()) {
    std::string tmp = o.port_file + ".tmp";
    std::ofstream(tmp) << (*svc)->port() << "\n";
    std::error_code ec;
    std::filesystem::rename(tmp, o.port_file, ec);
    if (ec) {
      spdlog::error("coordinator: cannot write {}: {}", o.port_file, ec.message());
      return 1;
    }
  }
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  for (;;) {
    auto out = (*svc)->wait(std::chrono::milliseconds(200));
    if (out == actors::coordinator_service::outcome::finished) {
      spdlog::info("coordinator: every node joined and left; done");
      return 0;
    }
    if (out == actors::coordinator_service::outcome::failed) {
      spdlog::error("coordinator: job failed: {}", (*svc)->failure());
      return 1;
    }
    if (g_stop) {
      spdlog::warn("coordinator: interrupted");
      return 130;
    }
  }
}

} // namespace luoshu::app
