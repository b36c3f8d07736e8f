#!/usr/bin/env bash
# Configures (once) and builds Luoshu in build/ (or $LUOSHU_BUILD_DIR).
# Extra arguments go to `meson setup` on first configuration, e.g.
#   scripts/build.sh -Dcuda=disabled
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${LUOSHU_BUILD_DIR:-$root/build}
if [ ! -f "$build/build.ninja" ]; then
  meson setup "$build" "$root" "$@"
fi
ninja -C "$build"
