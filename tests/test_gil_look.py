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
    known, caught, gave_up = _core._gil_look_stats()
    assert known is KNOWN
    assert caught >= 0 and gave_up >= 0
    if not KNOWN:
        assert (caught, gave_up) == (0, 0)


def test_a_thread_woken_by_a_coroutine_catches_the_gil_as_the_loop_drops_it():
    """The thread -> coroutine round trip of issue 17: each permit a
    coroutine releases wakes the thread while the loop still holds the GIL.
    Whether a given round finds the GIL held depends on the machine's
    timing (a thread still looking for its permit, not parked): rounds of
    300 run until one look catches the GIL (at most 20 rounds)."""
    n = 300

    async def main(got):
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

    before = _core._gil_look_stats()
    for _ in range(20):
        got = []
        assert asyncio.run(main(got)) == (0, 0)
        assert got == list(range(n))
        after = _core._gil_look_stats()
        if after[1] > before[1]:
            break
    if KNOWN:
        assert after[1] > before[1], (before, after)
    else:
        assert after == before


def test_a_holder_keeping_the_gil_ends_the_look_and_the_wait_still_completes():
    """The main thread sets the event, then runs Python for 30 ms without a
    blocking call: the woken thread gives up looking (PCC_WAIT_SPIN_NS) and
    takes the GIL the ordinary way, after the switch interval."""
    ev, done = pyconc.Event(), []

    def waiter():
        done.append(ev.wait(timeout=10))

    t = threading.Thread(target=waiter)
    t.start()
    time.sleep(0.05)  # the waiter is parked (50 µs of looking, then asleep)
    before = _core._gil_look_stats()
    ev.set()
    end = time.perf_counter() + 0.03
    x = 0
    while time.perf_counter() < end:  # holds the GIL; no blocking call
        x += 1
    t.join(10)
    after = _core._gil_look_stats()
    assert done == [True]
    if KNOWN:
        assert after[2] > before[2], (before, after)
    else:
        assert after == before
