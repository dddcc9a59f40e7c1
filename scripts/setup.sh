#!/usr/bin/env bash
# Installs the Debian packages longattn builds and tests with, when they are missing.
# CUDA is optional and comes from /usr/local/cuda when present (never installed here).
set -euo pipefail
packages=(cmake ninja-build g++ pkg-config ccache libxsimd-dev doctest-dev libopenblas-dev
          libvulkan-dev glslc mesa-vulkan-drivers vulkan-validationlayers golang-go)
command -v cargo >/dev/null 2>&1 || packages+=(cargo)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
