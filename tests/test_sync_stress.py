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
from conftest import assert_prompt, run_threads

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
