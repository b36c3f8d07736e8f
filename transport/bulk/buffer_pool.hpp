#pragma once
// Reusable byte buffers for the bulk tensor lane.
//
// glibc serves allocations of 32 MiB and more with fresh mmaps, so a new
// 64 MiB buffer costs 16k page faults before the first byte arrives. The lane
// keeps large buffers once they are faulted in and hands them out again.
// Buffers are std::vector<char> because that is the type CAF 0.17's stream
// reads into and writes from (the lane swaps them in and out of CAF).
//
// A resource type shared by the lane's I/O actor and the tensors it hands out
// (a received tensor gives its buffer back when its last reference goes, on
// whatever thread that is), hence the mutex.

#include <cstddef>
#include <cstdint>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

namespace luoshu::transport::bulk {

class buffer_pool {
public:
  /// Keeps at most `max_bytes` of capacity; buffers under `min_bytes` are
  /// cheap to allocate and never kept.
  explicit buffer_pool(size_t max_bytes = size_t{1} << 30, size_t min_bytes = size_t{64} << 10);
  buffer_pool(const buffer_pool&) = delete;
  buffer_pool& operator=(const buffer_pool&) = delete;

  /// A buffer of exactly `n` bytes with unspecified contents: a kept one of
  /// about that capacity (no page faults, no zeroing when it still holds n
  /// bytes), else a new one.
  std::vector<char> take_sized(size_t n);
  /// An empty buffer with capacity >= n, to append to without reallocating.
  std::vector<char> take_empty(size_t n);
  /// Hands a buffer back; kept when large enough and within the budget
  /// (the least recently returned buffers go first).
  void give(std::vector<char>&& b);

  struct stats {
    uint64_t hits = 0;      ///< takes served from kept buffers
    uint64_t misses = 0;    ///< takes that allocated
    size_t kept_bytes = 0;  ///< capacity held now
    size_t kept_buffers = 0;
  };
  stats get_stats() const;

private:
  /// A kept buffer of about `n` bytes, or an empty vector.
  std::vector<char> find(size_t n);

  using lru_list = std::list<std::vector<char>>;
  mutable std::mutex mu_;
  size_t max_bytes_;
  size_t min_bytes_;
  lru_list lru_; ///< front: most recently given back
  std::multimap<size_t, lru_list::iterator> by_capacity_;
  stats stats_;
};

/// Bytes in a pooled buffer, handed back to their pool when destroyed.
/// Movable, not copyable.
class pooled_bytes {
public:
  pooled_bytes() = default;
  pooled_bytes(std::vector<char>&& b, std::shared_ptr<buffer_pool> pool) : bytes_(std::move(b)), pool_(std::move(pool)) {}
  pooled_bytes(pooled_bytes&& o) noexcept : bytes_(std::move(o.bytes_)), pool_(std::move(o.pool_)) { o.bytes_.clear(); }
  pooled_bytes& operator=(pooled_bytes&& o) noexcept {
    if (this != &o) {
      release();
      bytes_ = std::move(o.bytes_);
      pool_ = std::move(o.pool_);
      o.bytes_.clear();
    }
    return *this;
  }
  pooled_bytes(const pooled_bytes&) = delete;
  pooled_bytes& operator=(const pooled_bytes&) = delete;
  ~pooled_bytes() { release(); }

  char* data() { return bytes_.data(); }
  const char* data() const { return bytes_.data(); }
  size_t size() const { return bytes_.size(); }

private:
  void release() {
    if (pool_ && bytes_.capacity() != 0) pool_->give(std::move(bytes_));
    pool_.reset();
  }
  std::vector<char> bytes_;
  std::shared_ptr<buffer_pool> pool_;
};

} // namespace luoshu::transport::bulk
