#include "transport/bulk/buffer_pool.hpp"

#include <iterator>
#include <utility>

namespace luoshu::transport::bulk {

buffer_pool::buffer_pool(size_t max_bytes, size_t min_bytes) : max_bytes_(max_bytes), min_bytes_(min_bytes) {}

std::vector<char> buffer_pool::find(size_t n) {
  std::lock_guard lock(mu_);
  if (n < min_bytes_) {
    ++stats_.misses;
    return {};
  }
  // The smallest capacity that fits, up to 1/8 more than asked for (enough
  // for shapes that vary a little, without pinning a huge buffer to a small
  // tensor); among equal capacities the most recently returned one (last in
  // its equal range), whose bytes are most likely still in cache.
  const size_t limit = n + n / 8;
  auto first = by_capacity_.lower_bound(n);
  if (first == by_capacity_.end() || first->first > limit) {
    ++stats_.misses;
    return {};
  }
  auto best = std::prev(by_capacity_.upper_bound(first->first));
  ++stats_.hits;
  std::vector<char> out = std::move(*best->second);
  stats_.kept_bytes -= best->first;
  --stats_.kept_buffers;
  lru_.erase(best->second);
  by_capacity_.erase(best);
  return out;
}

std::vector<char> buffer_pool::take_sized(size_t n) {
  std::vector<char> b = find(n);
  // A kept buffer that was emptied (a sent one) is zero-filled up to n here:
  // still cheaper than a fresh mapping, which is zero-filled and faulted in.
  b.resize(n);
  return b;
}

std::vector<char> buffer_pool::take_empty(size_t n) {
  std::vector<char> b = find(n);
  b.clear();
  b.reserve(n);
  return b;
}

void buffer_pool::give(std::vector<char>&& b) {
  const size_t cap = b.capacity();
  if (cap < min_bytes_ || cap > max_bytes_) return; // freed when b goes
  std::lock_guard lock(mu_);
  while (stats_.kept_bytes + cap > max_bytes_ && !lru_.empty()) {
    auto& oldest = lru_.back();
    const size_t c = oldest.capacity();
    for (auto [i, e] = by_capacity_.equal_range(c); i != e; ++i)
      if (&*i->second == &oldest) {
        by_capacity_.erase(i);
        break;
      }
    stats_.kept_bytes -= c;
    --stats_.kept_buffers;
    lru_.pop_back();
  }
  lru_.push_front(std::move(b));
  by_capacity_.emplace(cap, lru_.begin());
  stats_.kept_bytes += cap;
  ++stats_.kept_buffers;
}

buffer_pool::stats buffer_pool::get_stats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

} // namespace luoshu::transport::bulk
