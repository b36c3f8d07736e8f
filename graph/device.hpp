#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace luoshu {

/// Where a tensor lives: "cpu" or "cuda:N".
struct device {
  enum class kind_t : uint8_t { cpu, cuda };
  kind_t kind = kind_t::cpu;
  int index = 0;

  static device cpu() { return {}; }
  static device cuda(int i) { return {kind_t::cuda, i}; }

  std::string to_string() const;
  /// Parses "cpu", "cuda", "cuda:1"; throws luoshu_error otherwise.
  static device parse(std::string_view s);

  friend bool operator==(const device&, const device&) = default;
};

} // namespace luoshu
