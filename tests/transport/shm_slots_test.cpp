// Shared-memory payload slots (transport/bulk/shm_slots.hpp): a writer and a
// reader see the same bytes, slots are reused in ring order only once the
// reader releases them, a reader refuses what does not match the
// announcement (and leaves the name for the right reader), and nothing stays
// in /dev/shm (and what a writer that is gone left is removed).

#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>

#include "transport/bulk/shm_slots.hpp"

using luoshu::transport::bulk::shm_slots;

namespace {

bool in_dev_shm(const std::string& name) { return std::filesystem::exists("/dev/shm" + name); }

TEST(ShmSlots, WriterAndReaderShareTheBytesAndTheNameGoesOnceBothAreAttached) {
  auto w = shm_slots::create(4, 1000);
  ASSERT_TRUE(w.ok()) << w.err().message;
  EXPECT_EQ((*w)->slots(), 4u);
  EXPECT_EQ((*w)->slot_bytes(), 4096u) << "slots are whole pages";
  const std::string name = (*w)->name();
  EXPECT_TRUE(in_dev_shm(name));
  auto r = shm_slots::open(name, (*w)->nonce(), 4, (*w)->slot_bytes());
  ASSERT_TRUE(r.ok()) << r.err().message;
  EXPECT_FALSE(in_dev_shm(name)) << "the reader unlinks the name";

  const int s = (*w)->acquire();
  ASSERT_EQ(s, 0);
  EXPECT_FALSE((*r)->full(s)) << "taken, not yet published";
  for (int i = 0; i < 4096; ++i) (*w)->slot(s)[i] = static_cast<char>(i * 7);
  (*w)->publish(s);
  ASSERT_TRUE((*r)->full(s));
  for (int i = 0; i < 4096; ++i) ASSERT_EQ((*r)->slot(s)[i], static_cast<char>(i * 7)) << "byte " << i;
  (*r)->release(s);
  EXPECT_FALSE((*r)->full(s));
  EXPECT_FALSE((*w)->full(s));
}

TEST(ShmSlots, ASlotIsReusedInRingOrderOnlyAfterTheReaderReleasedIt) {
  auto w = shm_slots::create(2, 4096);
  ASSERT_TRUE(w.ok()) << w.err().message;
  auto r = shm_slots::open((*w)->name(), (*w)->nonce(), 2, 4096);
  ASSERT_TRUE(r.ok()) << r.err().message;
  shm_slots& writer = **w;
  shm_slots& reader = **r;
  EXPECT_EQ(writer.acquire(), 0);
  writer.publish(0);
  EXPECT_EQ(writer.acquire(), 1);
  writer.publish(1);
  EXPECT_EQ(writer.acquire(), -1) << "slot 0 is still full: the payload must go another way";
  reader.release(0);
  EXPECT_EQ(writer.acquire(), 0);
  EXPECT_EQ(writer.acquire(), -1) << "slot 1 is next and still full";
  reader.release(1);
  EXPECT_EQ(writer.acquire(), 1);
  // A slot taken but never announced goes back to the writer's ring.
  writer.release(0);
  writer.release(1);
  EXPECT_EQ(writer.acquire(), 0);
  // Out-of-range slots are never full and releasing them does nothing.
  EXPECT_FALSE(reader.full(-1));
  EXPECT_FALSE(reader.full(2));
  reader.release(7);
}

TEST(ShmSlots, AReaderRefusesWhatDoesNotMatchTheAnnouncement) {
  auto w = shm_slots::create(2, 4096);
  ASSERT_TRUE(w.ok()) << w.err().message;
  const std::string name = (*w)->name();
  const uint64_t nonce = (*w)->nonce();
  auto refused = [](const luoshu::result<std::unique_ptr<shm_slots>>& r, const std::string& what) {
    ASSERT_FALSE(r.ok()) << "accepted: " << what;
    EXPECT_NE(r.err().message.find(what), std::string::npos) << r.err().message;
  };
  refused(shm_slots::open(name, nonce + 1, 2, 4096), "does not hold what its writer announced");
  refused(shm_slots::open(name, nonce, 3, 4096), "expected");
  refused(shm_slots::open(name, nonce, 2, 8192), "expected");
  refused(shm_slots::open(name, nonce, 0, 4096), "outside the limits");
  refused(shm_slots::open(name, nonce, 5000, 4096), "outside the limits");
  refused(shm_slots::open(name, nonce, 2, 1000), "outside the limits");
  refused(shm_slots::open("/etc/passwd", nonce, 2, 4096), "is not a slot name");
  refused(shm_slots::open("/luoshu-../../x", nonce, 2, 4096), "is not a slot name");
  refused(shm_slots::open("/luoshu-1-zz", nonce, 2, 4096), "is not a slot name");
  refused(shm_slots::open("/luoshu-1-00000000deadbeef", nonce, 2, 4096), "cannot open");
  EXPECT_TRUE(in_dev_shm(name)) << "a refused reader leaves the name for the right one";
  w->reset();
  EXPECT_FALSE(in_dev_shm(name)) << "the writer unlinks a name no reader took";
}

TEST(ShmSlots, CreateRefusesSizesOutsideTheLimits) {
  // The last: under 8 GiB as asked for, over it once each slot is rounded up
  // to whole pages (what a reader checks).
  for (auto [slots, bytes] : {std::pair<uint32_t, uint64_t>{0, 4096},
                              {2000, 4096},
                              {2, 0},
                              {1, uint64_t{2} << 30},
                              {9, 954437176}}) {
    auto w = shm_slots::create(slots, bytes);
    ASSERT_FALSE(w.ok()) << slots << " slots of " << bytes;
    EXPECT_NE(w.err().message.find("outside the limits"), std::string::npos) << w.err().message;
  }
}

TEST(ShmSlots, LeftoversOfGoneWritersAreRemovedAndNothingElse) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / ("luoshu-stale-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  const auto old = fs::file_time_type::clock::now() - std::chrono::minutes(5);
  auto make = [&](const std::string& name, bool aged) {
    std::ofstream(dir / name) << "x";
    if (aged) fs::last_write_time(dir / name, old);
  };
  make("luoshu-123-00000000000000aa", true);   // no writer holds it: goes
  make("luoshu-123-00000000000000bb", false);  // too fresh to judge
  make("luoshu-123-00000000000000cc", true);   // a live writer's (locked below)
  make("luoshu-123-not-hex", true);            // not a name create() makes
  make("luoshu-123-00000000000000dd0", true);  // nor this (17 hex digits)
  make("other-123-00000000000000ee", true);    // someone else's
  fs::create_symlink(dir / "luoshu-123-00000000000000aa", dir / "luoshu-124-00000000000000ff"); // a link
  const int held = ::open((dir / "luoshu-123-00000000000000cc").c_str(), O_RDONLY);
  ASSERT_GE(held, 0);
  ASSERT_EQ(::flock(held, LOCK_SH), 0);
  EXPECT_EQ(shm_slots::remove_stale(dir.string()), 1u);
  EXPECT_FALSE(fs::exists(dir / "luoshu-123-00000000000000aa"));
  for (const char* kept : {"luoshu-123-00000000000000bb", "luoshu-123-00000000000000cc", "luoshu-123-not-hex",
                           "luoshu-123-00000000000000dd0", "other-123-00000000000000ee"})
    EXPECT_TRUE(fs::exists(dir / kept)) << kept;
  EXPECT_TRUE(fs::is_symlink(dir / "luoshu-124-00000000000000ff")) << "a link is never followed nor removed";
  ::close(held); // the writer is gone now
  EXPECT_EQ(shm_slots::remove_stale(dir.string()), 1u);
  EXPECT_FALSE(fs::exists(dir / "luoshu-123-00000000000000cc"));
  EXPECT_EQ(shm_slots::remove_stale((dir / "missing").string()), 0u) << "a missing directory is nothing to do";
  fs::remove_all(dir);

  // A real writer's object is left alone however old it looks.
  auto w = shm_slots::create(2, 4096);
  ASSERT_TRUE(w.ok()) << w.err().message;
  shm_slots::remove_stale("/dev/shm", std::chrono::seconds(0));
  EXPECT_TRUE(in_dev_shm((*w)->name())) << "a live writer's slots were removed";
}

} // namespace
