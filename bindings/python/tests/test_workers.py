"""Script extensions run in worker processes of the packaged morph-worker;
the Python host survives a killed worker and the next execution works."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

import morph_runtime as morph
from morph_fixtures import EXAMPLES


def workers():
    """Pids of this process's morph-worker processes: the warm workers it
    started and the call processes they forked."""
    processes = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            exe = os.readlink(entry / "exe")
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if exe.endswith("/morph-worker"):
            processes[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    ours = {pid for pid, parent in processes.items() if parent == os.getpid()}
    return ours | {pid for pid, parent in processes.items() if parent in ours}


def test_the_packaged_worker_is_the_program():
    program = morph.worker_program()
    assert program.is_file() and os.access(program, os.X_OK), program


@pytest.mark.parametrize("example", ["hello-js", "hello-py"])
def test_the_host_survives_a_killed_worker(example):
    others = workers()
    host = morph.Morph()
    hello = host.load(EXAMPLES / example, morph.HostPolicy())
    assert hello.execute("hello")["message"]
    ours = workers() - others
    assert ours, "a warm worker runs the extension"
    for pid in ours:
        os.kill(pid, signal.SIGKILL)
    # The next executions start a new worker (the first may find the dead
    # one: `trap`, the worker died, or `host_error`; none may hang or end
    # this process).
    outcomes = []
    for _ in range(3):
        try:
            outcomes.append(hello.execute("hello")["message"])
        except (morph.HostError, morph.Trap) as error:
            outcomes.append(error)
    assert isinstance(outcomes[-1], str), outcomes
    assert workers() - others - ours, "a new worker serves it"
