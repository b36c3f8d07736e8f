#include "graph/data/loader.hpp"

#include <algorithm>
#include <cstring>
#include <string>
#include <utility>

#include "graph/error.hpp"

namespace luoshu::data {

// --- shuffle_rng ------------------------------------------------------------

uint64_t shuffle_rng::splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

shuffle_rng::shuffle_rng(uint64_t seed) {
  for (auto& s : s_) s = splitmix64(seed);
}

namespace {
constexpr uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
} // namespace

uint64_t shuffle_rng::next() {
  const uint64_t result = rotl(s_[1] * 5, 7) * 9;
  const uint64_t t = s_[1] << 17;
  s_[2] ^= s_[0];
  s_[3] ^= s_[1];
  s_[1] ^= s_[2];
  s_[0] ^= s_[3];
  s_[2] ^= t;
  s_[3] = rotl(s_[3], 45);
  return result;
}

uint64_t shuffle_rng::below(uint64_t bound) {
  // Values below `threshold` (2^64 mod bound) would bias the modulo.
  const uint64_t threshold = (0 - bound) % bound;
  while (true) {
    uint64_t r = next();
    if (r >= threshold) return r % bound;
  }
}

std::vector<int64_t> epoch_permutation(int64_t n, uint64_t seed, int64_t epoch) {
  std::vector<int64_t> order(static_cast<size_t>(std::max<int64_t>(n, 0)));
  for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int64_t>(i);
  uint64_t state = seed;
  shuffle_rng rng(shuffle_rng::splitmix64(state) ^ static_cast<uint64_t>(epoch));
  for (size_t i = order.size(); i > 1; --i) {
    size_t j = static_cast<size_t>(rng.below(i));
    std::swap(order[i - 1], order[j]);
  }
  return order;
}

// --- loader -----------------------------------------------------------------

namespace {

/// Bytes of one example: the product of all dims but the first.
size_t row_bytes(const tensor& t) {
  size_t bytes = size_of(t.type());
  for (int i = 1; i < t.rank(); ++i) bytes *= static_cast<size_t>(t.dim(i));
  return bytes;
}

/// Rows order[begin .. begin + count) of `t`, stacked.
tensor gather_rows(const tensor& t, const std::vector<int64_t>& order, int64_t begin, int64_t count) {
  std::vector<int64_t> dims = t.shape().dims();
  dims[0] = count;
  tensor out(t.type(), shape(std::move(dims)));
  const size_t bytes = row_bytes(t);
  const auto* src = static_cast<const char*>(t.raw());
  auto* dst = static_cast<char*>(out.raw());
  for (int64_t k = 0; k < count; ++k) {
    const auto row = static_cast<size_t>(order[static_cast<size_t>(begin + k)]);
    std::memcpy(dst + static_cast<size_t>(k) * bytes, src + row * bytes, bytes);
  }
  return out;
}

} // namespace

loader::loader(std::shared_ptr<const dataset> d, loader_options o)
    : data_(std::move(d)), options_(o) {
  if (!data_) throw luoshu_error("loader: the dataset is null");
  const std::string what = "loader: dataset '" + data_->source + "'";
  if (options_.batch_size <= 0)
    throw luoshu_error("loader: batch_size must be positive, got " +
                       std::to_string(options_.batch_size));
  if (options_.prefetch < 0)
    throw luoshu_error("loader: prefetch must be >= 0 (0 = synchronous), got " +
                       std::to_string(options_.prefetch));
  const dataset& ds = *data_;
  if (!ds.features.defined() || ds.features.rank() == 0)
    throw luoshu_error(what + " has no features (expected a [n, ...] tensor)");
  const int64_t n = ds.size();
  if (n == 0) throw luoshu_error(what + " is empty");
  if (!ds.labels.defined() || ds.labels.rank() == 0 || ds.labels.dim(0) != n)
    throw luoshu_error(what + " has " + std::to_string(n) + " feature rows but labels of shape " +
                       (ds.labels.defined() ? ds.labels.shape().to_string()
                                            : std::string("<undefined>")));
  if (ds.ids.defined() && (ds.ids.rank() == 0 || ds.ids.dim(0) != n))
    throw luoshu_error(what + " has " + std::to_string(n) + " feature rows but ids of shape " +
                       ds.ids.shape().to_string());
  if (ds.features.device() != device::cpu() || ds.labels.device() != device::cpu() ||
      (ds.ids.defined() && ds.ids.device() != device::cpu()))
    throw luoshu_error(what + " is not in host memory");
  if (options_.drop_last && options_.batch_size > n)
    throw luoshu_error("loader: drop_last with batch_size " + std::to_string(options_.batch_size) +
                       " above the " + std::to_string(n) + " examples of dataset '" + ds.source +
                       "' leaves no batches");
  batches_ = options_.drop_last ? n / options_.batch_size
                                : (n + options_.batch_size - 1) / options_.batch_size;
}

loader::~loader() { stop_producer(); }

void loader::start_epoch(int64_t epoch) {
  stop_producer();
  const int64_t n = data_->size();
  if (options_.shuffle) {
    order_ = epoch_permutation(n, options_.seed, epoch);
  } else {
    order_.resize(static_cast<size_t>(n));
    for (size_t i = 0; i < order_.size(); ++i) order_[i] = static_cast<int64_t>(i);
  }
  started_ = true;
  next_index_ = 0;
  if (options_.prefetch > 0) producer_ = std::thread([this] { produce(); });
}

std::optional<batch> loader::next() {
  if (!started_) start_epoch(0);
  if (options_.prefetch == 0) {
    if (next_index_ >= batches_) return std::nullopt;
    return make_batch(next_index_++);
  }
  std::unique_lock lock(mu_);
  cv_.wait(lock, [&] { return !ready_.empty() || done_; });
  if (!ready_.empty()) {
    batch b = std::move(ready_.front());
    ready_.pop_front();
    lock.unlock();
    cv_.notify_all();
    return b;
  }
  if (failure_) std::rethrow_exception(std::exchange(failure_, nullptr));
  return std::nullopt;
}

batch loader::make_batch(int64_t index) const {
  const dataset& ds = *data_;
  const int64_t begin = index * options_.batch_size;
  const int64_t count = std::min(options_.batch_size, ds.size() - begin);
  batch b{gather_rows(ds.features, order_, begin, count), gather_rows(ds.labels, order_, begin, count),
          index, {}};
  if (ds.ids.defined()) b.ids = gather_rows(ds.ids, order_, begin, count);
  return b;
}

void loader::produce() {
  try {
    const auto capacity = static_cast<size_t>(options_.prefetch);
    for (int64_t i = 0; i < batches_; ++i) {
      {
        // Reserve a slot first, so at most `prefetch` batches exist ahead.
        std::unique_lock lock(mu_);
        cv_.wait(lock, [&] { return stop_ || ready_.size() < capacity; });
        if (stop_) return;
      }
      batch b = make_batch(i);
      {
        std::lock_guard lock(mu_);
        if (stop_) return;
        ready_.push_back(std::move(b));
      }
      cv_.notify_all();
    }
  } catch (...) {
    std::lock_guard lock(mu_);
    failure_ = std::current_exception();
  }
  {
    std::lock_guard lock(mu_);
    done_ = true;
  }
  cv_.notify_all();
}

void loader::stop_producer() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (producer_.joinable()) producer_.join();
  std::lock_guard lock(mu_);
  stop_ = false;
  done_ = false;
  failure_ = nullptr;
  ready_.clear();
}

} // namespace luoshu::data
