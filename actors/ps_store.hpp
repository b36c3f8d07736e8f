#pragma once
// The rows a parameter-server shard holds, and what it does with them:
// tables (dense row ranges or hashed rows, sparse rows made on first touch),
// server-side optimizers (the formulas of ops/update_rules.hpp, plus FTRL),
// server-side functions, and checkpoints. No CAF here: the ps_shard actor
// (actors/ps.hpp) owns one store and adds the protocol and consistency.
//
// Rows are addressed by global 64-bit ids. Which shard owns a row:
//   - range partitioning (dense tables): shard s of S owns rows
//     [rows * s / S, rows * (s + 1) / S);
//   - hash partitioning (sparse tables, or dense ones that ask for it):
//     shard mix64(id ^ salt(table)) % S.
// A row's initial value depends on (seed, table id, row id) only — not on
// the number of shards — and is drawn from the table's initializer over a
// row of shape [width] (fan-in = fan-out = width).

#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "graph/error.hpp"
#include "graph/tensor.hpp"
#include "transport/messages.hpp"

namespace luoshu::actors {

using transport::ps_table_spec;

/// The shard (of `shards`) that owns row `id` of table `t`.
int ps_shard_of(const ps_table_spec& t, uint64_t id, int shards);

/// A server-side function: runs on one shard over its rows of one table
/// (values as doubles, `width` per row; it may change them) and returns
/// this shard's partial result. The client adds the partials up element by
/// element (so a function returns sums: norms come back squared).
struct ps_rows {
  std::span<double> values; ///< rows * width values, row-major (a copy; written back if changed)
  int64_t rows = 0;
  int64_t width = 0;
  bool changed = false; ///< set when the function wrote `values`
};
using ps_function = std::function<result<std::vector<double>>(ps_rows& rows, const std::vector<double>& args)>;

/// Registers `fn` under `name` for every shard of this process (before
/// shards start). Built in: "sum_squares" -> {sum of squares}, "row_count"
/// -> {rows held}, "scale" (args {f}) multiplies every row by f -> {rows},
/// "clip_rows" (args {c}) scales rows whose L2 norm exceeds c down to c ->
/// {rows clipped}.
void register_ps_function(const std::string& name, ps_function fn);

class ps_store {
public:
  ps_store(int shard, int shards);
  ~ps_store();
  ps_store(const ps_store&) = delete;
  ps_store& operator=(const ps_store&) = delete;

  int shard() const { return shard_; }
  int shards() const { return shards_; }

  /// Adds a table. Creating a table that exists with the same spec is a
  /// no-op; with another spec, an error naming both.
  status create(const ps_table_spec& spec);
  const ps_table_spec* spec(uint32_t table) const;

  /// The rows `ids` ([ids, width], the table's dtype). Every id must belong
  /// to this shard and be below the table's bound; sparse rows are made on
  /// first touch. Errors name the table and the id.
  result<tensor> pull(uint32_t table, std::span<const uint64_t> ids);
  /// Applies gradient rows [ids, width] (f32 or f64), times `scale`, with
  /// the table's optimizer; each id at most once per call.
  status push(uint32_t table, std::span<const uint64_t> ids, const tensor& grads, double scale = 1);
  /// Checks that every id belongs here (making sparse rows on first touch),
  /// as pull does, without copying anything out.
  status touch(uint32_t table, std::span<const uint64_t> ids);
  /// Sets rows to `values` [ids, width] (no optimizer; slots untouched).
  status assign(uint32_t table, std::span<const uint64_t> ids, const tensor& values);
  /// Runs the server-side function `name` over this shard's rows of `table`.
  result<std::vector<double>> call(const std::string& name, uint32_t table, const std::vector<double>& args);

  /// Writes every table (rows, ids, optimizer slots and step counters) to
  /// DIR/shard-<s>-of-<S>.ckpt, atomically; load() reads it back, replacing
  /// what the store holds.
  status save(const std::string& dir) const;
  status load(const std::string& dir);
  static std::string checkpoint_path(const std::string& dir, int shard, int shards);

  /// Rows materialised for `table` on this shard.
  int64_t rows_held(uint32_t table) const;

  struct table;

private:
  result<table*> find(uint32_t id, const char* what);
  int shard_, shards_;
  std::map<uint32_t, std::unique_ptr<table>> tables_;
};

} // namespace luoshu::actors
