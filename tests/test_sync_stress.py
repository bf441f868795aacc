"""Stress and interrupt tests of the sync area: invariants checked from inside
critical sections by threads that start together; Ctrl-C interrupts every
blocking call promptly with no lock left held.

Sizes are the issue's: 8 threads x 100k mixed Mutex operations (about
0.3 s here) and 100k Condvar producer/consumer rounds (about 2 s); the
whole file runs in a few seconds on 2 cores.
"""
from __future__ import annotations

import threading
import time

import pytest
from conftest import assert_prompt, run_threads, stress_scale

import pyconc
from pyconc import AtomicInt, Barrier, Condvar, Mutex, RwLock, WouldBlock

MUTEX_THREADS, MUTEX_OPS = 8, 100_000


def test_mutex_8_threads_mixed_lock_try_lock_keep_the_invariant_and_count_exact():
    m = Mutex([0, 0])  # invariant: both cells equal, changed only under the lock
    inside = AtomicInt()
    try_lock_misses = AtomicInt()

    def worker(i):
        done = 0
        for k in range(MUTEX_OPS):
            if k % 3 == 0:
                try:
                    g = m.try_lock()
                except WouldBlock:
                    try_lock_misses.fetch_add(1)
                    continue
            elif k % 3 == 1:
                g = m.lock(timeout=30)
            else:
                g = m.lock()
            assert inside.fetch_add(1) == 0, "two threads inside the critical section"
            v = g.value
            assert v[0] == v[1], "half-written state seen"
            v[0] += 1
            v[1] += 1
            inside.fetch_sub(1)
            if k % 2:
                g.unlock()
            else:
                del g  # dropped by refcount: unlocks too
            done += 1
        return done

    done = sum(run_threads(worker, MUTEX_THREADS))
    assert done + try_lock_misses.load() == MUTEX_THREADS * MUTEX_OPS
    assert not m.is_locked() and not m.is_poisoned()
    assert m.into_inner() == [done, done]


CV_ROUNDS = 100_000


def test_condvar_producer_consumer_100k_rounds_no_lost_wakeup():
    slot = Mutex(None)  # a one-item queue: None = empty
    not_empty, not_full = Condvar(), Condvar()

    def producer():
        for i in range(CV_ROUNDS):
            with slot.lock() as g:
                g = not_full.wait_while(g, lambda v: v is not None)
                g.value = i
            not_empty.notify_one()
        return True

    h = pyconc.spawn(producer)
    total = 0
    for i in range(CV_ROUNDS):
        with slot.lock() as g:
            while g.value is None:
                g = not_empty.wait(g)
            assert g.value == i, "lost, duplicated or reordered item"
            total += g.value
            g.value = None
        not_full.notify_one()
    assert h.join(timeout=60).unwrap()
    assert total == CV_ROUNDS * (CV_ROUNDS - 1) // 2


def test_condvar_16_threads_bounded_queue_with_timeouts_loses_and_duplicates_nothing():
    # 8 producers and 8 consumers on a 4-slot queue: one Mutex, two Condvars,
    # short wait timeouts on both sides, notify_one by the holder (delayed to
    # the unlock, counted) and after the unlock, alternately.
    per_producer = stress_scale(3000, 50)
    nprod = ncons = 8
    total, cap = nprod * per_producer, 4
    m = Mutex({"q": [], "consumed": 0})
    not_empty, not_full = Condvar(), Condvar()
    inside, timeouts = AtomicInt(), AtomicInt()

    def producer(i):
        for k in range(per_producer):
            with m.lock() as g:
                while True:
                    g, timed_out = not_full.wait_timeout_while(g, 0.02,
                                                               lambda s: len(s["q"]) >= cap)
                    if not timed_out:
                        break
                    timeouts.fetch_add(1)
                assert inside.fetch_add(1) == 0, "two threads inside the critical section"
                g.value["q"].append(i * per_producer + k)
                inside.fetch_sub(1)
                if k % 2:
                    not_empty.notify_one()  # by the holder: delivered at the unlock
            if not k % 2:
                not_empty.notify_one()
        return []

    def consumer():
        got = []
        while True:
            with m.lock() as g:
                g, timed_out = not_empty.wait_timeout_while(
                    g, 0.02, lambda s: not s["q"] and s["consumed"] < total)
                if timed_out:
                    timeouts.fetch_add(1)
                    continue
                s = g.value
                if not s["q"]:  # everything was consumed
                    return got
                assert inside.fetch_add(1) == 0, "two threads inside the critical section"
                got.append(s["q"].pop(0))
                s["consumed"] += 1
                inside.fetch_sub(1)
                if s["consumed"] == total:
                    not_empty.notify_all()  # the others stop waiting
                not_full.notify_one()

    results = run_threads(lambda i: producer(i) if i < nprod else consumer(), nprod + ncons,
                          timeout=120)
    consumed = [x for got in results for x in got]
    assert len(consumed) == total, "items lost or duplicated"
    assert sorted(consumed) == list(range(total)), "items lost or duplicated"
    assert not m.is_locked() and not m.is_poisoned()
    assert repr(not_empty) == repr(not_full) == "Condvar(waiters=0)"
    assert m.into_inner() == {"q": [], "consumed": total}


def test_condvar_k_notify_one_wake_k_distinct_waiters_of_15_every_round():
    # 15 waiters, one producer (16 threads).  Each round the producer makes k
    # items and calls notify_one() k times -- under the lock (delayed, counted)
    # or after it, alternately -- and each waiter takes at most one item per
    # round, so the round completes only if k distinct waiters were woken.
    rounds = stress_scale(300, 20)
    nwait = 15
    m = Mutex({"round": -1, "items": 0, "stop": False})
    cv = Condvar()
    taken = AtomicInt()

    def waiter(i):
        last, mine = -1, 0
        while True:
            with m.lock() as g:
                g, _ = cv.wait_timeout_while(
                    g, 30, lambda s: not s["stop"] and (s["items"] == 0 or s["round"] == last))
                s = g.value
                if s["stop"]:
                    return mine
                if s["items"] > 0 and s["round"] != last:
                    s["items"] -= 1
                    last = s["round"]
                    mine += 1
                    taken.fetch_add(1)

    hs = [pyconc.spawn(waiter, i) for i in range(nwait)]
    expected = 0
    try:
        for r in range(rounds):
            k = r % nwait + 1
            deadline = time.monotonic() + 10
            while repr(cv) != f"Condvar(waiters={nwait})":
                assert time.monotonic() < deadline, f"round {r}: waiters never came back"
                time.sleep(0.0002)
            with m.lock() as g:
                g.value["round"] = r
                g.value["items"] = k
                if r % 2:
                    for _ in range(k):
                        cv.notify_one()
            if not r % 2:
                for _ in range(k):
                    cv.notify_one()
            expected += k
            deadline = time.monotonic() + 10
            while taken.load() < expected:
                assert time.monotonic() < deadline, \
                    f"round {r}: {expected - taken.load()} of {k} notify_one() woke nobody"
                time.sleep(0.0002)
            assert taken.load() == expected, "an item was taken twice"
    finally:
        with m.lock() as g:
            g.value["stop"] = True
        cv.notify_all()
    assert sum(h.join(timeout=60).unwrap() for h in hs) == expected
    assert not m.is_locked() and not m.is_poisoned()
    assert m.into_inner()["items"] == 0


def test_rwlock_readers_never_see_half_written_state():
    rw = RwLock({"a": 0, "b": 0})
    writers_in, readers_in = AtomicInt(), AtomicInt()
    reads = AtomicInt()

    def worker(i):
        for k in range(3000):
            if i < 2 and k % 3 == 0:
                with rw.write() as w:
                    assert writers_in.fetch_add(1) == 0 and readers_in.load() == 0
                    d = w.value
                    d["a"] += 1
                    time.sleep(0) if k % 50 == 0 else None  # let readers try meanwhile
                    d["b"] += 1
                    writers_in.fetch_sub(1)
            else:
                with rw.read() as r:
                    readers_in.fetch_add(1)
                    assert writers_in.load() == 0
                    d = r.value
                    assert d["a"] == d["b"], "reader saw a half-written state"
                    readers_in.fetch_sub(1)
                    reads.fetch_add(1)
        return True

    assert all(run_threads(worker, 6))
    final = rw.into_inner()
    assert final["a"] == final["b"] == 2 * 1000
    assert reads.load() == 4 * 3000 + 2 * 2000


def test_atomic_int_sums_exact_across_threads():
    n = AtomicInt()
    hi = AtomicInt(-(2**63))

    def worker(i):
        for k in range(20_000):
            n.fetch_add(3)
            n.fetch_sub(1)
            hi.fetch_max(i * 100_000 + k)
        return True

    run_threads(worker, 8)
    assert n.load() == 8 * 20_000 * 2
    assert hi.load() == 7 * 100_000 + 19_999


def test_barrier_rounds_under_threads_release_nobody_early():
    b = Barrier(4)
    arrived = [AtomicInt() for _ in range(200)]

    def worker(i):
        leaders = 0
        for r in range(200):
            arrived[r].fetch_add(1)
            leaders += b.wait().is_leader()
            assert arrived[r].load() == 4
        return leaders

    assert sum(run_threads(worker, 4)) == 200


# ---------------------------------------------------------------------------
# Ctrl-C while blocked: prompt KeyboardInterrupt, no lock left held
# ---------------------------------------------------------------------------


def _holder(take, release_evt):
    """A thread holding a lock until release_evt is set."""
    taken = threading.Event()

    def body():
        g = take()
        taken.set()
        release_evt.wait(30)
        g.unlock()
        return True

    h = pyconc.spawn(body)
    assert taken.wait(10)
    return h


def test_ctrl_c_interrupts_mutex_lock(interrupt_main):
    m = Mutex(0)
    release = threading.Event()
    h = _holder(m.lock, release)
    with interrupt_main(0.2) as irq:
        with pytest.raises(KeyboardInterrupt):
            m.lock()
    assert_prompt(irq)
    release.set()
    assert h.join(timeout=10).unwrap()
    with m.lock(timeout=5) as g:  # nothing left held by us
        assert g.value == 0
    assert not m.is_poisoned()


def test_ctrl_c_interrupts_rwlock_read(interrupt_main):
    rw = RwLock(0)
    release = threading.Event()
    h = _holder(rw.write, release)
    with interrupt_main(0.2) as irq:
        with pytest.raises(KeyboardInterrupt):
            rw.read()
    assert_prompt(irq)
    release.set()
    assert h.join(timeout=10).unwrap()
    with rw.write(timeout=5) as w:  # no stray read lock left
        assert w.value == 0


def test_ctrl_c_interrupts_rwlock_write(interrupt_main):
    rw = RwLock(0)
    release = threading.Event()
    h = _holder(rw.read, release)
    with interrupt_main(0.2) as irq:
        with pytest.raises(KeyboardInterrupt):
            rw.write()
    assert_prompt(irq)
    # the interrupted writer no longer holds readers back
    assert pyconc.spawn(lambda: rw.try_read().unlock()).join(timeout=5).unwrap() is None
    release.set()
    assert h.join(timeout=10).unwrap()
    with rw.write(timeout=5) as w:
        assert w.value == 0


def test_ctrl_c_interrupts_condvar_wait_and_the_mutex_is_released(interrupt_main):
    m, cv = Mutex(0), Condvar()
    with interrupt_main(0.2) as irq:
        with pytest.raises(KeyboardInterrupt):
            with m.lock() as g:
                try:
                    cv.wait(g)
                finally:
                    assert g.locked and m.is_locked()  # re-locked before raising
    assert_prompt(irq)
    assert not m.is_locked()
    assert m.is_poisoned()  # KeyboardInterrupt escaped the with block
    m.clear_poison()
    assert pyconc.spawn(lambda: m.lock(timeout=5).unlock()).join(timeout=10).unwrap() is None


def test_ctrl_c_interrupts_condvar_wait_while_and_wait_timeout(interrupt_main):
    m, cv = Mutex(0), Condvar()
    g = m.lock()
    with interrupt_main(0.2) as irq:
        with pytest.raises(KeyboardInterrupt):
            cv.wait_while(g, lambda v: True)
    assert_prompt(irq)
    with interrupt_main(0.2) as irq:
        with pytest.raises(KeyboardInterrupt):
            cv.wait_timeout(g, 60)
    assert_prompt(irq)
    assert g.locked
    g.unlock()
    assert not m.is_locked()


def test_ctrl_c_interrupts_barrier_wait_and_withdraws_the_arrival(interrupt_main):
    b = Barrier(2)
    with interrupt_main(0.2) as irq:
        with pytest.raises(KeyboardInterrupt):
            b.wait()
    assert_prompt(irq)
    assert repr(b) == "Barrier(n=2, waiting=0)"
    # a full round still needs two threads
    h = pyconc.spawn(b.wait)
    time.sleep(0.05)
    assert not h.is_finished()
    r = b.wait()
    assert r.is_leader() != h.join(timeout=10).unwrap().is_leader()


def test_ctrl_c_interrupts_oncelock_waiting_for_another_initializer(interrupt_main):
    c = pyconc.OnceLock()
    release = threading.Event()
    started = threading.Event()

    def init():
        started.set()
        release.wait(30)
        return "done"

    h = pyconc.spawn(c.get_or_init, init)
    assert started.wait(10)
    with interrupt_main(0.2) as irq:
        with pytest.raises(KeyboardInterrupt):
            c.get_or_init(lambda: "never")
    assert_prompt(irq)
    release.set()
    assert h.join(timeout=10).unwrap() == "done"
    assert c.get() == "done"
