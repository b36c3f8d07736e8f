#include "transport/bulk/shm_slots.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <random>
#include <utility>

namespace luoshu::transport::bulk {

namespace {

constexpr uint64_t slots_magic = 0x534d48534f554c31; // "1LUOSHMS" read as little-endian bytes
constexpr size_t line = 64;
// A slot's flag: free, taken by the writer (being filled), or full (its
// bytes published for the reader).
constexpr uint32_t slot_free = 0, slot_taken = 1, slot_full = 2;
constexpr size_t page = 4096;

struct header {
  uint64_t magic;
  uint64_t nonce;
  uint32_t slots;
  uint32_t reserved;
  uint64_t slot_bytes;
};
static_assert(sizeof(header) <= line);
static_assert(std::atomic_ref<uint32_t>::is_always_lock_free, "slot flags must be address-free atomics");

size_t data_offset(uint32_t slots) { return (line + size_t{slots} * line + page - 1) / page * page; }

std::string errno_text(int e) { return std::strerror(e); }

/// A name only create() makes: "/luoshu-" then digits, hex and '-'.
bool valid_name(const std::string& n) {
  static const std::string prefix = "/luoshu-";
  if (n.size() <= prefix.size() || n.size() > 64 || n.compare(0, prefix.size(), prefix) != 0) return false;
  for (size_t i = prefix.size(); i < n.size(); ++i) {
    const char c = n[i];
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || c == '-')) return false;
  }
  return true;
}

/// Exactly what create() makes: "/luoshu-", a process id, '-', 16 hex digits.
bool created_name(const std::string& n) {
  if (!valid_name(n)) return false;
  const size_t dash = n.find('-', 8);
  if (dash == std::string::npos || dash == 8 || dash > 18 || n.size() != dash + 17) return false;
  for (size_t i = 8; i < dash; ++i)
    if (n[i] < '0' || n[i] > '9') return false;
  return n.find('-', dash + 1) == std::string::npos;
}

/// Unmaps and closes on every early return.
struct mapping {
  void* base = MAP_FAILED;
  size_t bytes = 0;
  int fd = -1;
  ~mapping() {
    if (base != MAP_FAILED) ::munmap(base, bytes);
    if (fd >= 0) ::close(fd);
  }
};

} // namespace

static std::string limits() {
  return "1 to " + std::to_string(shm_slots::max_slots) + " slots of 1 to " + std::to_string(shm_slots::max_slot_bytes) +
         " bytes, at most " + std::to_string(shm_slots::max_total_bytes) + " bytes in all";
}

size_t shm_slots::remove_stale(const std::string& dir, std::chrono::seconds min_age) {
  namespace fs = std::filesystem;
  std::error_code ec;
  size_t removed = 0;
  const auto now = std::chrono::system_clock::now();
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    std::string n = it->path().filename().string();
    n.insert(n.begin(), '/'); // as shm_open names it (not "/" + ...: GCC 12 warns falsely)
    if (!created_name(n)) continue;
    // Only this user's plain files, opened without following a link.
    const int fd = ::open(it->path().c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) continue;
    struct stat st {};
    const bool ours = ::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_uid == ::geteuid();
    const auto written = std::chrono::system_clock::from_time_t(st.st_mtime);
    // A live writer holds a shared lock on it (whatever its PID namespace);
    // the age covers the moment between a writer's shm_open and its lock.
    if (ours && now - written >= min_age && ::flock(fd, LOCK_EX | LOCK_NB) == 0 && ::unlink(it->path().c_str()) == 0)
      ++removed;
    ::close(fd);
  }
  return removed;
}

result<std::unique_ptr<shm_slots>> shm_slots::create(uint32_t slots, uint64_t slot_bytes) {
  const uint64_t stride = (slot_bytes + page - 1) / page * page; // whole pages, as open() checks them
  if (slots == 0 || slots > max_slots || slot_bytes == 0 || stride > max_slot_bytes || stride * slots > max_total_bytes)
    return error{"shared-memory slots: " + std::to_string(slots) + " slots of " + std::to_string(slot_bytes) +
                 " bytes are outside the limits (" + limits() + ")"};
  const size_t bytes = data_offset(slots) + static_cast<size_t>(stride) * slots;
  remove_stale();
  std::random_device rd;
  const uint64_t nonce = (uint64_t{rd()} << 32) ^ rd();
  char suffix[40];
  std::snprintf(suffix, sizeof suffix, "%ld-%016llx", static_cast<long>(::getpid()),
                static_cast<unsigned long long>((uint64_t{rd()} << 32) ^ rd()));
  const std::string name = std::string("/luoshu-") + suffix;
  mapping m;
  m.fd = ::shm_open(name.c_str(), O_RDWR | O_CREAT | O_EXCL, 0600);
  if (m.fd < 0) return error{"shared-memory slots: cannot create " + name + ": " + errno_text(errno)};
  // Held while this writer lives: remove_stale leaves locked objects alone.
  if (::flock(m.fd, LOCK_SH | LOCK_NB) != 0) {
    const int e = errno;
    ::shm_unlink(name.c_str());
    return error{"shared-memory slots: cannot lock " + name + ": " + errno_text(e)};
  }
  auto fail = [&](const std::string& what, int e) -> result<std::unique_ptr<shm_slots>> {
    ::shm_unlink(name.c_str());
    return error{"shared-memory slots: " + what + " " + name + " (" + std::to_string(bytes) + " bytes): " +
                 errno_text(e)};
  };
  // Reserved now, so that a full /dev/shm is an error here and not a SIGBUS
  // on first touch.
  if (int e = ::posix_fallocate(m.fd, 0, static_cast<off_t>(bytes)); e != 0) return fail("cannot reserve", e);
  m.bytes = bytes;
  m.base = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, m.fd, 0);
  if (m.base == MAP_FAILED) return fail("cannot map", errno);
  auto s = adopt(std::exchange(m.base, MAP_FAILED), bytes, name, true, nonce, slots, stride);
  s->lock_fd_ = std::exchange(m.fd, -1);
  for (uint32_t k = 0; k < slots; ++k) s->flag(static_cast<int>(k)).store(slot_free, std::memory_order_relaxed);
  auto* h = static_cast<header*>(s->base_);
  h->nonce = nonce;
  h->slots = slots;
  h->reserved = 0;
  h->slot_bytes = stride;
  std::atomic_thread_fence(std::memory_order_release);
  h->magic = slots_magic;
  return s;
}

result<std::unique_ptr<shm_slots>> shm_slots::open(const std::string& name, uint64_t nonce, uint32_t slots,
                                                   uint64_t slot_bytes) {
  if (!valid_name(name)) return error{"shared-memory slots: '" + name.substr(0, 80) + "' is not a slot name"};
  if (slots == 0 || slots > max_slots || slot_bytes == 0 || slot_bytes > max_slot_bytes ||
      slot_bytes % page != 0 || slot_bytes * slots > max_total_bytes)
    return error{"shared-memory slots: " + name + " announces " + std::to_string(slots) + " slots of " +
                 std::to_string(slot_bytes) + " bytes, outside the limits (" + limits() + ", whole pages)"};
  const size_t bytes = data_offset(slots) + static_cast<size_t>(slot_bytes) * slots;
  mapping m;
  m.fd = ::shm_open(name.c_str(), O_RDWR, 0);
  if (m.fd < 0) return error{"shared-memory slots: cannot open " + name + ": " + errno_text(errno)};
  struct stat st{};
  if (::fstat(m.fd, &st) != 0) return error{"shared-memory slots: cannot stat " + name + ": " + errno_text(errno)};
  if (static_cast<uint64_t>(st.st_size) != bytes)
    return error{"shared-memory slots: " + name + " has " + std::to_string(st.st_size) + " bytes, expected " +
                 std::to_string(bytes)};
  m.bytes = bytes;
  m.base = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, m.fd, 0);
  if (m.base == MAP_FAILED) return error{"shared-memory slots: cannot map " + name + ": " + errno_text(errno)};
  const auto* h = static_cast<const header*>(m.base);
  if (h->magic != slots_magic || h->nonce != nonce || h->slots != slots || h->slot_bytes != slot_bytes)
    return error{"shared-memory slots: " + name + " does not hold what its writer announced (another host's "
                 "object of the same name, or a corrupt announcement)"};
  std::atomic_thread_fence(std::memory_order_acquire);
  ::shm_unlink(name.c_str()); // both ends are attached: nothing stays in /dev/shm
  return adopt(std::exchange(m.base, MAP_FAILED), bytes, name, false, nonce, slots, slot_bytes);
}

std::unique_ptr<shm_slots> shm_slots::adopt(void* base, size_t bytes, const std::string& name, bool owner,
                                            uint64_t nonce, uint32_t slots, uint64_t slot_bytes) {
  std::unique_ptr<shm_slots> s(new shm_slots());
  s->name_ = name;
  s->owner_ = owner;
  s->nonce_ = nonce;
  s->slots_ = slots;
  s->slot_bytes_ = slot_bytes;
  s->base_ = base;
  s->mapped_ = bytes;
  s->data_ = static_cast<char*>(base) + data_offset(slots);
  return s;
}

shm_slots::~shm_slots() {
  if (base_) ::munmap(base_, mapped_);
  if (owner_) ::shm_unlink(name_.c_str()); // the reader never came, or went first: ENOENT is fine
  if (lock_fd_ >= 0) ::close(lock_fd_);
}

std::atomic_ref<uint32_t> shm_slots::flag(int s) const {
  return std::atomic_ref<uint32_t>(
      *reinterpret_cast<uint32_t*>(static_cast<char*>(base_) + line + static_cast<size_t>(s) * line));
}

int shm_slots::acquire() {
  std::lock_guard lock(mu_);
  const int s = static_cast<int>(next_);
  if (flag(s).load(std::memory_order_acquire) != slot_free) return -1; // syncs with the reader's release()
  flag(s).store(slot_taken, std::memory_order_relaxed);
  next_ = (next_ + 1) % slots_;
  return s;
}

void shm_slots::publish(int s) {
  if (s >= 0 && static_cast<uint32_t>(s) < slots_) flag(s).store(slot_full, std::memory_order_release);
}

bool shm_slots::full(int s) const {
  return s >= 0 && static_cast<uint32_t>(s) < slots_ && flag(s).load(std::memory_order_acquire) == slot_full;
}

void shm_slots::release(int s) {
  if (s >= 0 && static_cast<uint32_t>(s) < slots_) flag(s).store(slot_free, std::memory_order_release);
}

} // namespace luoshu::transport::bulk
