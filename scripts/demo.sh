#!/usr/bin/env bash
# Quick start, step 1: install what is missing, build, and train the
# Fashion-MNIST MLP (784-256-256-10, 10 epochs), printing progress and the
# final test accuracy.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/setup.sh"
"$root/scripts/build.sh"
build=${LUOSHU_BUILD_DIR:-$root/build}
exec "$build/apps/luoshu" train "$root/apps/examples/mlp_fashion_mnist.yaml" "$@"
