"""The repository's examples and conformance fixtures as extensions of
each kind (shared by the tests and bench/noop.py)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = ROOT / "examples"
FIXTURES = ROOT / "conformance" / "fixtures"

#: Every extension kind, with its hello example and entry file.
KINDS = {
    "wasm": ("hello", "extension.wat"),
    "js": ("hello-js", "extension.js"),
    "python": ("hello-py", "extension.py"),
}


def fixture_as(name: str, kind: str, into: Path) -> Path:
    """The conformance fixture `name` as an extension of `kind` (its twin
    entry file and the manifest's runtime changed), in a directory under
    `into`."""
    source = FIXTURES / name
    target = into / f"{name}-{kind}"
    target.mkdir(parents=True)
    entry = KINDS[kind][1]
    shutil.copy(source / entry, target / entry)
    manifest = (source / "manifest.yaml").read_text()
    manifest = re.sub(r"(?m)^runtime: .*$", f"runtime: {kind}", manifest)
    manifest = re.sub(r"(?m)^entry: .*$", f"entry: {entry}", manifest)
    (target / "manifest.yaml").write_text(manifest)
    return target
