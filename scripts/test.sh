#!/usr/bin/env bash
# Every check CI runs: formatting, clippy with warnings as errors, all
# tests (unit, CLI, the example host application, and the conformance
# suite on every backend: each backend crate runs it as `cargo test`
# trials, and the CLI test runs the matrix of a build with every backend
# feature), and a check that the library builds for a system without
# worker processes (macOS, with Debian's rustc-web and -Zbuild-std), and
# the Python package (bindings/python) with its pytest suite.
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --all-features --locked -- -D warnings
cargo test --workspace --all-features --locked

# The script backends build on non-Linux systems (js-inprocess there; the
# worker processes are Linux only): checked for macOS with the toolchain
# scripts/build-wasm-rust.sh uses, which can build std for any target.
need=()
for pkg in rustc-web cargo-web rust-web-src; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}"
fi
RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1 CARGO_TARGET_DIR="$CARGO_TARGET_DIR/cross" \
  /usr/bin/cargo check --locked -p morph --no-default-features --features js,wasmi \
  --target x86_64-apple-darwin -Zbuild-std=std,panic_abort

# The Python package: its own cargo workspace (an abi3 extension module),
# linted like the rest, built and installed by its one pip command into a
# virtual environment outside the clone (reused), then its tests.
PYO3_BUILD_EXTENSION_MODULE=1 cargo fmt --manifest-path bindings/python/Cargo.toml -- --check
PYO3_BUILD_EXTENSION_MODULE=1 cargo clippy --manifest-path bindings/python/Cargo.toml --all-targets --locked -- -D warnings
venv="${MORPH_PYTHON_VENV:-$HOME/.cache/morph/venv}"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -m pytest --version >/dev/null 2>&1 || "$venv/bin/pip" install -q "pytest>=8"
"$venv/bin/pip" install -q --force-reinstall --no-deps ./bindings/python
"$venv/bin/python" -m pytest -q bindings/python/tests
