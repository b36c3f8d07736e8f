#pragma once
// A timeline recorder in the Chrome/Perfetto trace-event JSON format: ops
// executed, messages sent and received, waits. Open the file in
// https://ui.perfetto.dev or chrome://tracing.
//
// Several threads of a process (actors) may record into one recorder; the
// events are appended under a mutex — tracing is a diagnostic edge, not a
// hot path when off.

#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "graph/error.hpp"

namespace luoshu {

class trace_recorder {
public:
  /// `pid` labels this process in a merged timeline (e.g. its rank).
  trace_recorder(int pid, std::string process_name);

  /// Microseconds on a monotonic clock shared by every recorder on the host.
  static int64_t now_us();

  /// A span [begin, begin + dur) on track `tid` of category `cat`;
  /// `args` is a JSON object body without braces ("\"bytes\": 4096") or empty.
  void span(const std::string& name, const char* cat, int64_t begin_us, int64_t dur_us, int tid,
            const std::string& args = {});
  /// A point in time.
  void instant(const std::string& name, const char* cat, int tid, const std::string& args = {});
  /// Names a track (thread) in the viewer.
  void name_track(int tid, const std::string& name);

  size_t size() const;
  /// Writes {"traceEvents": [...]} to `path` (atomically).
  status write(const std::string& path) const;

  /// Merges trace files (each written by write()) into one.
  static status merge(const std::vector<std::string>& inputs, const std::string& output);

private:
  int pid_;
  mutable std::mutex mu_;
  std::vector<std::string> events_; ///< serialised JSON objects
};

/// A string as a JSON string literal (quotes included).
std::string json_quote(const std::string& s);

} // namespace luoshu
