#!/usr/bin/env bash
# Creates the virtual environment that holds the benchmark baselines
# (current PyTorch and TensorFlow from PyPI) and installs OpenMPI with apt when
# mpirun/mpicc are missing. Idempotent. The PyTorch wheel pulls its CUDA
# libraries too (several GB): expected, we compare on CPU.
#   scripts/setup-bench.sh            # creates .venv-bench in the repo root
#   LUOSHU_BENCH_VENV=/path scripts/setup-bench.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv=${LUOSHU_BENCH_VENV:-$root/.venv-bench}

# System packages, only those missing: python3-venv for the venv; OpenMPI
# (mpirun, mpicc) for apps/bench/baselines/mpi_allreduce.c.
apt_pkgs=()
if ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -c 'import ensurepip' 2>/dev/null; then
  apt_pkgs+=(python3-venv)
fi
if ! command -v mpirun >/dev/null 2>&1 || ! command -v mpicc >/dev/null 2>&1; then
  apt_pkgs+=(openmpi-bin libopenmpi-dev)
fi
if [ ${#apt_pkgs[@]} -gt 0 ]; then
  sudo_cmd=(); [ "$(id -u)" -ne 0 ] && sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -q
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -q "${apt_pkgs[@]}"
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
