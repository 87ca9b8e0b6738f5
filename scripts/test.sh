#!/usr/bin/env bash
# Every check CI runs: formatting, clippy with warnings as errors, and all
# tests (unit, CLI, and the conformance suite on every backend: each backend
# crate runs it as `cargo test` trials, and the CLI test runs the matrix of
# a build with every backend feature).
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --all-features --locked -- -D warnings
cargo test --workspace --all-features --locked
