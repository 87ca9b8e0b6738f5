"""Concurrent executions from threads and from asyncio tasks: results stay
each caller's own, and a running extension blocks neither other threads
(the GIL is released) nor the event loop."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from morph_fixtures import KINDS

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
    looping = threading.Thread(target=lambda: pytest.raises(Exception, kitchens[kind].execute, "loop"))
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
