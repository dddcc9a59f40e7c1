#!/usr/bin/env bash
# Builds and tests the Rust and Go bindings against a CMake build tree of the library.
#
#   scripts/test_bindings.sh [BUILD_DIR]      (default: build)
#
# BUILD_DIR must already hold liblongattn.so (cmake --build BUILD_DIR --target longattn
# longattn_static). The bindings find it through BUILD_DIR/pkgconfig/longattn.pc, the build
# tree's uninstalled pkg-config file. Runs:
#   rust: cargo test; cargo run --example decode (shared, then static when liblongattn.a exists)
#   go:   go vet; go test; go test with GODEBUG=cgocheck=2 (cgo's full pointer-passing checks);
#         set LONGATTN_GO_RACE=1 to add a -race run
# Missing go / pkg-config are installed from Debian packages when running as root with apt-get.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build_arg="${1:-build}"
case "$build_arg" in
  /*) build_dir="$build_arg" ;;
  *) build_dir="$repo_root/$build_arg" ;;
esac

if [[ ! -e "$build_dir/liblongattn.so" || ! -f "$build_dir/pkgconfig/longattn.pc" ]]; then
  echo "test_bindings: $build_dir has no liblongattn.so or pkgconfig/longattn.pc;" \
       "build it first: cmake --build $build_arg --target longattn longattn_static" >&2
  exit 1
fi

# ---- tools --------------------------------------------------------------------------------------
apt_installed=0
install_debian_package() {  # package
  if [[ $(id -u) -ne 0 ]] || ! command -v apt-get > /dev/null; then
    return 1
  fi
  if [[ $apt_installed -eq 0 ]]; then
    apt-get update -qq > /dev/null
    apt_installed=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$1" > /dev/null
}

if ! command -v pkg-config > /dev/null; then
  install_debian_package pkg-config || { echo "test_bindings: pkg-config not found" >&2; exit 1; }
fi
if ! command -v go > /dev/null; then
  install_debian_package golang-go || { echo "test_bindings: go not found (Debian: golang-go)" >&2; exit 1; }
fi
cargo_bin="$(command -v cargo || true)"
if [[ -z "$cargo_bin" && -x "${CARGO_HOME:-$HOME/.cargo}/bin/cargo" ]]; then
  cargo_bin="${CARGO_HOME:-$HOME/.cargo}/bin/cargo"
fi
if [[ -z "$cargo_bin" ]]; then
  echo "test_bindings: cargo not found" >&2
  exit 1
fi

export PKG_CONFIG_PATH="$build_dir/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
# Header used by the Rust layout test (the one the build tree was configured from).
export LONGATTN_INCLUDE_DIR="$repo_root/include"
unset LONGATTN_LIB_DIR LONGATTN_STATIC

# ---- Rust ---------------------------------------------------------------------------------------
rust_dir="$repo_root/bindings/rust"
rust_target="$build_dir/bindings/rust-target"
echo "== rust: cargo test ($("$cargo_bin" --version))"
CARGO_TARGET_DIR="$rust_target" "$cargo_bin" test --offline --manifest-path "$rust_dir/Cargo.toml"
echo "== rust: cargo run --example decode"
CARGO_TARGET_DIR="$rust_target" "$cargo_bin" run --offline --quiet \
  --manifest-path "$rust_dir/Cargo.toml" --example decode
if [[ -f "$build_dir/liblongattn.a" ]]; then
  echo "== rust: cargo run --example decode, linked statically (LONGATTN_STATIC=1)"
  LONGATTN_STATIC=1 CARGO_TARGET_DIR="$rust_target-static" "$cargo_bin" run --offline --quiet \
    --manifest-path "$rust_dir/Cargo.toml" --example decode | tail -n 1
fi

# ---- Go -----------------------------------------------------------------------------------------
echo "== go: go test ($(go version))"
(
  cd "$repo_root/bindings/go"
  export GOPROXY=off CGO_ENABLED=1
  # Go's build cache keys cgo packages on CGO_* flags but not on pkg-config output or on headers
  # outside the package: name the build tree and the header in the flags, so a cached build made
  # against another library build is never reused.
  cache_key="$(cat "$repo_root/include/longattn.h" <(echo "$build_dir") | sha256sum | cut -c1-16)"
  export CGO_CFLAGS="${CGO_CFLAGS:--g -O2} -DLONGATTN_GO_CACHE_KEY=$cache_key"
  go vet ./...
  go test -count=1 -v ./... 2>&1 | grep -Ev '^=== (RUN|PAUSE|CONT)'
  echo "== go: go test with GODEBUG=cgocheck=2"
  GODEBUG=cgocheck=2 go test -count=1 ./...
  if [[ "${LONGATTN_GO_RACE:-0}" == 1 ]]; then
    go test -count=1 -race ./...
  fi
)
echo "== bindings: all passed"
