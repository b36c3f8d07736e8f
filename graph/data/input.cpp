#include "graph/data/input.hpp"

#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

namespace luoshu::data {

void input::file_closer::operator()(std::FILE* f) const { std::fclose(f); }
void input::gz_closer::operator()(gzFile_s* f) const { gzclose(f); }

result<input> input::open(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec))
    return error{path + ": cannot read: is a directory"};
  input in;
  in.path_ = path;
  in.raw_.reset(std::fopen(path.c_str(), "rb"));
  if (!in.raw_)
    return error{path + ": cannot open: " + std::strerror(errno)};
  unsigned char magic[2] = {0, 0};
  size_t got = std::fread(magic, 1, 2, in.raw_.get());
  if (got == 2 && magic[0] == 0x1f && magic[1] == 0x8b) {
    in.raw_.reset();
    in.gz_.reset(gzopen(path.c_str(), "rb"));
    if (!in.gz_)
      return error{path + ": cannot open as gzip: " +
                   (errno ? std::strerror(errno) : "out of memory")};
    gzbuffer(in.gz_.get(), 1u << 17);
    return in;
  }
  if (std::fseek(in.raw_.get(), 0, SEEK_SET) != 0)
    return error{path + ": cannot seek: " + std::strerror(errno)};
  auto size = std::filesystem::file_size(path, ec);
  if (!ec) in.size_ = static_cast<uint64_t>(size);
  return in;
}

size_t input::read(void* buf, size_t n) {
  auto* out = static_cast<unsigned char*>(buf);
  size_t done = 0;
  while (done < n && failure_.empty()) {
    size_t want = std::min<size_t>(n - done, size_t{1} << 30);
    size_t got = 0;
    if (gz_) {
      int r = gzread(gz_.get(), out + done, static_cast<unsigned>(want));
      int errnum = Z_OK;
      const char* msg = gzerror(gz_.get(), &errnum);
      // Z_BUF_ERROR is "unexpected end of file": the stream was cut
      // short, which the caller reports as truncation.
      if (errnum != Z_OK && errnum != Z_BUF_ERROR) {
        failure_ = errnum == Z_ERRNO ? std::strerror(errno) : (msg ? msg : "gzip error");
        // zlib prefixes its message with the path, which fail() adds too.
        if (failure_.starts_with(path_ + ": ")) failure_.erase(0, path_.size() + 2);
      }
      got = r > 0 ? static_cast<size_t>(r) : 0;
    } else {
      got = std::fread(out + done, 1, want, raw_.get());
      if (got < want && std::ferror(raw_.get())) failure_ = std::strerror(errno);
    }
    done += got;
    offset_ += got;
    if (got < want) break;
  }
  return done;
}

std::string input::where(uint64_t off) const {
  return "offset " + std::to_string(off) + (gz_ ? " of the decompressed data" : "");
}

error input::short_read(const char* what, uint64_t want, uint64_t start) const {
  if (!failure_.empty())
    return fail("read error at " + where(offset_) + ": " + failure_);
  return fail("expected " + std::to_string(want) + " bytes of " + what + ", file ends at " +
              where(offset_) + " (the " + what + " starts at " + where(start) + ")");
}

bool line_reader::next(std::string_view& line) {
  constexpr size_t chunk = size_t{1} << 20;
  size_t nl = buf_.find('\n', pos_);
  while (nl == std::string::npos && !eof_) {
    buf_.erase(0, pos_);
    pos_ = 0;
    const size_t have = buf_.size();
    buf_.resize(have + chunk);
    const size_t got = in_.read(buf_.data() + have, chunk);
    buf_.resize(have + got);
    eof_ = got < chunk;
    nl = buf_.find('\n', have);
  }
  if (pos_ >= buf_.size()) return false;
  const size_t end = nl == std::string::npos ? buf_.size() : nl;
  line = std::string_view(buf_).substr(pos_, end - pos_);
  pos_ = end + 1;
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  ++line_no_;
  return true;
}

error line_reader::at(const std::string& what) const {
  return in_.fail("line " + std::to_string(line_no_) + ": " + what);
}

std::optional<error> line_reader::read_error() const {
  if (in_.failure().empty()) return std::nullopt;
  return in_.fail("read error after line " + std::to_string(line_no_) + ": " + in_.failure());
}

} // namespace luoshu::data
