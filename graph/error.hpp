#pragma once
// Errors as values for the layers below CAF (graph/, ops/), plus the one
// exception type used at the edges (building a graph from user code,
// parsing user input) where a value cannot be threaded through an operator
// expression like `relu(matmul(x, w) + b)`.

#include <stdexcept>
#include <string>
#include <utility>
#include <variant>

namespace luoshu {

/// A failure with a message that names what went wrong and where.
struct error {
  std::string message;
};

/// Thrown by the graph builder and by user-input parsers; caught and turned
/// into an `error` value at API boundaries (executor, CLI).
class luoshu_error : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

/// A value or an error (std::expected-like; C++20 has none).
template <class T>
class result {
public:
  result(T value) : v_(std::move(value)) {}
  result(error err) : v_(std::move(err)) {}

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }

  T& value() & { check(); return std::get<0>(v_); }
  const T& value() const& { check(); return std::get<0>(v_); }
  T&& value() && { check(); return std::get<0>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  const error& err() const { return std::get<1>(v_); }

private:
  void check() const {
    if (!ok())
      throw luoshu_error(std::get<1>(v_).message);
  }
  std::variant<T, error> v_;
};

/// Success or an error.
class status {
public:
  status() = default;
  status(error err) : err_(std::move(err)), ok_(false) {}
  static status success() { return {}; }
  bool ok() const { return ok_; }
  explicit operator bool() const { return ok_; }
  const error& err() const { return err_; }

private:
  error err_;
  bool ok_ = true;
};

} // namespace luoshu
