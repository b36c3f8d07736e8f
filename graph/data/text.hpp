#pragma once
// Helpers shared by the text-format readers (csv.cpp, libsvm.cpp, criteo.cpp).

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "graph/error.hpp"

namespace luoshu::data::text {

/// The whole file; errors name the path (missing, a directory, unreadable).
result<std::string> read_file(const std::string& path);

/// The whole of `s` as a double, or nullopt (a leading '+' is allowed).
std::optional<double> parse_double(std::string_view s);

/// The whole of `s` as an int64, or nullopt (a leading '+' is allowed).
std::optional<int64_t> parse_int(std::string_view s);

} // namespace luoshu::data::text
