# Shared set-up of scripts/demo.sh and scripts/test.sh (sourced, not run).
# Installs only what is missing; a plain Rust toolchain is all the default
# backend (wasmtime) needs.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# Reuse one build directory outside the clone when there is one, so a fresh
# clone does not rebuild wasmtime from scratch (set CARGO_TARGET_DIR to
# choose another).
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/morph/target}"
mkdir -p "$CARGO_TARGET_DIR"

if ! command -v cargo >/dev/null 2>&1; then
  echo "morph: cargo not found; install Rust 1.95 or newer (https://rustup.rs)" >&2
  exit 1
fi
if command -v rustup >/dev/null 2>&1; then
  for component in rustfmt clippy; do
    rustup component list --installed 2>/dev/null | grep -q "^$component" \
      || rustup component add "$component"
  done
fi

# System packages the all-backends build needs: libclang for wasm3x-sys's
# bindgen (the wasm3 backend); Debian's CPython 3.11 for the python backend
# (python3.11-dev to build against, libpython3.11 to run: .cargo/config.toml
# points PYO3_PYTHON at /usr/bin/python3.11). A plain `cargo build` of the
# default members needs none of them.
need=()
for pkg in libclang-dev python3.11-dev libpython3.11; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "morph: installing ${need[*]} (apt-get)" >&2
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}"
fi
