#!/usr/bin/env bash
# Quick start, step 2: install what is missing, build, and run the whole
# test suite (meson test). Extra arguments go to `meson test`.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/setup.sh"
"$root/scripts/build.sh"
build=${LUOSHU_BUILD_DIR:-$root/build}
meson test -C "$build" --print-errorlogs "$@"
