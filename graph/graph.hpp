#pragma once
// The graph IR: an append-only list of nodes whose inputs always precede
// them (so node order is a topological order), and `expr`, the handle the
// builder API passes around.

#include <deque>
#include <string>
#include <unordered_map>
#include <vector>

#include "graph/error.hpp"
#include "ops/op.hpp"

namespace luoshu {

using node_id = int32_t;

struct node {
  op_kind op = op_kind::placeholder;
  std::string name;
  std::vector<node_id> inputs;
  op_attrs attrs;
  dtype type = dtype::f32; ///< inferred output dtype
  luoshu::shape shape;     ///< inferred output shape (dims may be unknown)
  /// For nodes that gradients() added: the forward node whose gradient they
  /// compute (placement puts them together); -1 otherwise.
  node_id origin = -1;
};

class graph;

/// A node's output as seen by the builder. Cheap to copy.
class expr {
public:
  expr() = default;
  expr(graph* g, node_id id) : g_(g), id_(id) {}

  bool valid() const { return g_ != nullptr; }
  graph& g() const { return *g_; }
  node_id id() const { return id_; }
  const node& get() const;
  dtype type() const { return get().type; }
  const luoshu::shape& shape() const { return get().shape; }
  const std::string& name() const { return get().name; }
  /// Renames the node (names must be unique within the graph).
  expr named(const std::string& name) const;

  friend bool operator==(const expr& a, const expr& b) { return a.g_ == b.g_ && a.id_ == b.id_; }

private:
  graph* g_ = nullptr;
  node_id id_ = -1;
};

/// A dataflow graph. Not copyable (expressions point into it).
class graph {
public:
  graph() = default;
  graph(const graph&) = delete;
  graph& operator=(const graph&) = delete;
  graph(graph&&) = delete;

  /// An input fed at run time; dims may be shape::unknown.
  expr placeholder(const std::string& name, dtype t, luoshu::shape s);
  /// A trainable (or not) variable whose value lives in a variable_store.
  expr variable(const std::string& name, luoshu::shape s, initializer init,
                dtype t = dtype::f32, bool trainable = true);
  /// A constant tensor.
  expr constant(tensor value, const std::string& name = {});
  /// A 0-d constant of dtype t.
  expr scalar(double v, dtype t = dtype::f32);

  /// Adds a node, inferring its dtype and shape. Throws luoshu_error naming
  /// the op, the node and every input's name and shape on a mismatch.
  expr add(op_kind op, std::vector<node_id> inputs, op_attrs attrs = {},
           const std::string& name = {});

  size_t size() const { return nodes_.size(); }
  const node& at(node_id id) const { return nodes_.at(static_cast<size_t>(id)); }
  expr operator[](node_id id) { return expr(this, id); }
  /// The node called `name`, or an invalid expr.
  expr find(const std::string& name);
  void rename(node_id id, const std::string& name);
  /// Marks nodes [first, size()) as computing the gradient of `origin`.
  void set_origin(node_id first, node_id origin);

  /// Variable nodes, in creation order; `trainable_only` skips optimizer slots etc.
  std::vector<expr> variables(bool trainable_only = false);
  std::vector<expr> placeholders();

  /// Re-runs inference on node `id` with concrete input shapes (the executor
  /// uses it at run time); throws like add().
  type_shape infer(node_id id, std::span<const type_shape> in) const;

  /// A human-readable listing, one node a line.
  std::string to_string() const;

private:
  std::string unique_name(const std::string& base);
  [[noreturn]] void fail(const node& n, std::span<const type_shape> in, const std::string& why) const;

  // A deque: adding a node never moves the others, so a `const node&`
  // (e.g. in a gradient function that adds nodes) stays valid.
  std::deque<node> nodes_;
  std::unordered_map<std::string, node_id> by_name_;
  std::unordered_map<std::string, int> name_counters_;
};

} // namespace luoshu
