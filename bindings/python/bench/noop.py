"""The cost of one no-op `execute` from Python against the same call from
Rust, in one run, on the same loaded extension: the Rust loop
(`_execute_loop`, no Python between calls) and the Python loop
(`Extension.execute`: JSON encoding, the native call, the GIL released
and taken back, exceptions mapped) interleaved in rounds; the median of
the rounds is reported, per kind.

    python bindings/python/bench/noop.py [--calls N] [--rounds R]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import morph_runtime as morph

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from morph_fixtures import fixture_as  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    print("| kind | executor | Rust µs/call | Python µs/call | Python / Rust |")
    print("|---|---|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for kind, executor in [(k, e) for k in ("wasm", "js", "python") for e in ("pool", "inline")]:
            host = morph.Morph(executor=executor)
            ext = host.load(fixture_as("minimal", kind, Path(tmp) / executor), morph.HostPolicy())
            calls = args.calls if kind == "wasm" else max(args.calls // 10, 10)
            ext.execute("run")  # warm
            rust, python = [], []
            for _ in range(args.rounds):
                rust.append(ext._native._execute_loop("run", "{}", calls) / calls)
                started = time.perf_counter()
                for _ in range(calls):
                    ext.execute("run")
                python.append((time.perf_counter() - started) / calls)
            r, p = statistics.median(rust), statistics.median(python)
            print(f"| {kind} | {executor} | {r * 1e6:.1f} | {p * 1e6:.1f} | {p / r:.2f}x |")


if __name__ == "__main__":
    main()
