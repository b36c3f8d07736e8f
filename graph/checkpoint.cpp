#include "graph/checkpoint.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <memory>
#include <new>
#include <span>
#include <system_error>
#include <type_traits>
#include <vector>

namespace luoshu {

namespace {

// Tensor bytes are written and read as they lie in memory; the format says
// little-endian, so a big-endian host would have to swap them.
// TODO(port): byte-swap element data on big-endian hosts.
static_assert(std::endian::native == std::endian::little,
              "checkpoint tensor data is stored little-endian");

constexpr char magic[8] = {'L', 'U', 'O', 'S', 'H', 'U', 'C', 'K'};
constexpr size_t header_size = sizeof(magic) + 4;  // magic, version
constexpr size_t trailer_size = 8 + 4;             // file length, crc32

std::string errno_text(int e) {
  // Same text as strerror(e), without strerror's shared buffer.
  return std::error_code(e, std::generic_category()).message();
}

error system_error_at(const std::string& path, const std::string& what, int e) {
  return error{path + ": " + what + ": " + errno_text(e)};
}

// zlib's crc32 takes a uInt length; feed it large buffers in pieces.
uint32_t crc_update(uint32_t crc, const unsigned char* p, size_t n) {
  constexpr size_t chunk = size_t{1} << 30;
  while (n > 0) {
    size_t m = std::min(n, chunk);
    crc = static_cast<uint32_t>(::crc32(crc, p, static_cast<uInt>(m)));
    p += m;
    n -= m;
  }
  return crc;
}

// --- writing ----------------------------------------------------------------

// Writes through a FILE*, keeping the running crc32 and byte count. Each
// call returns false on a failed write with errno set by the C library.
class checksummed_writer {
public:
  explicit checksummed_writer(std::FILE* f) : f_(f) {}

  bool bytes(const void* p, size_t n) {
    if (n == 0) return true;
    if (std::fwrite(p, 1, n, f_) != n) return false;
    crc_ = crc_update(crc_, static_cast<const unsigned char*>(p), n);
    size_ += n;
    return true;
  }

  template <class T>
  bool le(T v) {
    static_assert(std::is_integral_v<T>);
    auto u = static_cast<std::make_unsigned_t<T>>(v);
    unsigned char b[sizeof(T)];
    for (size_t i = 0; i < sizeof(T); ++i)
      b[i] = static_cast<unsigned char>(u >> (8 * i));
    return bytes(b, sizeof(T));
  }

  bool str(const std::string& s) {
    return le(static_cast<uint32_t>(s.size())) && bytes(s.data(), s.size());
  }

  uint32_t crc() const { return crc_; }
  uint64_t size() const { return size_; }

private:
  std::FILE* f_;
  uint32_t crc_ = 0;
  uint64_t size_ = 0;
};

// Everything save_checkpoint can reject before it touches the disk.
status validate(const std::string& path, const checkpoint& ck) {
  constexpr size_t max_u32 = std::numeric_limits<uint32_t>::max();
  if (ck.metadata.size() > max_u32 || ck.tensors.size() > max_u32)
    return error{path + ": too many entries for a checkpoint"};
  for (const auto& [key, value] : ck.metadata)
    if (key.size() > max_u32 || value.size() > max_u32)
      return error{path + ": metadata entry '" + key.substr(0, 64) + "' is too long"};
  for (const auto& [name, t] : ck.tensors) {
    std::string where = path + ": tensor '" + name.substr(0, 64) + "'";
    if (name.size() > max_u32) return error{where + ": name is too long"};
    if (!t.defined()) return error{where + " is undefined"};
    if (t.device() != device::cpu())
      return error{where + " is on " + t.device().to_string() +
                   "; only CPU tensors can be saved (copy it to the host first)"};
    if (static_cast<uint32_t>(t.rank()) > checkpoint_max_rank)
      return error{where + " has rank " + std::to_string(t.rank()) + ", more than " +
                   std::to_string(checkpoint_max_rank)};
  }
  return status::success();
}

// Writes the whole file, trailer included. False with errno set on failure.
bool write_file(checksummed_writer& w, const checkpoint& ck) {
  if (!w.bytes(magic, sizeof(magic)) || !w.le(checkpoint_format_version)) return false;

  if (!w.le(static_cast<uint32_t>(ck.metadata.size()))) return false;
  for (const auto& [key, value] : ck.metadata)
    if (!w.str(key) || !w.str(value)) return false;

  if (!w.le(static_cast<uint32_t>(ck.tensors.size()))) return false;
  for (const auto& [name, t] : ck.tensors) {
    if (!w.str(name) || !w.le(static_cast<uint8_t>(t.type())) ||
        !w.le(static_cast<uint32_t>(t.rank())))
      return false;
    for (int64_t d : t.shape().dims())
      if (!w.le(d)) return false;
    if (!w.le(static_cast<uint64_t>(t.nbytes())) || !w.bytes(t.raw(), t.nbytes())) return false;
  }

  if (!w.le(w.size() + trailer_size)) return false;
  return w.le(w.crc());
}

struct file_closer {
  void operator()(std::FILE* f) const { std::fclose(f); }
};

// Removes the temporary file unless the save got as far as renaming it.
struct temp_file_guard {
  std::string path;
  bool armed = true;
  ~temp_file_guard() {
    if (armed) ::unlink(path.c_str());
  }
};

// --- reading ----------------------------------------------------------------

// A malformed file. Thrown only inside this file's parser and turned into an
// `error` by load_checkpoint: every field read can fail, and threading a
// value through each of them would bury the format under checks.
struct parse_failure {
  std::string message;
};

// Reads little-endian fields from bytes [pos, end) of the file, refusing to
// read past `end`.
class byte_reader {
public:
  byte_reader(std::span<const unsigned char> file, size_t pos, size_t end)
      : file_(file), pos_(pos), end_(end) {}

  size_t offset() const { return pos_; }
  size_t remaining() const { return end_ - pos_; }

  const unsigned char* take(uint64_t n, const std::string& what) {
    if (n > remaining())
      throw parse_failure{"truncated at offset " + std::to_string(pos_) + " (" + what + ": need " +
                          std::to_string(n) + " bytes, " + std::to_string(remaining()) +
                          " left)"};
    const unsigned char* p = file_.data() + pos_;
    pos_ += static_cast<size_t>(n);
    return p;
  }

  template <class T>
  T le(const std::string& what) {
    static_assert(std::is_integral_v<T>);
    const unsigned char* p = take(sizeof(T), what);
    std::make_unsigned_t<T> u = 0;
    for (size_t i = 0; i < sizeof(T); ++i)
      u = static_cast<decltype(u)>(u | (static_cast<decltype(u)>(p[i]) << (8 * i)));
    return static_cast<T>(u);
  }

  std::string str(const std::string& what) {
    auto n = le<uint32_t>(what + " length");
    const unsigned char* p = take(n, what);
    return std::string(reinterpret_cast<const char*>(p), n);
  }

private:
  std::span<const unsigned char> file_;
  size_t pos_;
  size_t end_;
};

template <class T>
T load_le(const unsigned char* p) {
  std::make_unsigned_t<T> u = 0;
  for (size_t i = 0; i < sizeof(T); ++i)
    u = static_cast<decltype(u)>(u | (static_cast<decltype(u)>(p[i]) << (8 * i)));
  return static_cast<T>(u);
}

tensor parse_tensor(byte_reader& r, const std::string& name) {
  const std::string what = "tensor '" + name + "'";

  auto code = r.le<uint8_t>(what + " dtype");
  if (code >= dtype_count)
    throw parse_failure{what + ": unknown dtype code " + std::to_string(code)};
  auto type = static_cast<dtype>(code);

  auto rank = r.le<uint32_t>(what + " rank");
  if (rank > checkpoint_max_rank)
    throw parse_failure{what + ": rank " + std::to_string(rank) + " exceeds " +
                        std::to_string(checkpoint_max_rank)};

  std::vector<int64_t> dims(rank);
  int64_t numel = 1;
  bool overflow = false;
  for (uint32_t i = 0; i < rank; ++i) {
    dims[i] = r.le<int64_t>(what + " dims");
    if (dims[i] < 0)
      throw parse_failure{what + ": dimension " + std::to_string(i) + " is negative (" +
                          std::to_string(dims[i]) + ")"};
    // Same order as shape::numel(), so a shape accepted here never
    // overflows there.
    overflow = overflow || __builtin_mul_overflow(numel, dims[i], &numel);
  }
  luoshu::shape s(std::move(dims));

  auto nbytes = r.le<uint64_t>(what + " byte length");
  uint64_t expected = 0;
  if (overflow || __builtin_mul_overflow(static_cast<uint64_t>(numel),
                                         static_cast<uint64_t>(size_of(type)), &expected) ||
      expected > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
    throw parse_failure{what + ": shape " + s.to_string() + " is too large"};
  if (expected != nbytes)
    throw parse_failure{what + ": shape " + s.to_string() + " of " + luoshu::name(type) + " needs " +
                        std::to_string(expected) + " bytes, the file records " +
                        std::to_string(nbytes)};

  // Bounds-checked before anything is allocated: the file holds the bytes.
  const unsigned char* data = r.take(nbytes, what + " data");
  tensor t(type, std::move(s));
  if (nbytes > 0) std::memcpy(t.raw(), data, static_cast<size_t>(nbytes));
  return t;
}

// Parses metadata and tensors from the reader's range.
checkpoint parse_body(byte_reader& r) {
  checkpoint ck;
  auto meta_count = r.le<uint32_t>("metadata count");
  for (uint32_t i = 0; i < meta_count; ++i) {
    std::string key = r.str("metadata key");
    if (ck.metadata.count(key)) throw parse_failure{"duplicate metadata key '" + key + "'"};
    std::string value = r.str("metadata value for '" + key + "'");
    ck.metadata.emplace(std::move(key), std::move(value));
  }
  auto tensor_count = r.le<uint32_t>("tensor count");
  for (uint32_t i = 0; i < tensor_count; ++i) {
    std::string name = r.str("tensor name");
    if (ck.tensors.count(name)) throw parse_failure{"duplicate tensor name '" + name + "'"};
    tensor t = parse_tensor(r, name);
    ck.tensors.emplace(std::move(name), std::move(t));
  }
  return ck;
}

// Reads the whole of a regular file.
result<std::vector<unsigned char>> read_file(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return system_error_at(path, "cannot open checkpoint", errno);
  struct fd_closer {
    int fd;
    ~fd_closer() { ::close(fd); }
  } closer{fd};

  struct stat st {};
  if (::fstat(fd, &st) != 0) return system_error_at(path, "cannot stat checkpoint", errno);
  if (!S_ISREG(st.st_mode)) return error{path + ": not a regular file"};

  std::vector<unsigned char> bytes(static_cast<size_t>(st.st_size));
  size_t got = 0;
  while (got < bytes.size()) {
    ssize_t n = ::read(fd, bytes.data() + got, bytes.size() - got);
    if (n < 0) {
      if (errno == EINTR) continue;
      return system_error_at(path, "cannot read checkpoint", errno);
    }
    if (n == 0) break;  // shrank while we read: the parser reports truncation
    got += static_cast<size_t>(n);
  }
  bytes.resize(got);
  return bytes;
}

checkpoint parse_file(std::span<const unsigned char> file) {
  const size_t size = file.size();

  if (size < sizeof(magic) || std::memcmp(file.data(), magic, sizeof(magic)) != 0) {
    if (size < sizeof(magic) && (size == 0 || std::memcmp(file.data(), magic, size) == 0))
      throw parse_failure{"truncated at offset " + std::to_string(size) + " (magic)"};
    throw parse_failure{"not a Luoshu checkpoint (bad magic)"};
  }
  if (size < header_size)
    throw parse_failure{"truncated at offset " + std::to_string(size) + " (version)"};
  auto version = load_le<uint32_t>(file.data() + sizeof(magic));
  if (version > checkpoint_format_version)
    throw parse_failure{"written by a newer version " + std::to_string(version) +
                        " of the checkpoint format; this build reads up to version " +
                        std::to_string(checkpoint_format_version)};
  if (version == 0) throw parse_failure{"unsupported checkpoint format version 0"};

  uint64_t recorded = 0;
  if (size >= header_size + trailer_size) {
    recorded = load_le<uint64_t>(file.data() + size - trailer_size);
    if (recorded == size) {
      auto stored = load_le<uint32_t>(file.data() + size - 4);
      if (crc_update(0, file.data(), size - 4) != stored)
        throw parse_failure{"checksum mismatch: the file is corrupt"};
      byte_reader r(file, header_size, size - trailer_size);
      checkpoint ck = parse_body(r);
      if (r.remaining() != 0)
        throw parse_failure{std::to_string(r.remaining()) +
                            " unexpected bytes after the last tensor, at offset " +
                            std::to_string(r.offset())};
      return ck;
    }
  }

  // The length does not match. Parse what is there to say where the file
  // stops making sense: a truncated file runs out of bytes mid-field.
  byte_reader r(file, header_size, size);
  parse_body(r);
  r.take(trailer_size, "trailer");
  throw parse_failure{"the file is " + std::to_string(size) + " bytes but its trailer records " +
                      std::to_string(recorded) + ": the file is truncated or corrupt"};
}

} // namespace

status save_checkpoint(const std::string& path, const checkpoint& ck) {
  if (auto st = validate(path, ck); !st) return st;

  temp_file_guard tmp{path + ".tmp." + std::to_string(::getpid())};
  int fd = ::open(tmp.path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    int e = errno;
    tmp.armed = false;  // nothing was created
    return system_error_at(path, "cannot create temporary file " + tmp.path, e);
  }
  std::unique_ptr<std::FILE, file_closer> f(::fdopen(fd, "wb"));
  if (!f) {
    int e = errno;
    ::close(fd);
    return system_error_at(path, "cannot open temporary file " + tmp.path, e);
  }

  checksummed_writer w(f.get());
  if (!write_file(w, ck)) return system_error_at(path, "cannot write checkpoint", errno);
  if (std::fflush(f.get()) != 0) return system_error_at(path, "cannot write checkpoint", errno);
  if (::fsync(::fileno(f.get())) != 0)
    return system_error_at(path, "cannot sync checkpoint", errno);
  if (std::fclose(f.release()) != 0)
    return system_error_at(path, "cannot close checkpoint", errno);
  if (std::rename(tmp.path.c_str(), path.c_str()) != 0)
    return system_error_at(path, "cannot rename " + tmp.path + " over it", errno);
  tmp.armed = false;

  // Make the rename itself durable.
  const std::filesystem::path parent = std::filesystem::path(path).parent_path();
  const std::filesystem::path dir = parent.empty() ? std::filesystem::path(".") : parent;
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) return system_error_at(path, "saved, but cannot open directory " + dir.string(), errno);
  int rc = ::fsync(dfd);
  int e = errno;
  ::close(dfd);
  // EINVAL: the file system cannot sync directories; there is nothing more
  // this process can do, and the file itself is complete.
  if (rc != 0 && e != EINVAL)
    return system_error_at(path, "saved, but cannot sync directory " + dir.string(), e);
  return status::success();
}

result<checkpoint> load_checkpoint(const std::string& path) {
  auto bytes = read_file(path);
  if (!bytes) return bytes.err();
  try {
    return parse_file(*bytes);
  } catch (const parse_failure& f) {
    return error{path + ": " + f.message};
  } catch (const std::bad_alloc&) {
    return error{path + ": out of memory while loading the checkpoint"};
  }
}

} // namespace luoshu
