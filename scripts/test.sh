#!/usr/bin/env bash
# Every check CI runs: formatting, clippy with warnings as errors, and all
# tests (unit, CLI, and the conformance suite on every compiled backend).
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked
