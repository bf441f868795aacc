"""Semaphore, SemaphorePermit, Event, Notify and WaitGroup (issue 17): the
documented behaviour of tokio's Semaphore and Notify, crossbeam's WaitGroup
and threading's Event; threads and coroutines on one object; cancellation
that loses nothing; Ctrl-C; bad input; repr."""
from __future__ import annotations

import asyncio
import gc
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import pyconc
from pyconc import Closed, Event, LockTimeoutError, Notify, Semaphore, SemaphorePermit, WaitGroup, WouldBlock

from conftest import assert_prompt, run_threads

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def wait_until(pred, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, "condition never became true"
        time.sleep(0.001)


# ---- Semaphore: threads -----------------------------------------------------------

def test_semaphore_acquire_returns_a_permit_that_release_gives_back_once():
    sem = Semaphore(3)
    p = sem.acquire(2)
    assert isinstance(p, SemaphorePermit)
    assert p.permits == 2 and not p.released
    assert sem.available_permits() == 1
    p.release()
    p.release()  # once: the second call does nothing
    assert p.released
    assert sem.available_permits() == 3


def test_semaphore_permit_with_block_releases_and_explicit_release_inside_is_not_doubled():
    sem = Semaphore(1)
    with sem.acquire() as p:
        assert sem.available_permits() == 0
        p.release()
        assert sem.available_permits() == 1
    assert sem.available_permits() == 1


def test_semaphore_with_statement_holds_one_permit():
    sem = Semaphore(2)
    with sem:
        assert sem.available_permits() == 1
    assert sem.available_permits() == 2


def test_semaphore_permits_are_never_returned_by_garbage_collection():
    sem = Semaphore(2)
    sem.acquire()
    gc.collect()
    assert sem.available_permits() == 1
    p = sem.acquire()
    del p
    gc.collect()
    assert sem.available_permits() == 0
    sem.release(2)
    assert sem.available_permits() == 2


def test_semaphore_forget_keeps_the_permits_out():
    sem = Semaphore(2)
    p = sem.acquire(2)
    p.forget()
    p.release()
    assert sem.available_permits() == 0


def test_semaphore_try_acquire_raises_wouldblock_and_takes_nothing():
    sem = Semaphore(1)
    with pytest.raises(WouldBlock):
        sem.try_acquire(2)
    assert sem.available_permits() == 1
    p = sem.try_acquire()
    with pytest.raises(WouldBlock):
        sem.try_acquire()
    p.release()


def test_semaphore_acquire_timeout_raises_lock_timeout_error_a_timeout_error():
    sem = Semaphore(0)
    with pytest.raises(LockTimeoutError):
        sem.acquire(timeout=0.02)
    with pytest.raises(TimeoutError):
        sem.acquire(timeout=0)
    assert sem.available_permits() == 0
    assert "waiters=0" in repr(sem)


def test_semaphore_blocked_acquire_is_woken_by_a_release_from_another_thread():
    sem = Semaphore(0)
    h = pyconc.spawn(lambda: sem.acquire(2, timeout=10).permits)
    wait_until(lambda: "waiters=1" in repr(sem))
    sem.release(1)
    time.sleep(0.02)
    assert "waiters=1" in repr(sem)  # has 1 of 2
    sem.release(1)
    assert h.join().unwrap() == 2
    assert sem.available_permits() == 0


def test_semaphore_large_request_is_not_starved_by_small_ones_fifo():
    """tokio: acquires are served in order; a request for 3 queued first is
    served before later requests for 1, even though those would fit."""
    sem = Semaphore(0)
    order = []
    big = pyconc.spawn(lambda: (sem.acquire(3, timeout=10), order.append("big")))
    wait_until(lambda: "waiters=1" in repr(sem))
    small = pyconc.spawn(lambda: (sem.acquire(1, timeout=10), order.append("small")))
    wait_until(lambda: "waiters=2" in repr(sem))
    sem.release(1)
    sem.release(1)
    time.sleep(0.05)
    assert order == []  # the small request does not overtake the big one
    with pytest.raises(WouldBlock):
        sem.try_acquire()  # nor does a newcomer
    sem.release(1)  # the third: the big request is complete
    big.join().unwrap()
    assert order == ["big"]
    assert "waiters=1" in repr(sem)
    sem.release(1)
    small.join().unwrap()
    assert order == ["big", "small"]


def test_semaphore_close_wakes_waiters_with_closed_and_refuses_later_acquires():
    sem = Semaphore(0)
    h = pyconc.spawn(lambda: sem.acquire(timeout=10))
    wait_until(lambda: "waiters=1" in repr(sem))
    sem.close()
    assert isinstance(h.join().err(), Closed)
    assert sem.is_closed()
    with pytest.raises(Closed):
        sem.try_acquire()
    with pytest.raises(Closed):
        sem.acquire(0)
    sem.release(1)  # permits can still be added
    assert sem.available_permits() == 1
    assert repr(sem) == "Semaphore(permits=1, waiters=0, closed)"


def test_semaphore_timed_out_waiter_gives_its_partial_permits_to_the_next():
    sem = Semaphore(0)
    first = pyconc.spawn(lambda: sem.acquire(5, timeout=0.3))
    wait_until(lambda: "waiters=1" in repr(sem))
    second = pyconc.spawn(lambda: sem.acquire(2, timeout=10).permits)
    wait_until(lambda: "waiters=2" in repr(sem))
    sem.release(2)  # collected by the first, which then times out
    assert isinstance(first.join().err(), LockTimeoutError)
    assert second.join().unwrap() == 2
    assert sem.available_permits() == 0


def test_semaphore_repr_shows_permits_and_waiters():
    sem = Semaphore(4)
    assert repr(sem) == "Semaphore(permits=4, waiters=0)"
    p = sem.acquire(3)
    assert repr(p) == "SemaphorePermit(permits=3, released=False)"
    assert repr(sem) == "Semaphore(permits=1, waiters=0)"


@pytest.mark.parametrize("bad, exc", [(-1, ValueError), (1.5, TypeError), (True, TypeError),
                                      ("3", TypeError), (2 ** 70, ValueError)])
def test_semaphore_rejects_bad_permit_counts(bad, exc):
    with pytest.raises(exc):
        Semaphore(bad)
    sem = Semaphore(1)
    with pytest.raises(exc):
        sem.acquire(bad)
    with pytest.raises(exc):
        sem.release(bad)
    assert sem.available_permits() == 1


class Index:
    """An integer-like object (as numpy.int64): has __index__."""

    def __init__(self, v):
        self.v = v

    def __index__(self):
        return self.v


def test_semaphore_accepts_index_integers_and_keywords():
    sem = Semaphore(Index(3))
    p = sem.acquire(n=Index(2), timeout=1)
    assert p.permits == 2
    with pytest.raises(TypeError):
        sem.acquire(1, timeout=1, n=1)
    with pytest.raises(TypeError):
        sem.try_acquire(1, timeout=1)
    with pytest.raises(ValueError):
        sem.acquire(timeout=-1)


def test_semaphore_release_past_the_maximum_is_a_value_error():
    sem = Semaphore(2 ** 60 - 2)
    with pytest.raises(ValueError):
        sem.release(5)
    assert sem.available_permits() == 2 ** 60 - 2


def test_semaphore_acquire_zero_permits_succeeds_at_once():
    sem = Semaphore(0)
    assert sem.acquire(0).permits == 0


# ---- Semaphore: coroutines ------------------------------------------------------------

def test_semaphore_async_with_bounds_concurrency_of_tasks():
    async def main():
        sem = Semaphore(2)
        running = 0
        peak = 0

        async def task():
            nonlocal running, peak
            async with sem:
                running += 1
                peak = max(peak, running)
                await asyncio.sleep(0.001)
                running -= 1

        await asyncio.gather(*[task() for _ in range(20)])
        return peak, sem.available_permits()

    assert asyncio.run(main()) == (2, 2)


def test_semaphore_acquire_async_returns_a_permit_released_by_a_thread_wakes_the_coroutine():
    async def main():
        sem = Semaphore(0)
        fut = asyncio.ensure_future(sem.acquire_async(2))
        await asyncio.sleep(0.01)
        assert not fut.done()
        t = threading.Thread(target=lambda: sem.release(2))
        t.start()
        permit = await asyncio.wait_for(fut, 10)
        t.join()
        return permit.permits, sem.available_permits()

    assert asyncio.run(main()) == (2, 0)


def test_cancelled_acquire_async_hands_granted_permits_to_the_next_waiter():
    async def main():
        sem = Semaphore(0)
        a = asyncio.ensure_future(sem.acquire_async())
        b = asyncio.ensure_future(sem.acquire_async())
        await asyncio.sleep(0.01)
        sem.release(1)  # granted to a (FIFO); a is cancelled before it runs
        a.cancel()
        with pytest.raises(asyncio.CancelledError):
            await a
        permit = await asyncio.wait_for(b, 10)
        return permit.permits, sem.available_permits()

    assert asyncio.run(main()) == (1, 0)


def test_cancelled_acquire_async_gives_back_partial_permits():
    async def main():
        sem = Semaphore(0)
        t = asyncio.ensure_future(sem.acquire_async(3))
        await asyncio.sleep(0.01)
        sem.release(2)
        t.cancel()
        with pytest.raises(asyncio.CancelledError):
            await t
        return sem.available_permits(), repr(sem)

    assert asyncio.run(main()) == (2, "Semaphore(permits=2, waiters=0)")


def test_acquire_async_with_asyncio_timeout_loses_nothing():
    async def main():
        sem = Semaphore(0)
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(sem.acquire_async(), 0.02)
        sem.release(1)
        return sem.available_permits()

    assert asyncio.run(main()) == 1


def test_closed_semaphore_raises_closed_in_waiting_coroutines():
    async def main():
        sem = Semaphore(0)
        t = asyncio.ensure_future(sem.acquire_async())
        await asyncio.sleep(0.01)
        sem.close()
        with pytest.raises(Closed):
            await t
        with pytest.raises(Closed):
            await sem.acquire_async()

    asyncio.run(main())


def test_coordination_awaitable_cannot_be_awaited_twice():
    async def main():
        sem = Semaphore(1)
        op = sem.acquire_async()
        p = await op
        with pytest.raises(RuntimeError):
            await op
        p.release()

    asyncio.run(main())


def test_abandoned_unawaited_and_collected_awaitables_leave_nothing_queued():
    async def main():
        sem = Semaphore(0)
        op = sem.acquire_async()
        it = op.__await__()
        fut = it.send(None)  # registers
        assert isinstance(fut, asyncio.Future)
        assert "waiters=1" in repr(sem)
        del it, op, fut
        gc.collect()
        assert "waiters=0" in repr(sem)
        sem.release(1)
        return sem.available_permits()

    assert asyncio.run(main()) == 1


def test_awaiting_outside_a_running_loop_is_a_runtime_error():
    sem = Semaphore(0)
    it = sem.acquire_async().__await__()
    with pytest.raises(RuntimeError):
        it.send(None)
    assert sem.available_permits() == 0 and "waiters=0" in repr(sem)


# ---- Event --------------------------------------------------------------------------------

def test_event_set_clear_wait_like_threading_event():
    ev = Event()
    assert not ev.is_set()
    assert ev.wait(0.01) is False
    ev.set()
    assert ev.is_set() and ev.wait() is True and ev.wait(0) is True
    ev.clear()
    assert not ev.is_set()
    assert repr(ev) == "Event(set=False, waiters=0)"


def test_event_set_wakes_every_waiting_thread_and_coroutine():
    ev = Event()
    n = 4

    async def coro_waiters():
        return await asyncio.gather(*[ev.wait_async() for _ in range(n)])

    results = []
    hs = [pyconc.spawn(ev.wait, 10) for _ in range(n)]
    t = threading.Thread(target=lambda: results.append(asyncio.run(coro_waiters())))
    t.start()
    wait_until(lambda: f"waiters={2 * n}" in repr(ev))
    ev.set()
    assert [h.join().unwrap() for h in hs] == [True] * n
    t.join()
    assert results == [[True] * n]


def test_event_wait_async_returns_at_once_when_set():
    ev = Event()
    ev.set()
    assert asyncio.run(asyncio.wait_for(ev.wait_async(), 1)) is True


def test_event_rejects_arguments():
    with pytest.raises(TypeError):
        Event(1)
    with pytest.raises(TypeError):
        Event().wait(timeout="x")


# ---- Notify (tokio's documented behaviour) -----------------------------------------------

def test_notify_one_with_nobody_waiting_stores_one_permit_only():
    n = Notify()
    n.notify_one()
    n.notify_one()
    assert repr(n) == "Notify(permit=True, waiters=0)"
    assert n.wait(timeout=1) is True
    assert n.wait(timeout=0.01) is False


def test_notify_waiters_wakes_current_waiters_only_and_stores_nothing():
    n = Notify()
    hs = [pyconc.spawn(n.wait, 10) for _ in range(3)]
    wait_until(lambda: "waiters=3" in repr(n))
    n.notify_waiters()
    assert [h.join().unwrap() for h in hs] == [True] * 3
    assert n.wait(timeout=0.01) is False


def test_notify_one_wakes_waiters_in_fifo_order():
    n = Notify()
    order = []

    def waiter(i):
        n.wait(10)
        order.append(i)

    hs = []
    for i in range(3):
        hs.append(pyconc.spawn(waiter, i))
        wait_until(lambda: f"waiters={i + 1}" in repr(n))
    for i in range(3):
        n.notify_one()
        wait_until(lambda: len(order) == i + 1)
    for h in hs:
        h.join().unwrap()
    assert order == [0, 1, 2]


def test_notified_created_before_notify_waiters_completes_as_in_tokio():
    async def main():
        n = Notify()
        op = n.notified()  # created, not yet awaited
        n.notify_waiters()
        await asyncio.wait_for(op, 1)
        return "done"

    assert asyncio.run(main()) == "done"


def test_cancelled_notified_passes_its_notify_one_on():
    async def main():
        n = Notify()
        a = asyncio.ensure_future(n.notified())
        b = asyncio.ensure_future(n.notified())
        await asyncio.sleep(0.01)
        n.notify_one()  # goes to a ...
        a.cancel()      # ... which gives up before acting on it
        with pytest.raises(asyncio.CancelledError):
            await a
        await asyncio.wait_for(b, 10)
        return repr(n)

    assert asyncio.run(main()) == "Notify(permit=False, waiters=0)"


def test_cancelled_only_waiter_turns_its_notify_one_back_into_the_stored_permit():
    async def main():
        n = Notify()
        a = asyncio.ensure_future(n.notified())
        await asyncio.sleep(0.01)
        n.notify_one()
        a.cancel()
        with pytest.raises(asyncio.CancelledError):
            await a
        return repr(n)

    assert asyncio.run(main()) == "Notify(permit=True, waiters=0)"


def test_thread_notifies_a_coroutine():
    async def main():
        n = Notify()
        t = asyncio.ensure_future(n.notified())
        await asyncio.sleep(0.01)
        th = threading.Thread(target=n.notify_one)
        th.start()
        await asyncio.wait_for(t, 10)
        th.join()

    asyncio.run(main())


# ---- WaitGroup (crossbeam) ---------------------------------------------------------------

def test_waitgroup_wait_blocks_until_every_other_member_dropped():
    wg = WaitGroup()
    done = []

    def worker(member, i):
        time.sleep(0.01 * i)
        done.append(i)
        member.drop()

    hs = [pyconc.spawn(worker, wg.clone(), i) for i in range(4)]
    assert wg.wait(timeout=10) is True
    assert sorted(done) == [0, 1, 2, 3]
    for h in hs:
        h.join().unwrap()


def test_waitgroup_member_leaves_when_collected_and_after_with_block():
    wg = WaitGroup()
    m = wg.clone()
    with wg.clone():
        assert wg.members == 3
    assert wg.members == 2
    del m
    gc.collect()
    assert wg.members == 1
    assert wg.wait(0) is True


def test_waitgroup_wait_times_out_and_dropped_handle_raises_use_after_drop():
    wg = WaitGroup()
    other = wg.clone()
    assert wg.wait(timeout=0.02) is False
    with pytest.raises(pyconc.UseAfterDrop):
        wg.wait()
    with pytest.raises(pyconc.UseAfterDrop):
        wg.clone()
    with pytest.raises(pyconc.UseAfterDrop):
        wg.drop()
    assert repr(wg) == "WaitGroup(members=1, dropped)"
    other.drop()
    assert other.members == 0


def test_waitgroup_wait_async_is_woken_by_threads():
    async def main():
        wg = WaitGroup()
        members = [wg.clone() for _ in range(3)]
        ts = [threading.Thread(target=m.drop) for m in members]
        del members
        for t in ts:
            t.start()
        await asyncio.wait_for(wg.wait_async(), 10)
        for t in ts:
            t.join()
        return wg.members

    assert asyncio.run(main()) == 0


# ---- mixed users, Ctrl-C --------------------------------------------------------------------

def test_threads_and_coroutines_share_one_semaphore_without_exceeding_it():
    sem = Semaphore(3)
    holders = pyconc.AtomicInt(0)
    peak = pyconc.AtomicInt(0)
    rounds = 200

    def hold():
        now = holders.fetch_add(1) + 1
        while True:
            p = peak.load()
            if now <= p or peak.compare_exchange(p, now).is_ok():
                break
        holders.fetch_sub(1)

    def thread_user(_):
        for _ in range(rounds):
            with sem:
                hold()

    async def coro_user():
        for _ in range(rounds):
            async with sem:
                hold()
                await asyncio.sleep(0)

    async def coros():
        await asyncio.gather(*[coro_user() for _ in range(4)])

    t = threading.Thread(target=lambda: asyncio.run(coros()))
    t.start()
    run_threads(thread_user, 3)
    t.join()
    assert peak.load() <= 3
    assert sem.available_permits() == 3


@pytest.mark.parametrize("call", ["sem", "event", "notify", "waitgroup"])
def test_ctrl_c_interrupts_a_blocked_wait_promptly(interrupt_main, call):
    sem, ev, n, wg = Semaphore(0), Event(), Notify(), WaitGroup()
    keep = wg.clone()
    f = {"sem": sem.acquire, "event": ev.wait, "notify": n.wait, "waitgroup": wg.wait}[call]
    with interrupt_main(0.1) as irq:
        with pytest.raises(KeyboardInterrupt):
            f()
    assert_prompt(irq)
    assert "waiters=0" in repr(sem) + repr(ev) + repr(n) or call == "waitgroup"
    keep.drop()


def test_ctrl_c_on_a_granted_semaphore_wait_gives_the_permits_back_in_a_subprocess():
    """A blocked acquire interrupted by SIGINT in a real process: the
    program gets KeyboardInterrupt and the Semaphore ends with its permits."""
    code = textwrap.dedent("""
        import os, signal, threading, time, pyconc
        sem = pyconc.Semaphore(0)
        def fire():
            time.sleep(0.2)
            os.kill(os.getpid(), signal.SIGINT)
        threading.Thread(target=fire).start()
        t0 = time.monotonic()
        try:
            sem.acquire()
        except KeyboardInterrupt:
            print("interrupted", round(time.monotonic() - t0, 1) < 5, repr(sem))
        sem.release(2)
        print(sem.acquire(2).permits)
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                       cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split("\n")[:2] == ["interrupted True Semaphore(permits=0, waiters=0)", "2"]


def test_exports_and_closed_is_a_pyconc_error():
    for name in ("Semaphore", "SemaphorePermit", "Event", "Notify", "WaitGroup", "Closed"):
        assert name in pyconc.__all__
    assert issubclass(Closed, pyconc.PyconcError)
    with pytest.raises(TypeError):
        SemaphorePermit()
    assert signal.SIGINT  # the subprocess case above relies on it


def test_tour_bounded_worker_set_runs_at_most_three_jobs_at_once():
    from pyconc.tour.s55_semaphore import example

    peak, log = example(jobs=10, limit=3, work=0.005)
    assert 1 <= peak <= 3
    assert len(log) == 11 and sum("coroutine" in line for line in log) == 1
