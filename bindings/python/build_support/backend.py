"""PEP 517 build backend of morph-runtime: maturin, plus the `morph-worker`
binary the package ships.

A Python application cannot be re-executed as a Morph worker process (its
program is the Python interpreter), so JavaScript and Python extensions run
in workers of `morph-worker` (crates/morph-script-worker: the Boa and
embedded-CPython engines under the same sandbox as from Rust). It is built
here from the repository's workspace, with its lockfile, and added to the
wheel maturin builds as morph_runtime/bin/morph-worker (with its RECORD
line; maturin itself leaves out files git ignores, and a build output is
one); `morph_runtime.worker_program()` finds it there.
"""

import base64
import hashlib
import os
import shutil
import subprocess
import tempfile
import zipfile
from pathlib import Path

import maturin
from maturin import (  # noqa: F401  (re-exported PEP 517 hooks)
    get_requires_for_build_editable,
    get_requires_for_build_sdist,
    get_requires_for_build_wheel,
    prepare_metadata_for_build_editable,
    prepare_metadata_for_build_wheel,
)

PACKAGE = Path(__file__).resolve().parent.parent
ROOT = PACKAGE.parent.parent
WORKER = "morph_runtime/bin/morph-worker"


def _target_dir() -> Path:
    # The build directory scripts/env.sh uses, so the package reuses the
    # workspace's warm build (both builds are release, the tests' debug).
    chosen = os.environ.get("CARGO_TARGET_DIR") or str(Path.home() / ".cache" / "morph" / "target")
    os.environ["CARGO_TARGET_DIR"] = chosen
    return Path(chosen)


def _build_worker(into: Path) -> Path:
    """Builds morph-worker and returns a copy in `into` without debug info."""
    # The system packages the worker needs (Debian's python3.11-dev and
    # libpython3.11: it embeds that CPython), installed when missing.
    subprocess.run(["bash", str(ROOT / "scripts" / "env.sh")], check=True)
    target = _target_dir()
    env = dict(os.environ)
    # The worker embeds CPython: it links libpython (the extension module
    # does not).
    env.pop("PYO3_BUILD_EXTENSION_MODULE", None)
    subprocess.run(
        ["cargo", "build", "--release", "--locked", "-p", "morph-script-worker"],
        cwd=ROOT,
        env=env,
        check=True,
    )
    worker = into / "morph-worker"
    shutil.copy2(target / "release" / "morph-worker", worker)
    if shutil.which("strip"):
        subprocess.run(["strip", "--strip-debug", str(worker)], check=True)
    return worker


def _add_to_wheel(wheel: Path, worker: Path):
    data = worker.read_bytes()
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    rewritten = wheel.with_suffix(".tmp")
    with zipfile.ZipFile(wheel) as source, zipfile.ZipFile(rewritten, "w", zipfile.ZIP_DEFLATED) as out:
        record = next(n for n in source.namelist() if n.endswith(".dist-info/RECORD"))
        # The package's files first, .dist-info last (PEP 427).
        items = [i for i in source.infolist() if i.filename not in (record, WORKER)]
        items.sort(key=lambda i: ".dist-info/" in i.filename)
        entry = zipfile.ZipInfo(WORKER, date_time=(1980, 1, 1, 0, 0, 0))
        entry.external_attr = 0o100755 << 16
        entry.create_system = 3
        entry.compress_type = zipfile.ZIP_DEFLATED
        first_meta = next((n for n, i in enumerate(items) if ".dist-info/" in i.filename), len(items))
        for item in items[:first_meta]:
            out.writestr(item, source.read(item))
        out.writestr(entry, data)
        for item in items[first_meta:]:
            out.writestr(item, source.read(item))
        lines = [line for line in source.read(record).decode().splitlines() if not line.startswith(WORKER + ",")]
        lines.insert(len(lines) - 1, f"{WORKER},sha256={digest},{len(data)}")
        out.writestr(source.getinfo(record), "\n".join(lines) + "\n")
    rewritten.replace(wheel)


def build_sdist(sdist_directory, config_settings=None):
    raise RuntimeError(
        "morph-runtime builds from the repository (pip install ./bindings/python): "
        "the worker it ships is built from the whole workspace, which an sdist of this directory lacks"
    )


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    with tempfile.TemporaryDirectory() as tmp:
        worker = _build_worker(Path(tmp))
        name = maturin.build_wheel(wheel_directory, config_settings, metadata_directory)
        _add_to_wheel(Path(wheel_directory) / name, worker)
    return name


def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
    # An editable install imports the source tree: the worker goes there
    # (python/morph_runtime/bin/, ignored by git).
    bin_dir = PACKAGE / "python" / "morph_runtime" / "bin"
    bin_dir.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copy2(_build_worker(Path(tmp)), bin_dir / "morph-worker")
    return maturin.build_editable(wheel_directory, config_settings, metadata_directory)
