"""`await handle`: native threads awaited from asyncio (tokio::join!)."""
from __future__ import annotations

import asyncio
import threading
import time

import pytest

import pyconc
from pyconc import Ok


def test_await_handle_gives_the_threads_result():
    async def main():
        return await pyconc.spawn(lambda: 6 * 7)

    assert asyncio.run(main()) == Ok(42)


def test_await_handle_gives_err_for_a_failing_thread():
    async def main():
        return await pyconc.spawn(lambda: 1 / 0)

    r = asyncio.run(main())
    assert isinstance(r.unwrap_err(), ZeroDivisionError)


def test_gather_over_many_handles_is_tokio_join():
    async def main():
        hs = [pyconc.spawn(lambda i=i: (time.sleep(0.001 * (i % 5)), i)[1]) for i in range(50)]
        return await asyncio.gather(*hs)

    assert asyncio.run(main()) == [Ok(i) for i in range(50)]


def test_await_does_not_block_the_loop():
    ev = threading.Event()

    async def main():
        h = pyconc.spawn(ev.wait, 10)
        ticks = 0
        waiter = asyncio.ensure_future(h)  # type: ignore[arg-type]
        while not waiter.done():
            ticks += 1
            if ticks == 5:
                ev.set()
            await asyncio.sleep(0.01)
        return ticks, waiter.result()

    ticks, r = asyncio.run(main())
    assert ticks >= 5 and r == Ok(True)


def test_awaiting_a_finished_handle_and_awaiting_twice():
    async def main():
        h = pyconc.spawn(int, "7")
        h.join()
        return await h, await h, h.join()

    a, b, c = asyncio.run(main())
    assert a == b == c == Ok(7)


def test_awaited_handle_counts_as_joined_in_a_scope():
    async def main(h):
        return await h

    with pyconc.scope() as s:
        h = s.spawn(lambda: 1 / 0)
        assert asyncio.run(main(h)).is_err()


def test_await_with_timeout_cancels_the_wait_not_the_thread():
    ev = threading.Event()

    async def main(h):
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(h, 0.05)  # type: ignore[arg-type]

    h = pyconc.spawn(ev.wait, 10)
    asyncio.run(main(h))
    ev.set()
    assert h.join(timeout=10) == Ok(True)


def test_loop_closed_before_the_thread_finishes_does_not_crash():
    ev = threading.Event()
    h = pyconc.spawn(ev.wait, 10)

    async def main():
        t = asyncio.ensure_future(h)  # type: ignore[arg-type]
        await asyncio.sleep(0.01)
        t.cancel()

    asyncio.run(main())
    ev.set()
    assert h.join(timeout=10) == Ok(True)


def test_awaiting_from_several_loops_in_several_threads():
    def run_loop(i):
        async def main():
            return await pyconc.spawn(lambda: i)

        return asyncio.run(main())

    hs = [pyconc.spawn(run_loop, i) for i in range(4)]
    assert [h.join(timeout=30).unwrap() for h in hs] == [Ok(i) for i in range(4)]
