#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

namespace luoshu {

/// Dimension sizes, outermost first. While a graph is built a dimension may
/// be unknown (-1, e.g. the batch size); at run time every shape is known.
class shape {
public:
  static constexpr int64_t unknown = -1;

  shape() = default;
  shape(std::initializer_list<int64_t> dims) : dims_(dims) {}
  explicit shape(std::vector<int64_t> dims) : dims_(std::move(dims)) {}

  int rank() const { return static_cast<int>(dims_.size()); }
  int64_t operator[](int i) const { return dims_[static_cast<size_t>(i)]; }
  int64_t& operator[](int i) { return dims_[static_cast<size_t>(i)]; }
  const std::vector<int64_t>& dims() const { return dims_; }
  std::vector<int64_t>& dims() { return dims_; }

  /// Whether every dimension is known.
  bool known() const;
  /// Element count; -1 if some dimension is unknown.
  int64_t numel() const;

  /// "[128, 784]", unknown dims as "?".
  std::string to_string() const;

  friend bool operator==(const shape&, const shape&) = default;

private:
  std::vector<int64_t> dims_;
};

/// Normalises a possibly negative axis against `rank`; throws luoshu_error
/// naming `what` when it is out of range.
int normalize_axis(int64_t axis, int rank, const char* what);

} // namespace luoshu
