"""Concurrent executions from threads and from asyncio tasks: results stay
each caller's own, and a running extension blocks neither other threads
(the GIL is released) nor the event loop."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

import morph_runtime as morph
from morph_fixtures import KINDS, fixture_as

ALL = list(KINDS)


def test_threads_get_their_own_results_on_every_kind(kitchens):
    def run(n):
        kind = ALL[n % len(ALL)]
        out = kitchens[kind].execute("echo", {"text": f"t{n}", "count": n}, {"user_id": f"u{n}"})
        return kind, n, out

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(run, range(48)))
    for kind, n, out in results:
        assert out["params"] == {"text": f"t{n}", "count": n}, kind
        assert out["context"]["user_id"] == f"u{n}", kind


@pytest.mark.parametrize("kind", ALL)
def test_a_running_extension_does_not_hold_the_gil(kitchens, kind):
    # The loop runs until its 2 s limit; meanwhile this thread keeps
    # executing other calls, which it could not if the GIL were held.
    outcome = []

    def loop():
        try:
            kitchens[kind].execute("loop")
        except morph.MorphError as error:
            outcome.append(error.kind)

    looping = threading.Thread(target=loop)
    looping.start()
    # Let it get into the call; a call holding the GIL would keep this
    # thread asleep until the loop's end.
    time.sleep(0.3)
    done = 0
    while looping.is_alive() and done < 5:
        kitchens["wasm"].execute("echo", {"text": "meanwhile"})
        done += 1
    still_running = looping.is_alive()
    looping.join()
    assert done == 5 and still_running
    assert outcome == ["timeout"]


def test_asyncio_tasks_run_concurrently_without_blocking_the_loop(kitchens):
    async def main():
        ticks = 0
        stop = asyncio.Event()

        async def ticker():
            nonlocal ticks
            while not stop.is_set():
                ticks += 1
                await asyncio.sleep(0.01)

        tick = asyncio.create_task(ticker())
        looping = asyncio.create_task(kitchens["python"].execute_async("loop"))
        echoes = await asyncio.gather(
            *(kitchens[ALL[n % 3]].execute_async("echo", {"text": f"a{n}"}) for n in range(30))
        )
        with pytest.raises(Exception) as timed_out:
            await looping
        stop.set()
        await tick
        return ticks, echoes, timed_out.value

    ticks, echoes, error = asyncio.run(main())
    assert [e["params"]["text"] for e in echoes] == [f"a{n}" for n in range(30)]
    assert getattr(error, "kind", None) == "timeout"
    # The loop ran 2 s; the event loop ticked meanwhile.
    assert ticks > 10


def test_a_host_sized_pool_runs_that_many_executions_at_once(tmp_path):
    # Eight 1 s loops: on an 8-thread pool they end together, about 1 s
    # after they start; Morph's shared pool (one thread per CPU) would run
    # them in turns.
    host = morph.Morph(threads=8)
    policy = morph.HostPolicy.allow_requested(ceilings=morph.ResourceLimits(max_execution_ms=1000))
    kitchen = host.load(fixture_as("kitchen", "wasm", tmp_path), policy)
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=8) as pool:
        kinds = list(pool.map(lambda _: _kind_of(kitchen, "loop"), range(8)))
    elapsed = time.monotonic() - started
    assert kinds == ["timeout"] * 8
    assert elapsed < 3.0, f"eight 1 s executions took {elapsed:.1f} s on eight threads"
    with pytest.raises(ValueError, match="threads"):
        morph.Morph(threads=0)


def _kind_of(extension, action):
    try:
        extension.execute(action)
        return "ok"
    except morph.MorphError as error:
        return error.kind


def test_async_calls_leave_the_event_loops_default_executor_free(tmp_path):
    host = morph.Morph(threads=8)
    policy = morph.HostPolicy.allow_requested(ceilings=morph.ResourceLimits(max_execution_ms=2000))
    kitchen = host.load(fixture_as("kitchen", "wasm", tmp_path), policy)

    async def main():
        loop = asyncio.get_running_loop()
        loops = [asyncio.create_task(kitchen.execute_async("loop")) for _ in range(8)]
        await asyncio.sleep(0.1)
        started = time.monotonic()
        await loop.run_in_executor(None, lambda: None)
        waited = time.monotonic() - started
        results = await asyncio.gather(*loops, return_exceptions=True)
        return waited, results

    waited, results = asyncio.run(main())
    assert all(getattr(r, "kind", None) == "timeout" for r in results), results
    # Eight 2 s executions on the default executor (min(32, CPUs + 4)
    # threads) would hold it for 2 s.
    assert waited < 1.0, f"the default executor was busy for {waited:.1f} s"
