#include "apps/bench/baseline_run.hpp"

#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>

#ifndef LUOSHU_SOURCE_DIR
#define LUOSHU_SOURCE_DIR "."
#endif

namespace luoshu::bench {

std::string default_python() {
  if (const char* p = std::getenv("LUOSHU_BENCH_PYTHON")) return p;
  return std::string(LUOSHU_SOURCE_DIR) + "/.venv-bench/bin/python";
}

std::vector<nlohmann::json> run_json_lines(const std::string& cmd, std::string& error) {
  std::vector<nlohmann::json> lines;
  FILE* f = popen((cmd + " 2>/dev/null").c_str(), "r");
  if (!f) {
    error = "could not start " + cmd;
    return lines;
  }
  std::string out;
  char buf[4096];
  while (fgets(buf, sizeof buf, f)) out += buf;
  int rc = pclose(f);
  for (size_t s = 0, e; s < out.size(); s = e + 1) {
    e = out.find('\n', s);
    if (e == std::string::npos) e = out.size();
    std::string line = out.substr(s, e - s);
    if (line.empty() || line[0] != '{') continue;
    try {
      lines.push_back(nlohmann::json::parse(line));
    } catch (const std::exception& x) {
      error = std::string("unreadable output line: ") + x.what();
      return {};
    }
  }
  if (lines.empty()) error = "printed no result (exit status " + std::to_string(WEXITSTATUS(rc)) + ")";
  return lines;
}

nlohmann::json run_json_command(const std::string& cmd, const std::string& framework) {
  std::string error;
  auto lines = run_json_lines(cmd, error);
  if (!lines.empty()) return lines.back();
  nlohmann::json err;
  err["framework"] = framework;
  err["error"] = "baseline " + error;
  return err;
}

status write_json_report(const std::string& path, const nlohmann::json& report) {
  std::ofstream f(path);
  if (f) f << report.dump(2) << "\n";
  f.flush();
  if (!f) return error{"cannot write " + path};
  return {};
}

} // namespace luoshu::bench
