#pragma once
// Shared-memory payload slots between two processes on one host: the bulk
// bytes of a one-way channel (the ring collectives' edge from rank r to
// rank r + 1) without the kernel's TCP copies. The messages that say which
// slot holds what still travel over the lane (lane.hpp); only the bytes move
// through here.
//
// One side creates the slots (the writer) and tells the other (the reader)
// their name and nonce; the reader opens them, checks the nonce (proof that
// both see the same memory, so the same host and /dev/shm) and unlinks the
// name, so nothing is left in /dev/shm once both ends are attached (the
// writer unlinks it too when it goes first, or the reader never came).
//
//   auto w = shm_slots::create(16, 512 << 10);     // writer
//   int s = w->acquire();                          // -1: the next slot is still full
//   std::memcpy(w->slot(s), src, n);
//   w->publish(s);                                 // then tell the reader "slot s"
//   auto r = shm_slots::open(name, nonce, 16, 512 << 10);   // reader
//   use(r->slot(s), n); r->release(s);             // the writer may reuse it
//
// A writer killed between create() and the reader's open() leaves its
// object; the next create() on the host removes it (remove_stale), knowing
// it from a live writer's by the flock a writer holds.
//
// A slot is the writer's from acquire(), full from publish() until the
// reader's release(); a writer
// that finds its next slot still full sends that payload some other way
// (it never waits: the two ends' I/O threads must not wait on each other).
// Slots are reused in order, as a ring.
//
// Layout: a 64-byte header (magic, nonce, slots, slot_bytes), one 64-byte
// line per slot holding its flag (a uint32 used through std::atomic_ref,
// lock-free and so address-free across processes), then
// the slots, each slot_bytes long and 4096-byte aligned.
//
// Not thread-safe in general: acquire() may be called from several threads
// (it takes a mutex); release() and the flags are atomic.

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include "graph/error.hpp"

namespace luoshu::transport::bulk {

class shm_slots {
public:
  /// Limits a reader accepts (a hostile or corrupt announcement names sizes).
  static constexpr uint32_t max_slots = 1024;
  static constexpr uint64_t max_slot_bytes = uint64_t{1} << 30;
  static constexpr uint64_t max_total_bytes = uint64_t{8} << 30;

  /// Makes `slots` slots of `slot_bytes` each in a fresh POSIX shared-memory
  /// object (/dev/shm/luoshu-PID-RANDOM), its pages reserved and faulted in.
  static result<std::unique_ptr<shm_slots>> create(uint32_t slots, uint64_t slot_bytes);
  /// Maps the object `name` made by create() and checks that it holds what
  /// the writer announced; unlinks the name on success.
  static result<std::unique_ptr<shm_slots>> open(const std::string& name, uint64_t nonce, uint32_t slots,
                                                 uint64_t slot_bytes);
  ~shm_slots();
  shm_slots(const shm_slots&) = delete;

  /// Unlinks the objects that create() made in `dir` (/dev/shm, where glibc
  /// keeps POSIX shared memory) whose writer is gone and that are older
  /// than `min_age`: a writer killed before its reader opened the slots
  /// leaves its object behind. A writer holds a shared flock on its object
  /// while it lives, so "gone" does not depend on process ids (reused, or
  /// from another PID namespace sharing /dev/shm). create() calls it, so
  /// such leftovers last until the next writer on the host. Only this
  /// user's regular files with create()'s exact name form are touched.
  /// Returns how many went.
  static size_t remove_stale(const std::string& dir = "/dev/shm",
                             std::chrono::seconds min_age = std::chrono::seconds(60));
  shm_slots& operator=(const shm_slots&) = delete;

  const std::string& name() const { return name_; }
  uint64_t nonce() const { return nonce_; }
  uint32_t slots() const { return slots_; }
  uint64_t slot_bytes() const { return slot_bytes_; }

  /// Writer: the next slot in ring order, now the writer's, or -1 when it
  /// is still in use (the reader has not released it).
  int acquire();
  /// Writer: slot `s` is filled; its bytes are published for the reader.
  void publish(int s);
  /// The slot's first byte.
  char* slot(int s) const { return data_ + static_cast<size_t>(s) * slot_bytes_; }
  /// Whether slot `s` is marked full (reader: before reading what a message
  /// says is there; acquires the writer's bytes).
  bool full(int s) const;
  /// Reader: slot `s` may be written again. Writer: gives back a slot it
  /// acquired but did not announce.
  void release(int s);

private:
  shm_slots() = default;
  /// Takes over a mapping of `bytes` at `base`.
  static std::unique_ptr<shm_slots> adopt(void* base, size_t bytes, const std::string& name, bool owner,
                                          uint64_t nonce, uint32_t slots, uint64_t slot_bytes);
  std::atomic_ref<uint32_t> flag(int s) const;

  std::string name_;
  bool owner_ = false;  ///< the writer: unlinks the name when it goes
  int lock_fd_ = -1;    ///< the writer: the object, open with a shared lock (remove_stale)
  uint64_t nonce_ = 0;
  uint32_t slots_ = 0;
  uint64_t slot_bytes_ = 0;
  void* base_ = nullptr;
  size_t mapped_ = 0;
  char* data_ = nullptr;
  std::mutex mu_;       ///< acquire()
  uint32_t next_ = 0;   ///< under mu_
};

} // namespace luoshu::transport::bulk
