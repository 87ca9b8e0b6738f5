#!/usr/bin/env bash
# The main job: the conformance matrix on every compiled backend, then the
# demo extension (examples/hello, and its JavaScript and Python twins
# hello-js and hello-py) through `morph run`.
# Usage: scripts/demo.sh [cargo features of `morph-cli`, default: all-backends]
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"

cargo build -p morph-cli --features "${1:-all-backends}"
morph="$CARGO_TARGET_DIR/debug/morph"

echo "== backends"
"$morph" backends
echo
echo "== conformance matrix"
"$morph" conformance
echo
backends=$("$morph" backends)
for demo in hello hello-js hello-py; do
  case "$demo" in
    hello-js) grep -q '^js ' <<<"$backends" || continue ;;
    hello-py) grep -q '^python ' <<<"$backends" || continue ;;
  esac
  echo
  echo "== demo extension: examples/$demo"
  "$morph" describe "examples/$demo" >/dev/null
  "$morph" run "examples/$demo" hello
  "$morph" run "examples/$demo" whoami --context '{"user_id": "u-42", "request_id": "demo-1"}'
  "$morph" run "examples/$demo" secret --secret greeting="Hello from the vault"
done
