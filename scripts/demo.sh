#!/usr/bin/env bash
# The main job: the conformance matrix on every compiled backend, then the
# demo extension (examples/hello) through `morph run`.
# Usage: scripts/demo.sh [cargo features of `morph`, default: all-backends]
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"

cargo build -p morph --features "${1:-all-backends}"
morph="$CARGO_TARGET_DIR/debug/morph"

echo "== backends"
"$morph" backends
echo
echo "== conformance matrix"
"$morph" conformance
echo
echo "== demo extension: examples/hello"
"$morph" describe examples/hello
"$morph" run examples/hello hello
"$morph" run examples/hello whoami --context '{"user_id": "u-42", "request_id": "demo-1"}'
"$morph" run examples/hello secret --secret greeting="Hello from the vault"
