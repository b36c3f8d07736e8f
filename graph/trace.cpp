#include "graph/trace.hpp"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace luoshu {

std::string json_quote(const std::string& s) {
  std::string o = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"': o += "\\\""; break;
      case '\\': o += "\\\\"; break;
      case '\n': o += "\\n"; break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          o += buf;
        } else {
          o += static_cast<char>(c);
        }
    }
  }
  return o + "\"";
}

trace_recorder::trace_recorder(int pid, std::string process_name) : pid_(pid) {
  events_.push_back("{\"name\":\"process_name\",\"ph\":\"M\",\"pid\":" + std::to_string(pid) +
                    ",\"args\":{\"name\":" + json_quote(process_name) + "}}");
}

int64_t trace_recorder::now_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

void trace_recorder::span(const std::string& name, const char* cat, int64_t begin_us, int64_t dur_us, int tid,
                          const std::string& args) {
  std::string e = "{\"name\":" + json_quote(name) + ",\"cat\":\"" + cat + "\",\"ph\":\"X\",\"ts\":" +
                  std::to_string(begin_us) + ",\"dur\":" + std::to_string(dur_us) + ",\"pid\":" +
                  std::to_string(pid_) + ",\"tid\":" + std::to_string(tid) + ",\"args\":{" + args + "}}";
  std::lock_guard<std::mutex> lock(mu_);
  events_.push_back(std::move(e));
}

void trace_recorder::instant(const std::string& name, const char* cat, int tid, const std::string& args) {
  std::string e = "{\"name\":" + json_quote(name) + ",\"cat\":\"" + cat + "\",\"ph\":\"i\",\"s\":\"t\",\"ts\":" +
                  std::to_string(now_us()) + ",\"pid\":" + std::to_string(pid_) + ",\"tid\":" +
                  std::to_string(tid) + ",\"args\":{" + args + "}}";
  std::lock_guard<std::mutex> lock(mu_);
  events_.push_back(std::move(e));
}

void trace_recorder::name_track(int tid, const std::string& name) {
  std::string e = "{\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":" + std::to_string(pid_) + ",\"tid\":" +
                  std::to_string(tid) + ",\"args\":{\"name\":" + json_quote(name) + "}}";
  std::lock_guard<std::mutex> lock(mu_);
  events_.push_back(std::move(e));
}

size_t trace_recorder::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return events_.size();
}

namespace {

status write_events(const std::vector<std::string>& events, const std::string& path) {
  std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary);
    if (!f) return error{path + ": cannot write the trace"};
    f << "{\"displayTimeUnit\":\"ms\",\"traceEvents\":[\n";
    for (size_t i = 0; i < events.size(); ++i) f << events[i] << (i + 1 < events.size() ? ",\n" : "\n");
    f << "]}\n";
    if (!f) return error{path + ": writing the trace failed"};
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) return error{path + ": " + ec.message()};
  return {};
}

} // namespace

status trace_recorder::write(const std::string& path) const {
  std::lock_guard<std::mutex> lock(mu_);
  return write_events(events_, path);
}

status trace_recorder::merge(const std::vector<std::string>& inputs, const std::string& output) {
  // Each input holds one event per line between the header and the footer.
  std::vector<std::string> events;
  for (const auto& in : inputs) {
    std::ifstream f(in);
    if (!f) return error{in + ": cannot read the trace"};
    std::string line;
    while (std::getline(f, line)) {
      if (line.empty() || line[0] != '{' || line.rfind("{\"displayTimeUnit\"", 0) == 0) continue;
      if (line.back() == ',') line.pop_back();
      events.push_back(line);
    }
  }
  return write_events(events, output);
}

} // namespace luoshu
