#pragma once
// Running a benchmark's baseline (or worker) processes that report results
// as JSON lines on stdout, and writing a benchmark's JSON report.

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "graph/error.hpp"

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

/// Writes `report` (indented) to `path`; an error names the file when it
/// cannot be opened or written.
status write_json_report(const std::string& path, const nlohmann::json& report);

} // namespace luoshu::bench
