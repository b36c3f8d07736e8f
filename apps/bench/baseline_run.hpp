#pragma once
// Running a benchmark's baseline (or worker) processes that report results
// as JSON lines on stdout.

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace luoshu::bench {

/// The interpreter with the baselines' frameworks: $LUOSHU_BENCH_PYTHON, else
/// the repo's .venv-bench.
std::string default_python();
/// Runs a shell command and returns its last stdout line that starts with
/// '{', parsed; on failure an object with "framework" and "error".
nlohmann::json run_json_command(const std::string& cmd, const std::string& framework);
/// Every JSON line `cmd` prints on stdout (stderr dropped); empty with
/// `error` set when it printed none or an unreadable one.
std::vector<nlohmann::json> run_json_lines(const std::string& cmd, std::string& error);

} // namespace luoshu::bench
