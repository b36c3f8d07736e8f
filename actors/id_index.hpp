#pragma once
// A map from 64-bit row ids to positions, for the parameter server's hot
// paths (a shard's rows of a sparse table, the client's deduplication of a
// request's keys, BSP's sums of held pushes): open addressing with linear
// probing in one flat array, so a lookup costs one probe sequence and an
// insert never allocates a node (std::unordered_map allocates one per key).
// A slot is 16 bytes (an id and its position; a negative position marks it
// empty), at most half of them used: 32 bytes or less per id. Grows by
// doubling at half load; nothing is ever erased (clear() empties it all).
// Positions are >= 0.

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "ops/random.hpp"

namespace luoshu::actors {

class id_index {
public:
  id_index() = default;
  explicit id_index(size_t expected) { reserve(expected); }

  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }

  /// Room for `n` ids without growing.
  void reserve(size_t n) {
    size_t cap = 16;
    while (cap < 2 * n) cap *= 2;
    if (cap > slots_.size()) rehash(cap);
  }

  /// The position stored for `id`, or null.
  const int64_t* find(uint64_t id) const {
    if (slots_.empty()) return nullptr;
    for (size_t i = home(id);; i = (i + 1) & mask_) {
      const slot& s = slots_[i];
      if (s.pos < 0) return nullptr;
      if (s.id == id) return &s.pos;
    }
  }

  /// Stores `pos` (>= 0) for `id` unless it has a position already.
  /// Returns the stored position and whether it is new.
  std::pair<int64_t, bool> try_emplace(uint64_t id, int64_t pos) {
    if (pos < 0) throw std::invalid_argument("id_index: position " + std::to_string(pos) + " is negative");
    if (2 * (size_ + 1) > slots_.size()) rehash(slots_.empty() ? 16 : 2 * slots_.size());
    for (size_t i = home(id);; i = (i + 1) & mask_) {
      slot& s = slots_[i];
      if (s.pos < 0) {
        s = {id, pos};
        ++size_;
        return {pos, true};
      }
      if (s.id == id) return {s.pos, false};
    }
  }

  void clear() {
    slots_.clear();
    mask_ = 0;
    size_ = 0;
  }

private:
  struct slot {
    uint64_t id = 0;
    int64_t pos = -1; ///< -1: empty
  };

  /// Mixed first, so that consecutive or strided ids still spread.
  size_t home(uint64_t id) const { return static_cast<size_t>(ops::mix64(id)) & mask_; }

  void rehash(size_t cap) {
    std::vector<slot> old;
    old.swap(slots_);
    slots_.assign(cap, slot{});
    mask_ = cap - 1;
    size_ = 0;
    for (const slot& s : old)
      if (s.pos >= 0) try_emplace(s.id, s.pos);
  }

  std::vector<slot> slots_;
  size_t mask_ = 0;
  size_t size_ = 0;
};

} // namespace luoshu::actors
