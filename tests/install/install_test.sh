#!/usr/bin/env bash
# Installs the build into a scratch root with `meson install --destdir`,
# then builds a small program outside the tree with dependency('luoshu')
# (found through the installed luoshu.pc) and runs it.
#   install_test.sh BUILD_DIR
set -euo pipefail
build=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

meson install -C "$build" --no-rebuild --quiet --destdir "$tmp/root" >/dev/null
pc=$(find "$tmp/root" -name luoshu.pc | head -n 1)
[ -n "$pc" ] || { echo "FAIL: no luoshu.pc was installed"; exit 1; }
libdir=$(dirname "$(dirname "$pc")")
echo "installed: $pc"

mkdir -p "$tmp/app"
cat > "$tmp/app/meson.build" <<'MESON'
project('outside', 'cpp', default_options: ['cpp_std=c++20'])
executable('outside', 'main.cpp', dependencies: dependency('luoshu'))
MESON
cat > "$tmp/app/main.cpp" <<'CPP'
#include <cstdio>
#include "graph/luoshu.hpp"
using namespace luoshu;
int main() {
  graph g;
  expr x = g.placeholder("x", dtype::f32, {-1, 3});
  expr w = g.variable("w", {3, 2}, init::constant(0.5));
  expr y = sum(relu(matmul(x, w) - 1.0));
  auto grads = gradients(y, {w});
  kernel_registry reg;
  cpu::register_kernels(reg);
  variable_store vars;
  executor ex(g, vars, reg);
  auto r = ex.run({{x, tensor::from<float>({2, 3}, {1, 2, 3, 4, 5, 6})}}, {y, grads[0].dense});
  if (!r) { std::fprintf(stderr, "%s\n", r.err().message.c_str()); return 1; }
  // rows: 0.5*(1+2+3)-1 = 2, 0.5*(4+5+6)-1 = 6.5 -> sum over 2 columns = 17
  std::printf("%g %g\n", r->at(0).item(), r->at(1).item(0));
  return r->at(0).item() == 17 && r->at(1).item(0) == 5 ? 0 : 1;
}
CPP
# A sanitized library needs its consumer built with the same sanitizers.
sanitize=$(meson introspect --buildoptions "$build" |
  python3 -c 'import json,sys; print(next(o["value"] for o in json.load(sys.stdin) if o["name"] == "b_sanitize"))')
export PKG_CONFIG_SYSROOT_DIR="$tmp/root"
export PKG_CONFIG_PATH="$libdir/pkgconfig"
meson setup "$tmp/app/build" "$tmp/app" -Db_sanitize="$sanitize" >"$tmp/setup.log" 2>&1 || { cat "$tmp/setup.log"; exit 1; }
ninja -C "$tmp/app/build" >"$tmp/build.log" 2>&1 || { cat "$tmp/build.log"; exit 1; }
out=$(LD_LIBRARY_PATH="$libdir" "$tmp/app/build/outside")
echo "outside program printed: $out"
[ "$out" = "17 5" ] || { echo "FAIL: expected '17 5'"; exit 1; }
echo "install test passed"
