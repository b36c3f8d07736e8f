#pragma once
// Files as the readers see them: raw or gzip-compressed (detected by the
// gzip magic 1f 8b), read incrementally, plus a line reader on top for the
// text formats that stream (criteo.cpp). Internal to graph/data.

#include <cstdint>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "graph/error.hpp"

struct gzFile_s;

namespace luoshu::data {

/// A file opened for reading, raw or gzip, that counts the bytes it has
/// delivered. Resource type: movable, not copyable.
class input {
public:
  /// Opens `path`, sniffing the first two bytes for the gzip magic.
  static result<input> open(const std::string& path);

  bool gzip() const { return static_cast<bool>(gz_); }
  const std::string& path() const { return path_; }
  /// The file's size in bytes when known up front (raw files).
  std::optional<uint64_t> size() const { return size_; }
  /// Bytes delivered so far (decompressed bytes for gzip).
  uint64_t offset() const { return offset_; }
  /// Set after a read error other than the data ending early.
  const std::string& failure() const { return failure_; }

  /// Reads up to `n` bytes into `buf`; fewer means the data ended (or a
  /// read error, see failure()).
  size_t read(void* buf, size_t n);

  /// "offset 16", qualified for gzip files.
  std::string where(uint64_t off) const;
  /// An error naming the file.
  error fail(const std::string& what) const { return error{path_ + ": " + what}; }
  /// The error after a short read of `want` bytes of `what` (header or
  /// data) that started at `start`.
  error short_read(const char* what, uint64_t want, uint64_t start) const;

private:
  struct file_closer {
    void operator()(std::FILE* f) const;
  };
  struct gz_closer {
    void operator()(gzFile_s* f) const;
  };
  input() = default;

  std::string path_;
  std::unique_ptr<std::FILE, file_closer> raw_;
  std::unique_ptr<gzFile_s, gz_closer> gz_;
  std::optional<uint64_t> size_;
  uint64_t offset_ = 0;
  std::string failure_;
};

/// The lines of an input, read in chunks so that a large file is never
/// held in memory at once. Resource type: movable, not copyable.
class line_reader {
public:
  explicit line_reader(input in) : in_(std::move(in)) {}

  /// The next line without its '\n' (nor a '\r' before it); false at the
  /// end of the data or on a read error (see error()). The view is valid
  /// until the next call.
  bool next(std::string_view& line);
  /// The 1-based number of the line last returned.
  int64_t line_no() const { return line_no_; }
  /// "PATH: line N: what" for the line last returned.
  error at(const std::string& what) const;
  /// After next() returned false: the read error, if there was one.
  std::optional<error> read_error() const;

private:
  input in_;
  std::string buf_;
  size_t pos_ = 0;
  bool eof_ = false;
  int64_t line_no_ = 0;
};

} // namespace luoshu::data
