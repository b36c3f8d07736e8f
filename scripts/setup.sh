#!/usr/bin/env bash
# Installs every Debian package Luoshu needs to build, test and run its demo,
# including the Fashion-MNIST data set. Idempotent: packages already present
# are left alone and apt is not touched at all when nothing is missing.
set -euo pipefail

packages=(
  # toolchain
  g++ meson ninja-build pkg-config python3
  # libraries
  libopenblas-dev libdnnl-dev zlib1g-dev
  libspdlog-dev libfmt-dev libyaml-cpp-dev libcli11-dev nlohmann-json3-dev
  libboost-dev libboost-program-options-dev
  libcaf-dev capnproto libcapnp-dev
  # tests and benchmarks
  libgtest-dev libgmock-dev libbenchmark-dev
  # demo data: 60,000 + 10,000 Fashion-MNIST images in IDX gzip format
  dataset-fashion-mnist
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#packages[@]} packages already installed"
  exit 0
fi

sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "setup: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
  sudo_cmd=(sudo)
fi

echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -q
"${sudo_cmd[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
echo "setup: done"
