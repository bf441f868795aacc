"""A thread woken from a pyconc wait looks at the GIL before taking it back
(csrc/module/gil.c): while the thread that woke it still holds the GIL it
spins and yields for a bounded while instead of sleeping in CPython's
take_gil at once.  These tests check that the look is active where the
GIL's layout is known, that it catches the hand-off it was made for, and
that a holder keeping the GIL only costs the bounded look, never the wait's
result."""
from __future__ import annotations

import asyncio
import sys
import sysconfig
import threading
import time

import pyconc
from pyconc import _core

FREE_THREADED = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))
# the builds whose GIL flag gil.c reads: 3.11-3.13 with a GIL
KNOWN = not FREE_THREADED and (3, 11) <= sys.version_info[:2] <= (3, 13)


def test_the_gil_flag_is_read_exactly_where_its_layout_is_known():
    known, looking, caught, gave_up = _core._gil_look_stats()
    assert known is KNOWN
    assert looking >= 0 and caught >= 0 and gave_up >= 0
    if not KNOWN:
        assert (looking, caught, gave_up) == (0, 0, 0)


def _wake_while_holding_the_gil(hold_after_look: float):
    """Set an Event a thread waits on while this thread holds the GIL, keep
    holding it (running Python, no blocking call) until the woken thread is
    looking at the GIL (at most 5 s), then hold_after_look seconds more, then
    let it go (join).  Returns the stats before and after, and what the
    waiter's wait returned."""
    ev, done = pyconc.Event(), []
    t = threading.Thread(target=lambda: done.append(ev.wait(timeout=10)))
    t.start()
    time.sleep(0.02)  # the waiter is parked
    before = _core._gil_look_stats()
    ev.set()
    if KNOWN:
        give_up_at = time.perf_counter() + 5
        while _core._gil_look_stats()[1] == 0 and time.perf_counter() < give_up_at:
            pass
        end = time.perf_counter() + hold_after_look
        while time.perf_counter() < end:
            pass
    t.join(10)
    return before, _core._gil_look_stats(), done


def test_a_woken_thread_catches_the_gil_as_its_waker_drops_it():
    """The waker drops the GIL (a blocking join) as soon as the woken thread
    looks: the look ends by catching it, not by giving up.  A waker the OS
    preempts for over 50 us makes one try give up instead, so up to 20."""
    for _ in range(20):
        before, after, done = _wake_while_holding_the_gil(0.0)
        assert done == [True]
        if not KNOWN or after[2] > before[2]:
            break
    if KNOWN:
        assert after[2] > before[2], (before, after)
    else:
        assert after == before == (False, 0, 0, 0)


def test_a_thread_woken_by_a_coroutine_completes_every_round_trip():
    """The thread -> coroutine round trip of issue 17 (each permit a
    coroutine releases wakes the thread while the loop still holds the
    GIL): nothing lost or duplicated, no permit left over."""
    n = 300
    got = []

    async def main():
        to_coro, to_thread = pyconc.Semaphore(0), pyconc.Semaphore(0)

        def thread():
            for i in range(n):
                got.append(i)
                to_coro.release()
                to_thread.acquire().forget()

        t = threading.Thread(target=thread)
        t.start()
        for _ in range(n):
            (await to_coro.acquire_async()).forget()
            to_thread.release()
        await asyncio.get_running_loop().run_in_executor(None, t.join)
        return to_coro.available_permits(), to_thread.available_permits()

    assert asyncio.run(main()) == (0, 0)
    assert got == list(range(n))


def test_a_holder_keeping_the_gil_ends_the_look_and_the_wait_still_completes():
    """The waker keeps the GIL for 20 ms after the woken thread starts
    looking: the look gives up (PCC_WAIT_SPIN_NS) and the thread takes the
    GIL the ordinary way, and its wait still returns True."""
    before, after, done = _wake_while_holding_the_gil(0.02)
    assert done == [True]
    if KNOWN:
        assert after[3] > before[3], (before, after)
        assert after[1] == 0
    else:
        assert after == before == (False, 0, 0, 0)
