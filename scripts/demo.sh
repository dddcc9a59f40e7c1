#!/usr/bin/env bash
# Installs what is missing, builds, and runs `longattn demo` (extra arguments are passed on).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh build -DLONGATTN_BUILD_TESTS=OFF
exec build/examples/longattn demo "$@"
