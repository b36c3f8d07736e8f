#pragma once
// Progress output for `luoshu train`: a live bar on a terminal, plain
// spdlog lines otherwise (logs, CI).

#include "apps/train/train.hpp"

namespace luoshu::app {

/// Creates the sink that fits stderr (a terminal or not); `quiet` keeps
/// only the per-epoch lines.
std::unique_ptr<progress_sink> make_console_progress(bool quiet);

} // namespace luoshu::app
