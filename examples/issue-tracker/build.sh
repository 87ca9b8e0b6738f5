#!/usr/bin/env bash
# Rebuilds extension.wasm from src/ with Debian's wasm32 Rust toolchain.
exec "$(dirname "$0")/../../scripts/build-wasm-rust.sh" "$(dirname "$0")" issue_tracker
