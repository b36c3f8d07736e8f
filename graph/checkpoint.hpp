#pragma once
// Checkpoint files: named tensors (variables, optimizer state) plus string
// metadata, written atomically and verified by a checksum when read back.
//
// File layout, version 1 (every integer little-endian):
//
//   magic          8 bytes  "LUOSHUCK"
//   version        u32      1
//   metadata count u32
//     key          u32 length + bytes
//     value        u32 length + bytes
//   tensor count   u32
//     name         u32 length + bytes
//     dtype        u8       the `dtype` enum value (f32 = 0 ... bf16 = 6)
//     rank         u32      at most 16
//     dims         i64 each, none negative
//     byte length  u64      numel * size_of(dtype)
//     data         the elements, contiguous, row-major, little-endian
//   file length    u64      total size of the file, trailer included
//   crc32          u32      zlib crc32 of every byte before this field
//
// Metadata entries and tensors appear sorted by key/name, so saving the same
// checkpoint twice gives byte-identical files.

#include <map>
#include <string>

#include "graph/error.hpp"
#include "graph/tensor.hpp"

namespace luoshu {

/// Named tensors and string metadata ("step" -> "1200", "model" -> "mlp").
struct checkpoint {
  /// Sorted by name, which keeps the files deterministic.
  std::map<std::string, tensor> tensors;
  std::map<std::string, std::string> metadata;
};

/// The format version this build writes and the newest it reads.
inline constexpr uint32_t checkpoint_format_version = 1;

/// The greatest tensor rank a checkpoint may hold.
inline constexpr uint32_t checkpoint_max_rank = 16;

/// Writes `ck` to `path` atomically: the bytes go to `path + ".tmp.<pid>"`
/// in the same directory, are flushed and fsynced, renamed over `path`, and
/// the directory is fsynced. On failure the temporary file is removed and
/// `path` is left as it was; the error names `path` and the system's reason.
/// Every tensor must be defined and live on the CPU. Not for two threads of
/// one process saving the same path at once: they share the temporary name.
status save_checkpoint(const std::string& path, const checkpoint& ck);

/// Reads a checkpoint written by save_checkpoint. Rejects, with a message
/// that starts with `path`, files that are not checkpoints, were written by
/// a newer version, are truncated, fail the checksum, or hold malformed
/// entries. Memory use is bounded by the file's size, whatever it claims.
result<checkpoint> load_checkpoint(const std::string& path);

} // namespace luoshu
