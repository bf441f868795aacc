"""Stress runs of the coordination primitives (issue 17): threads and
coroutines hammer one object at once; every run counts (never more than N
permits held, every permit back at the end, every token produced consumed
once, no waiter left behind).  Sizes scale with PYCONC_STRESS_SCALE."""
from __future__ import annotations

import asyncio
import random
import threading

import pytest

import pyconc
from pyconc import Event, LockTimeoutError, Notify, Semaphore

from conftest import run_threads, stress_scale


class Holders:
    """Counts permits held right now and the most ever held at once."""

    def __init__(self):
        self.now = pyconc.AtomicInt(0)
        self.peak = pyconc.AtomicInt(0)

    def enter(self, n):
        now = self.now.fetch_add(n) + n
        while True:
            p = self.peak.load()
            if now <= p or self.peak.compare_exchange(p, now).is_ok():
                return

    def leave(self, n):
        self.now.fetch_sub(n)


def _loop_thread(coro_factory, errors):
    def body():
        try:
            asyncio.run(coro_factory())
        except BaseException as e:  # re-raised in the test
            errors.append(e)
    t = threading.Thread(target=body)
    t.start()
    return t


@pytest.mark.timeout(300)
def test_semaphore_threads_and_coroutines_never_exceed_the_permits_and_lose_none():
    permits = 4
    sem = Semaphore(permits)
    held = Holders()
    rounds = stress_scale(1500, 50)
    errors = []

    def thread_user(i):
        rng = random.Random(i)
        for _ in range(rounds):
            n = rng.randint(1, 3)
            timeout = rng.choice([None, 0.0005, 0.01])
            try:
                p = sem.acquire(n, timeout=timeout)
            except LockTimeoutError:
                continue
            held.enter(n)
            held.leave(n)
            p.release()

    async def coro_user(i):
        rng = random.Random(100 + i)
        for _ in range(rounds // 2):
            n = rng.randint(1, 3)
            if rng.random() < 0.3:
                try:  # cancelled while queued, or just after the grant
                    p = await asyncio.wait_for(sem.acquire_async(n), 0.0005)
                except asyncio.TimeoutError:
                    continue
            else:
                p = await sem.acquire_async(n)
            held.enter(n)
            await asyncio.sleep(0)
            held.leave(n)
            p.release()

    async def coros():
        await asyncio.gather(*[coro_user(i) for i in range(4)])

    loops = [_loop_thread(coros, errors) for _ in range(2)]
    run_threads(thread_user, 4, timeout=240)
    for t in loops:
        t.join(240)
    assert not errors, errors
    assert held.peak.load() <= permits
    assert held.now.load() == 0
    assert sem.available_permits() == permits
    assert repr(sem) == f"Semaphore(permits={permits}, waiters=0)"


@pytest.mark.timeout(300)
def test_notify_tokens_produced_by_threads_are_each_consumed_once_despite_cancellations():
    """Producers add a token and notify_one; consumers (threads and
    coroutines, some giving up their waits by timeout) take tokens.  A lost
    notification would leave a consumer asleep with tokens left: the run
    would not finish."""
    n = Notify()
    tokens = pyconc.AtomicInt(0)
    taken = pyconc.AtomicInt(0)
    per_producer = stress_scale(3000, 100)
    producers = 2
    total = per_producer * producers
    done = Event()

    def take():
        while True:
            t = tokens.load()
            if t == 0:
                return False
            if tokens.compare_exchange(t, t - 1).is_ok():
                if taken.fetch_add(1) + 1 == total:
                    done.set()
                return True

    def thread_consumer(_):
        while not done.is_set():
            if not take():
                n.wait(timeout=0.05)

    async def coro_consumer(i):
        rng = random.Random(i)
        while not done.is_set():
            if take():
                continue
            try:
                await asyncio.wait_for(n.notified(), rng.choice([0.0002, 0.05]))
            except asyncio.TimeoutError:
                pass

    async def coros():
        await asyncio.gather(*[coro_consumer(i) for i in range(3)])

    def producer(_):
        for _ in range(per_producer):
            tokens.fetch_add(1)
            n.notify_one()

    errors = []
    loop_t = _loop_thread(coros, errors)
    consumers = [pyconc.spawn(thread_consumer, i) for i in range(2)]
    run_threads(producer, producers, timeout=240)
    assert done.wait(240)
    for h in consumers:
        h.join(timeout=60).unwrap()
    loop_t.join(60)
    assert not errors, errors
    assert taken.load() == total and tokens.load() == 0


@pytest.mark.timeout(300)
def test_cancel_racing_a_thread_release_never_loses_the_permit():
    rounds = stress_scale(1500, 50)

    async def main():
        lost = 0
        for i in range(rounds):
            sem = Semaphore(0)
            t = asyncio.ensure_future(sem.acquire_async())
            await asyncio.sleep(0)  # queued
            th = threading.Thread(target=sem.release)
            th.start()
            if i % 2:
                await asyncio.sleep(0)
            t.cancel()
            try:
                p = await t
                p.release()  # the grant won the race: it is ours to give back
            except asyncio.CancelledError:
                pass
            th.join()
            if sem.available_permits() != 1 or "waiters=0" not in repr(sem):
                lost += 1
        return lost

    assert asyncio.run(main()) == 0


@pytest.mark.timeout(300)
def test_event_set_then_clear_at_once_still_wakes_every_registered_waiter():
    """gh-57711's rule (CPython's EventTests.test_set_and_clear) with threads
    and coroutines together, many rounds."""
    rounds = stress_scale(300, 20)
    for _ in range(rounds):
        ev = Event()
        results = []
        errors = []
        hs = [pyconc.spawn(ev.wait, 30) for _ in range(3)]

        async def waiters():
            results.extend(await asyncio.gather(*[ev.wait_async() for _ in range(3)]))

        t = _loop_thread(waiters, errors)
        for _ in range(30000):
            if "waiters=6" in repr(ev):
                break
            threading.Event().wait(0.0005)
        assert repr(ev) == "Event(set=False, waiters=6)"
        ev.set()
        ev.clear()
        assert [h.join().unwrap() for h in hs] == [True] * 3
        t.join(30)
        assert not errors and results == [True] * 3
