"""The loop looks before it blocks (pyconc/_aio.py, _LookingSelector): a
loop that other threads wake spins briefly, without the GIL, before its
selector sleeps, and a wake in that spell is handed over without the fd.

Invariants: every hand-off arrives, whether it lands inside the spell (the
poke), just after it (the fd) or on the boundary; an idle loop does not
spin; a loop nobody wakes from other threads does not spin; timers still
fire; the wrapped selector is the loop's own in every other respect."""
from __future__ import annotations

import asyncio
import random
import threading
import time

import pytest

import pyconc
from pyconc import _aio

from conftest import stress_scale


def test_the_loop_gets_the_looking_selector_on_first_use_and_closes_cleanly():
    loop = asyncio.new_event_loop()
    try:
        inner = loop._selector  # type: ignore[attr-defined]
        tx, rx = pyconc.channel()
        threading.Timer(0.01, tx.send, (1,)).start()  # recv_async waits: the hub is made
        assert loop.run_until_complete(rx.recv_async()) == 1
        sel = loop._selector  # type: ignore[attr-defined]
        assert isinstance(sel, _aio._LookingSelector)
        assert sel.get_map() is inner.get_map()  # everything else is the selector's own
        # a second use does not wrap it twice
        tx.send(2)
        assert loop.run_until_complete(rx.recv_async()) == 2
        assert loop._selector is sel  # type: ignore[attr-defined]
    finally:
        loop.close()
    assert loop.is_closed()


@pytest.mark.parametrize("delays", ["none", "around the spell", "past it"])
def test_thread_to_coroutine_hand_offs_all_arrive_in_order(delays):
    """A thread releases permits and sends messages to a coroutine, one
    round trip at a time, with pauses that put the wake inside the loop's
    50 us spell, on its boundary and after it."""
    n = stress_scale(3000 if delays != "past it" else 200, 100)
    rnd = random.Random(5)
    pauses = {"none": [0.0] * n,
              "around the spell": [rnd.choice([0, 20e-6, 45e-6, 55e-6, 80e-6, 200e-6]) for _ in range(n)],
              "past it": [rnd.choice([0.0005, 0.002, 0.012]) for _ in range(n)]}[delays]
    to_coro, to_thread = pyconc.Semaphore(0), pyconc.Semaphore(0)
    tx, rx = pyconc.channel()

    def spin_for(s):
        end = time.perf_counter() + s
        while time.perf_counter() < end:
            pass

    def thread():
        for k in range(n):
            spin_for(pauses[k]) if pauses[k] < 0.001 else time.sleep(pauses[k])
            if k % 2:
                to_coro.release()
            else:
                tx.send(k)
            to_thread.acquire().forget()
        tx.close()

    async def main():
        got = []
        t = threading.Thread(target=thread)
        t.start()
        for k in range(n):
            if k % 2:
                (await to_coro.acquire_async()).forget()
                got.append(k)
            else:
                got.append(await rx.recv_async())
            to_thread.release()
        t.join()
        return got

    assert asyncio.run(main()) == list(range(n))
    assert to_coro.available_permits() == 0 and to_thread.available_permits() == 0


def _spells_and_cpu_while_idle(coro_factory):
    """Run coro_factory() in a loop, then let the loop idle in 100 short
    sleeps: (spells spun and wakes caught before the idle part, spells spun
    during it, the loop thread's CPU time during it)."""
    async def main():
        await coro_factory()
        hub = _aio._running_hub()[1]
        before = hub._spin_stats()
        t0 = time.thread_time()
        for _ in range(100):
            await asyncio.sleep(0.002)
        return before, hub._spin_stats()[0] - before[0], time.thread_time() - t0

    return asyncio.run(main())


def test_a_loop_threads_woke_spins_and_stops_once_idle():
    """Woken by threads: it spins before blocking and catches wakes there.
    Then idle (100 sleeps of 2 ms, each a select): only the spells within
    10 ms of the last thread wake.

    A round spins only when the loop reaches its select before the
    thread's release and within 10 ms of the previous wake; on a loaded
    machine (CI runs 4 copies of each test on 2 cores) some rounds do
    neither, so it goes on until 3 spells or 500 rounds.  One thread
    releases, 0.5 ms after each go: starting a Timer thread per round can
    itself take longer than 10 ms under load."""
    async def woken_by_a_thread():
        hub_spells = lambda: _aio._running_hub()[1]._spin_stats()[0]  # noqa: E731
        sem = pyconc.Semaphore(0)
        go, gone = pyconc.channel()

        def releaser():
            for _ in gone:  # until go is closed
                time.sleep(0.0005)
                sem.release()

        t = threading.Thread(target=releaser)
        t.start()
        try:
            go.send(None)
            (await sem.acquire_async()).forget()  # the hub exists from here
            first = hub_spells()
            for _ in range(500):
                go.send(None)
                (await sem.acquire_async()).forget()
                if hub_spells() - first >= 3:
                    break
        finally:
            go.close()
            t.join()

    (spells, pokes), idle_spells, cpu = _spells_and_cpu_while_idle(woken_by_a_thread)
    assert spells >= 3
    assert idle_spells <= 6, idle_spells
    assert cpu < 0.15, f"the idle loop thread used {cpu:.3f} s of CPU"


def test_wakes_inside_the_spell_are_caught_without_the_fd():
    """A thread and a coroutine hand a permit back and forth: some of the
    thread's releases land while the loop spins, and poke the hub.  On a
    loaded machine (pytest-run-parallel runs 4 copies on 2 cores) 200
    rounds may see none, so it goes on until the first poke or 5000
    rounds, as the spin test above does."""
    async def ping_pong():
        hub_pokes = lambda: _aio._running_hub()[1]._spin_stats()[1]  # noqa: E731
        a, b = pyconc.Semaphore(0), pyconc.Semaphore(0)
        go, gone = pyconc.channel()

        def thread():
            for _ in gone:  # until go is closed
                a.release()
                b.acquire().forget()

        t = threading.Thread(target=thread)
        t.start()
        try:
            for i in range(5000):
                go.send(None)
                (await a.acquire_async()).forget()
                b.release()
                if i >= 200 and hub_pokes() > 0:
                    break
        finally:
            go.close()
            t.join()

    (spells, pokes), _, _ = _spells_and_cpu_while_idle(ping_pong)
    assert pokes > 0 and spells >= pokes


def test_a_loop_no_thread_wakes_blocks_at_once():
    async def own_work_only():
        tx, rx = pyconc.channel()
        loop = asyncio.get_running_loop()
        for k in range(3):  # woken through the hub, by the loop's own thread
            loop.call_later(0.005, tx.send, k)
            assert await rx.recv_async() == k
        assert isinstance(loop._selector, _aio._LookingSelector)  # type: ignore[attr-defined]

    (spells, pokes), idle_spells, cpu = _spells_and_cpu_while_idle(own_work_only)
    assert (spells, pokes, idle_spells) == (0, 0, 0)


def test_timers_fire_while_threads_keep_waking_the_loop():
    """The spell counts against the selector's timeout: call_later callbacks
    run, in order, while a thread wakes the loop every ~100 us."""
    stop = threading.Event()
    sem = pyconc.Semaphore(0)

    def waker():
        while not stop.is_set():
            sem.release()
            time.sleep(0.0001)

    async def main():
        loop = asyncio.get_running_loop()
        fired = []
        for i in range(5):
            loop.call_later(0.01 * (i + 1), fired.append, i)
        t = threading.Thread(target=waker)
        t.start()
        try:
            deadline = loop.time() + 5
            while len(fired) < 5 and loop.time() < deadline:
                (await sem.acquire_async()).forget()
        finally:
            stop.set()
            t.join()
        return fired

    assert asyncio.run(main()) == [0, 1, 2, 3, 4]
