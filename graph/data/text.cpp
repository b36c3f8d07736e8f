#include "graph/data/text.hpp"

#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>

namespace luoshu::data::text {

result<std::string> read_file(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) return error{path + ": cannot read: is a directory"};
  std::ifstream f(path, std::ios::binary);
  if (!f) return error{path + ": cannot open: " + std::strerror(errno)};
  std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  if (f.bad()) return error{path + ": read error"};
  return text;
}

namespace {

/// The whole of `s` as a T, or nullopt (a leading '+' is allowed).
template <class T>
std::optional<T> parse_whole(std::string_view s) {
  if (s.size() > 1 && s[0] == '+' && s[1] != '-') s.remove_prefix(1);
  T v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return v;
}

} // namespace

std::optional<double> parse_double(std::string_view s) { return parse_whole<double>(s); }

std::optional<int64_t> parse_int(std::string_view s) { return parse_whole<int64_t>(s); }

} // namespace luoshu::data::text
