#!/usr/bin/env bash
# Builds a Rust extension crate for wasm32 with Debian's rustc-web toolchain
# (installed here when missing) and copies the module to <dir>/extension.wasm.
# Usage: scripts/build-wasm-rust.sh <crate dir> <library name>
set -euo pipefail
dir=$(cd "$1" && pwd)
lib=$2
need=()
for pkg in rustc-web cargo-web rust-web-src lld; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}"
fi
export RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1 CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_LINKER=wasm-ld
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR_WASM:-$dir/target}"
cd "$dir"
/usr/bin/cargo build --release --locked --target wasm32-unknown-unknown -Zbuild-std=std,panic_abort
cp "$CARGO_TARGET_DIR/wasm32-unknown-unknown/release/$lib.wasm" extension.wasm
echo "wrote $dir/extension.wasm ($(stat -c %s extension.wasm) bytes)"
