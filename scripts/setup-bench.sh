#!/usr/bin/env bash
# Creates the virtual environment that holds the benchmark baselines
# (current PyTorch and TensorFlow from PyPI). Idempotent. The PyTorch wheel
# pulls its CUDA libraries too (several GB): expected, we compare on CPU.
#   scripts/setup-bench.sh            # creates .venv-bench in the repo root
#   LUOSHU_BENCH_VENV=/path scripts/setup-bench.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv=${LUOSHU_BENCH_VENV:-$root/.venv-bench}

if ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -c 'import ensurepip' 2>/dev/null; then
  sudo_cmd=(); [ "$(id -u)" -ne 0 ] && sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -q
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -q python3-venv
fi

if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
if "$venv/bin/python" -c 'import torch, tensorflow' 2>/dev/null; then
  echo "setup-bench: $venv already has torch and tensorflow"
  exit 0
fi
"$venv/bin/pip" install -q --upgrade pip
"$venv/bin/pip" install -q torch tensorflow-cpu numpy
"$venv/bin/python" -c 'import torch, tensorflow as tf; print("setup-bench: torch", torch.__version__, "tensorflow", tf.__version__)'
