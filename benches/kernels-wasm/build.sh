#!/usr/bin/env bash
# Rebuilds extension.wasm from src/ and ../kernels with Debian's wasm32 Rust
# toolchain (rustc-web; default wasm32 features), exactly as checked in.
exec "$(dirname "$0")/../../scripts/build-wasm-rust.sh" "$(dirname "$0")" morph_kernels_wasm
