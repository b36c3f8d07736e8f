#pragma once
// Where variable values live between runs. A store belongs to one owner at
// a time (an executor, a compute actor, a PS shard); nothing shares it.

#include <map>
#include <string>

#include "graph/checkpoint.hpp"
#include "graph/graph.hpp"
#include "graph/tensor.hpp"

namespace luoshu {

/// A variable's first value from its initializer, drawn deterministically
/// from `seed` (and nothing else).
tensor initial_value(const initializer& init, dtype t, const shape& s, uint64_t seed);

class variable_store {
public:
  /// `seed` decides every initial value (each variable mixes in its name).
  explicit variable_store(uint64_t seed = 0) : seed_(seed) {}

  bool contains(const std::string& name) const { return vars_.count(name) != 0; }
  /// The value; throws luoshu_error if absent.
  const tensor& get(const std::string& name) const;
  /// Sets (or replaces) a value.
  void set(const std::string& name, tensor value);
  /// Values of every variable node in g that the store lacks, drawn from
  /// their initializers. Existing values are checked against the node's
  /// dtype and shape (an error names the variable and both shapes).
  status initialize(const graph& g);

  const std::map<std::string, tensor>& all() const { return vars_; }
  uint64_t seed() const { return seed_; }
  /// Writes every value (variables and optimizer slots) and `metadata` to
  /// a checkpoint file, atomically.
  status save(const std::string& path, std::map<std::string, std::string> metadata = {}) const;
  /// Replaces values with those in the checkpoint at `path` and returns its
  /// metadata. A name the store holds with another dtype or shape is an
  /// error naming it (and nothing is changed).
  result<std::map<std::string, std::string>> load(const std::string& path);

  /// Bytes held by all values.
  size_t bytes() const;

private:
  uint64_t seed_;
  std::map<std::string, tensor> vars_;
};

} // namespace luoshu
