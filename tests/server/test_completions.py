"""aio.Completions: results from other threads reach coroutines, the loop woken once a batch."""

from __future__ import annotations

import asyncio
import threading

import pytest

from raftkv.server.aio import Completions

pytestmark = pytest.mark.timeout(30)


def test_a_batch_finished_by_another_thread_wakes_the_loop_once():
    async def scenario():
        loop = asyncio.get_running_loop()
        completions = Completions(loop)
        pairs = [completions.future() for _ in range(50)]
        wakeups = 0
        original = loop.call_soon_threadsafe

        def counting(callback, *args):
            nonlocal wakeups
            wakeups += 1
            return original(callback, *args)

        loop.call_soon_threadsafe = counting  # type: ignore[method-assign]
        gone = pairs[7][0]
        gone.cancel()  # a caller that stopped waiting
        finisher = threading.Thread(target=lambda: [done(i, None if i != 3 else ValueError("3"))
                                                    for i, (_, done) in enumerate(pairs)])
        finisher.start()
        finisher.join()
        results = await asyncio.gather(*(f for i, (f, _) in enumerate(pairs) if i != 7), return_exceptions=True)
        return wakeups, results

    wakeups, results = asyncio.run(scenario())
    assert wakeups == 1
    assert isinstance(results[3], ValueError)
    assert [r for i, r in enumerate(results) if i != 3] == [i for i in range(50) if i not in (3, 7)]
