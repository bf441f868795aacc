"""Unit tests of the sync area: every method and error of Arc/Weak, Mutex,
RwLock, Condvar, Barrier, OnceLock, AtomicInt/AtomicBool; bad input gives a
clear error and changes nothing."""
from __future__ import annotations

import copy
import gc
import math
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import weakref

import pytest

import pyconc
from pyconc import (
    AlreadySet, Arc, AtomicBool, AtomicInt, Barrier, BarrierWaitResult, Condvar, DeadlockError,
    Err, LockTimeoutError, Mutex, MutexGuard, Ok, OnceLock, PoisonError, PyconcError, RwLock,
    RwLockReadGuard, RwLockWriteGuard, UseAfterDrop, Weak, WouldBlock,
)
from conftest import wait_for_mutex_value


class Obj:
    """A weak-referenceable value."""

    def __init__(self, x=0):
        self.x = x

    def method(self, y):
        return self.x + y

    def __call__(self, *a, **k):
        return ("called", a, k)


def in_thread(fn, *args):
    """Run fn on another pyconc thread and return its result (re-raising)."""
    return pyconc.spawn(fn, *args).join(timeout=30).unwrap()


# ---------------------------------------------------------------------------
# Arc / Weak
# ---------------------------------------------------------------------------


def test_arc_value_released_the_moment_the_last_strong_handle_drops():
    fired = []
    o = Obj()
    ref = weakref.ref(o, lambda _: fired.append("gone"))
    a = Arc(o)
    del o
    b = a.clone()
    c = copy.copy(a)
    assert Arc.strong_count(a) == 3
    a.drop()
    del b
    assert fired == [] and ref() is not None
    c.drop()  # the last strong handle: released now, not at the next GC
    assert fired == ["gone"]


def test_arc_del_and_with_release_the_handle():
    fired = []
    o = Obj()
    weakref.ref(o)
    ref = weakref.ref(o, lambda _: fired.append(1))
    del ref  # keep only the callback ref alive below
    r2 = weakref.ref(o, lambda _: fired.append(2))
    a = Arc(o)
    del o
    with a.clone() as h:
        assert isinstance(h, Arc)
        assert Arc.strong_count(a) == 2
    assert Arc.strong_count(a) == 1
    with pytest.raises(UseAfterDrop):
        h.get()
    del a
    assert fired == [2] and r2() is None


def test_arc_counts_downgrade_upgrade():
    a = Arc([1, 2])
    assert Arc.weak_count(a) == 0
    w = Arc.downgrade(a)
    assert isinstance(w, Weak)
    assert Arc.weak_count(a) == 1 and Weak.weak_count(w) == 1
    assert Weak.strong_count(w) == 1
    b = w.upgrade()
    assert Arc.ptr_eq(a, b) and Arc.strong_count(a) == 2
    assert b.get() is a.get()
    a.drop()
    b.drop()
    assert w.upgrade() is None
    assert Weak.strong_count(w) == 0 and Weak.weak_count(w) == 0
    assert "gone" in repr(w)


def test_arc_try_unwrap_ok_only_for_the_sole_handle():
    v = Obj()
    a = Arc(v)
    b = a.clone()
    r = Arc.try_unwrap(a)
    assert r.is_err() and r.unwrap_err() is a  # nothing changed
    assert Arc.strong_count(a) == 2
    b.drop()
    r = Arc.try_unwrap(a)
    assert r == Ok(v) and r.unwrap() is v
    with pytest.raises(UseAfterDrop):
        a.get()


def test_arc_ptr_eq_distinguishes_allocations():
    a, b = Arc(1), Arc(1)
    assert Arc.ptr_eq(a, a.clone())
    assert not Arc.ptr_eq(a, b)
    with pytest.raises(TypeError, match="must be an Arc"):
        Arc.ptr_eq(a, 1)


def test_arc_forwards_attributes_and_calls_to_the_value():
    a = Arc(Obj(5))
    assert a.x == 5 and a.method(2) == 7
    a.x = 6
    assert a.get().x == 6
    assert a(1, k=2) == ("called", (1,), {"k": 2})
    counter = Arc(Mutex(0))
    with counter.lock() as g:  # Arc(Mutex(0)).lock() works like Rust's auto-deref
        g.value += 1
    assert repr(counter) == "Arc(Mutex(1, poisoned=False))"
    with pytest.raises(AttributeError):
        a.nonexistent


def test_arc_use_after_drop_raises_everywhere():
    a = Arc(Obj())
    a.drop()
    for f in (a.get, a.clone, a.drop, Arc.strong_count.__get__(a), lambda: a.x, lambda: a(),
              lambda: Arc.downgrade(a), lambda: Arc.try_unwrap(a)):
        with pytest.raises(UseAfterDrop, match="dropped"):
            f()
    assert isinstance(UseAfterDrop("x"), ValueError)
    assert repr(a) == "Arc(<dropped>)"


def test_arc_bad_input():
    with pytest.raises(TypeError):
        Arc()
    with pytest.raises(TypeError):
        Arc(1, 2)


def test_arc_cycle_through_one_handle_is_collected():
    fired = []
    o = Obj()
    weakref.finalize(o, fired.append, 1)
    o.me = Arc(o)
    del o
    gc.collect()
    assert fired == [1]


def test_arc_counts_exact_under_threads():
    a = Arc(Obj())

    def work(i):
        for _ in range(2000):
            c = a.clone()
            w = Arc.downgrade(c)
            u = w.upgrade()
            assert u is not None
            u.drop()
            c.drop()
        return True

    from conftest import run_threads

    assert run_threads(work, 4) == [True] * 4
    assert Arc.strong_count(a) == 1 and Arc.weak_count(a) == 0


# ---------------------------------------------------------------------------
# Mutex / MutexGuard
# ---------------------------------------------------------------------------


def test_mutex_guard_reads_and_replaces_the_value_only_while_locked():
    m = Mutex([1])
    with m.lock() as g:
        assert isinstance(g, MutexGuard)
        assert g.value == [1] and g.locked and g.mutex is m
        g.value.append(2)
        g.value = g.value + [3]
    assert not g.locked
    with pytest.raises(UseAfterDrop):
        g.value
    with pytest.raises(UseAfterDrop):
        g.value = 5
    with pytest.raises(UseAfterDrop):
        g.unlock()
    assert m.into_inner() == [1, 2, 3]


def test_mutex_default_value_and_reprs():
    m = Mutex()
    assert repr(m) == "Mutex(None, poisoned=False)"
    g = m.lock()
    assert repr(m) == "Mutex(<locked>, poisoned=False)"
    assert repr(g) == "MutexGuard(None)"
    assert m.is_locked()
    g.unlock()
    assert repr(g) == "MutexGuard(<unlocked>)"
    assert not m.is_locked()


def test_mutex_guard_value_cannot_be_deleted():
    m = Mutex(1)
    with m.lock() as g:
        with pytest.raises(TypeError):
            del g.value
        assert g.value == 1


def test_exception_escaping_with_poisons_and_into_inner_recovers_the_guard():
    m = Mutex(0)
    with pytest.raises(ZeroDivisionError):
        with m.lock() as g:
            g.value = 1
            1 / 0
    assert m.is_poisoned()
    assert repr(m) == "Mutex(1, poisoned=True)"
    with pytest.raises(PoisonError) as ei:
        m.lock()
    g = ei.value.into_inner()
    assert isinstance(g, MutexGuard) and g.locked and g.value == 1
    g.unlock()
    with pytest.raises(PoisonError):
        m.try_lock().unlock()  # noqa: the raise happens first
    m.clear_poison()
    assert not m.is_poisoned()
    with m.lock() as g:
        assert g.value == 1


def test_relock_by_owning_thread_raises_deadlock_and_try_lock_would_block():
    m = Mutex(0)
    with m.lock():
        with pytest.raises(DeadlockError, match="already holds"):
            m.lock()
        with pytest.raises(WouldBlock):
            m.try_lock()
        assert isinstance(DeadlockError("x"), RuntimeError)
    with m.lock() as g:  # usable again
        assert g.value == 0


def test_mutex_lock_timeout_raises_a_timeout_error():
    m = Mutex(0)
    g = m.lock()
    t0 = time.monotonic()

    def other():
        with pytest.raises(LockTimeoutError) as ei:
            m.lock(timeout=0.05)
        assert isinstance(ei.value, TimeoutError) and isinstance(ei.value, PyconcError)
        with pytest.raises(WouldBlock):
            m.try_lock()
        return True

    assert in_thread(other)
    assert time.monotonic() - t0 >= 0.04
    g.unlock()
    assert in_thread(lambda: m.lock(timeout=1).unlock()) is None


def test_lock_is_owned_by_threads_not_the_gil():
    m = Mutex(0)
    g = m.lock()
    # Another thread cannot take it, and gets a timeout (not a DeadlockError).
    with pytest.raises(LockTimeoutError):
        in_thread(lambda: m.lock(timeout=0.02))
    g.unlock()


def test_mutex_bad_timeouts_change_nothing():
    m = Mutex(0)
    for bad, exc in ((-1, ValueError), (math.nan, ValueError), ("1", TypeError)):
        with pytest.raises(exc):
            m.lock(timeout=bad)
        assert not m.is_locked()
    with pytest.raises(TypeError):
        m.lock(1, 2)
    with pytest.raises(TypeError, match="unexpected keyword"):
        m.lock(time=1)
    with m.lock(timeout=math.inf) as g:
        assert g.value == 0
    with pytest.raises(TypeError):
        Mutex(1, 2)


def test_guard_garbage_collected_without_unlock_unlocks():
    m = Mutex(0)
    m.lock()  # guard dropped at once
    assert not m.is_locked()
    cycle = [m.lock()]
    cycle.append(cycle)  # only the cycle collector can free this guard
    del cycle
    gc.collect()
    assert not m.is_locked()


def test_guard_unlocked_from_another_thread_when_collected_there():
    m = Mutex(0)
    g = m.lock()
    holder = [g]
    del g
    in_thread(holder.clear)
    assert not m.is_locked()


def test_mutex_into_inner_retires_and_poisoned_into_inner_gives_the_value():
    m = Mutex("v")
    assert m.into_inner() == "v"
    assert repr(m) == "Mutex(<consumed>)"
    for f in (m.lock, m.try_lock, m.into_inner):
        with pytest.raises(UseAfterDrop):
            f()
    p = Mutex([7])
    with pytest.raises(KeyError):
        with p.lock():
            raise KeyError
    with pytest.raises(PoisonError) as ei:
        p.into_inner()
    assert ei.value.into_inner() == [7]
    with pytest.raises(UseAfterDrop):
        p.lock()


def test_mutex_into_inner_by_holder_is_a_deadlock_error():
    m = Mutex(1)
    with m.lock() as g:
        with pytest.raises(DeadlockError):
            m.into_inner()
        assert g.value == 1


# ---------------------------------------------------------------------------
# RwLock
# ---------------------------------------------------------------------------


def test_rwlock_readers_share_and_read_guards_refuse_assignment():
    rw = RwLock({"a": 1})
    r1 = rw.read()
    r2 = rw.try_read()
    assert isinstance(r1, RwLockReadGuard)
    assert r1.value is r2.value
    assert repr(rw) == "RwLock({'a': 1}, readers=2, poisoned=False)"
    with pytest.raises(AttributeError, match="write guard"):
        r1.value = {}
    with pytest.raises(WouldBlock):
        rw.try_write()
    r1.unlock()
    r2.unlock()
    with rw.write() as w:
        assert isinstance(w, RwLockWriteGuard)
        w.value = {"a": 2}
        assert repr(rw) == "RwLock(<write-locked>, poisoned=False)"
        with pytest.raises(WouldBlock):
            in_thread(rw.try_read)
    assert rw.into_inner() == {"a": 2}
    with pytest.raises(UseAfterDrop):
        rw.read()


def test_rwlock_only_write_guard_exceptions_poison():
    rw = RwLock(0)
    with pytest.raises(ValueError):
        with rw.read():
            raise ValueError
    assert not rw.is_poisoned()
    with pytest.raises(ValueError):
        with rw.write() as w:
            w.value = 1
            raise ValueError
    assert rw.is_poisoned()
    with pytest.raises(PoisonError) as ei:
        rw.read()
    g = ei.value.into_inner()
    assert g.value == 1
    g.unlock()
    rw.clear_poison()
    with rw.read() as r:
        assert r.value == 1


def test_rwlock_self_deadlocks_are_errors():
    rw = RwLock(0)
    with rw.write():
        with pytest.raises(DeadlockError):
            rw.read()
        with pytest.raises(DeadlockError):
            rw.write()
    with rw.read():
        with pytest.raises(DeadlockError, match="read guard"):
            rw.write()
    with rw.write() as w:
        assert w.value == 0


def test_rwlock_reentrant_read_is_granted_while_a_writer_waits():
    rw = RwLock(0)
    r1 = rw.read()
    started = threading.Event()

    def writer():
        started.set()
        with rw.write(timeout=10) as w:
            w.value = 1
        return True

    h = pyconc.spawn(writer)
    started.wait()
    deadline = time.monotonic() + 5
    # wait until the writer is really queued: a fresh reader is then held back
    while time.monotonic() < deadline:
        try:
            in_thread(lambda: rw.try_read().unlock())
        except WouldBlock:
            break
        time.sleep(0.001)
    else:
        raise AssertionError("the writer never queued")
    r2 = rw.read(timeout=1)  # same thread: granted at once, no deadlock
    assert r2.value == 0
    r2.unlock()
    r1.unlock()
    assert h.join(timeout=10).unwrap() is True
    with rw.read() as r:
        assert r.value == 1


def test_rwlock_timeouts():
    rw = RwLock(0)
    w = rw.write()
    with pytest.raises(LockTimeoutError):
        in_thread(lambda: rw.read(timeout=0.02))
    w.unlock()
    r = rw.read()
    with pytest.raises(LockTimeoutError):
        in_thread(lambda: rw.write(timeout=0.02))
    # after the writer gave up, new readers are not held back
    assert in_thread(lambda: rw.try_read().unlock()) is None
    r.unlock()


def test_rwlock_guard_collected_unlocks():
    rw = RwLock(0)
    rw.read()
    rw.write()
    rw.read()
    with rw.write() as w:
        assert w.value == 0


# ---------------------------------------------------------------------------
# Condvar
# ---------------------------------------------------------------------------


def test_condvar_wait_returns_the_same_guard_after_a_notify():
    m, cv = Mutex(False), Condvar()

    def setter():
        time.sleep(0.02)
        with m.lock() as g:
            g.value = True
        cv.notify_one()

    h = pyconc.spawn(setter)
    with m.lock() as g:
        while not g.value:
            g2 = cv.wait(g)
            assert g2 is g and g.locked
    h.join().unwrap()


def test_condvar_wait_while_absorbs_spurious_wakeups():
    m, cv = Mutex(0), Condvar()

    def bumper():
        for _ in range(5):
            time.sleep(0.005)
            with m.lock() as g:
                g.value += 1
            cv.notify_all()  # wakes the waiter 4 times too early

    h = pyconc.spawn(bumper)
    seen = []
    with m.lock() as g:
        g = cv.wait_while(g, lambda v: seen.append(v) or v < 5)
        assert g.value == 5
    h.join().unwrap()
    assert seen[-1] == 5


def test_condvar_wait_timeout_reports_timeouts_in_the_tuple():
    m, cv = Mutex(0), Condvar()
    with m.lock() as g:
        t0 = time.monotonic()
        g2, timed_out = cv.wait_timeout(g, 0.03)
        assert g2 is g and timed_out is True and g.locked
        assert time.monotonic() - t0 >= 0.025
        g2, timed_out = cv.wait_timeout_while(g, 0.03, lambda v: v == 0)
        assert timed_out is True and g2 is g
        g.value = 1
        g2, timed_out = cv.wait_timeout_while(g, 5, lambda v: v == 0)
        assert timed_out is False  # predicate already false: no wait


def test_condvar_wait_timeout_while_not_timed_out_when_notified():
    m, cv = Mutex(0), Condvar()

    def setter():
        time.sleep(0.02)
        with m.lock() as g:
            g.value = 1
        cv.notify_all()

    h = pyconc.spawn(setter)
    with m.lock() as g:
        g, timed_out = cv.wait_timeout_while(g, 10, lambda v: v == 0)
        assert timed_out is False and g.value == 1
    h.join().unwrap()


def test_condvar_bad_input_gives_clear_errors_and_changes_nothing():
    m, cv = Mutex(0), Condvar()
    g = m.lock()
    g.unlock()
    with pytest.raises(UseAfterDrop, match="unlocked"):
        cv.wait(g)  # a guard of an unlocked mutex
    assert not m.is_locked()
    with pytest.raises(TypeError, match="MutexGuard"):
        cv.wait(m)
    rw = RwLock(0)
    with rw.write() as w:
        with pytest.raises(TypeError, match="MutexGuard"):
            cv.wait(w)
    with m.lock() as g:
        with pytest.raises(TypeError, match="callable"):
            cv.wait_while(g, 3)
        with pytest.raises(ValueError):
            cv.wait_timeout(g, -1)
        with pytest.raises(TypeError):
            cv.wait_timeout(g, None)
        with pytest.raises(TypeError):
            cv.wait_timeout(g)
        with pytest.raises(TypeError):
            cv.wait_timeout_while(g, 1)
        with pytest.raises(TypeError):
            cv.wait_while(g)
        assert g.locked and m.is_locked()
        with pytest.raises(RuntimeError, match="another thread"):
            in_thread(cv.wait, g)
        assert g.locked and m.is_locked()
    with pytest.raises(TypeError):
        Condvar(1)


def test_condvar_predicate_exception_propagates_with_the_lock_held():
    m, cv = Mutex(0), Condvar()
    with pytest.raises(KeyError):
        with m.lock() as g:
            try:
                cv.wait_while(g, lambda v: {}[v])
            finally:
                assert g.locked
    assert m.is_poisoned()  # it escaped the with block


def test_condvar_wait_raises_poison_error_carrying_the_guard():
    m, cv = Mutex(0), Condvar()
    ready = threading.Event()

    def poisoner():
        ready.wait()
        try:
            with m.lock():
                cv.notify_all()
                raise RuntimeError("boom")
        except RuntimeError:
            return True

    h = pyconc.spawn(poisoner)
    with m.lock() as g:
        ready.set()
        with pytest.raises(PoisonError) as ei:
            cv.wait(g)
        assert ei.value.into_inner() is g and g.locked
    assert h.join().unwrap()
    assert not m.is_locked()


def test_condvar_notify_without_waiters_is_harmless_and_repr_counts_waiters():
    cv = Condvar()
    cv.notify_one()
    cv.notify_all()
    assert repr(cv) == "Condvar(waiters=0)"


@pytest.mark.parametrize("main_waits", [True, False], ids=["main-thread-waits", "threads-only"])
def test_condvar_notify_one_ends_exactly_one_wait_while_waits_are_sliced(main_waits):
    """A wait on the main thread wakes every 50 ms to run signal handlers
    (every thread's does on free-threaded builds).  One notify_one must
    still end exactly one plain wait: the old sequence-counter Condvar let
    each resumed slice find its ticket stale and return, so one notify_one
    woke every sliced waiter (plain wait() has no predicate to absorb it)."""
    m, cv = Mutex(0), Condvar()
    woke = []

    def waiter(name):
        with m.lock() as g:
            g.value += 1
            g = cv.wait(g)
            woke.append(name)

    snapshots = []

    def notifier(total):
        wait_for_mutex_value(m, total)
        for _ in range(total):
            with m.lock():
                cv.notify_one()
            time.sleep(0.3)  # six slices of every sliced waiter
            snapshots.append(sorted(woke))
        with m.lock():
            cv.notify_all()  # whatever the outcome, release everybody

    threads = [threading.Thread(target=waiter, args=(f"t{i}",)) for i in range(2)]
    for t in threads:
        t.start()
    wait_for_mutex_value(m, 2)
    total = 3 if main_waits else 2
    n = threading.Thread(target=notifier, args=(total,))
    n.start()
    if main_waits:
        waiter("main")
    else:
        wait_for_mutex_value(m, total)
    n.join()
    for t in threads:
        t.join()
    assert [len(s) for s in snapshots] == list(range(1, total + 1)), snapshots
    # oldest first, as threading.Condition: the main thread queued last
    assert snapshots[-1] == sorted(woke)
    if main_waits:
        assert woke[-1] == "main"


def test_condvar_waiter_interrupted_as_it_is_notified_passes_the_notify_on():
    """A signal handler, run inside the oldest waiter's wait, notifies and
    raises: the notify takes that waiter off the queue just as it gives up.
    The wait raises the handler's exception, and the notify goes on to the
    next waiter instead of vanishing with the interrupted wait."""
    m, cv = Mutex(0), Condvar()
    main_ident = threading.get_ident()
    woke = threading.Event()

    class Interrupted(Exception):
        pass

    def handler(signum, frame):
        cv.notify_one()  # the main thread is the oldest waiter: it takes it
        raise Interrupted

    def second() -> None:
        wait_for_mutex_value(m, 1)  # the main thread queued first
        with m.lock() as g:
            g.value += 1
            g = cv.wait(g)
        woke.set()

    def interrupter() -> None:
        wait_for_mutex_value(m, 2)
        signal.pthread_kill(main_ident, signal.SIGUSR1)

    old = signal.signal(signal.SIGUSR1, handler)
    t2 = threading.Thread(target=second)
    t3 = threading.Thread(target=interrupter)
    t2.start()
    t3.start()
    try:
        g = m.lock()  # not `with`: an exception through it would poison m
        g.value += 1
        try:
            with pytest.raises(Interrupted):
                g = cv.wait(g)
            assert g.locked  # the wait re-locked before raising
        finally:
            g.unlock()
        passed_on = woke.wait(10)
    finally:
        signal.signal(signal.SIGUSR1, old)
        t3.join()
        if not woke.is_set():
            with m.lock():
                cv.notify_all()
        t2.join()
    assert passed_on, "the notify was lost with the interrupted waiter"
    assert not m.is_locked()


# ---------------------------------------------------------------------------
# Barrier
# ---------------------------------------------------------------------------


def test_barrier_releases_all_with_one_leader_per_round_and_is_reusable():
    b = Barrier(3)
    assert b.n == 3 and repr(b) == "Barrier(n=3, waiting=0)"

    def worker(_):
        return [b.wait().is_leader() for _ in range(20)]

    from conftest import run_threads

    rounds = run_threads(worker, 3)
    for r in range(20):
        assert sum(res[r] for res in rounds) == 1


def test_barrier_of_one_never_blocks():
    b = Barrier(1)
    r = b.wait()
    assert isinstance(r, BarrierWaitResult) and r.is_leader()
    assert repr(r) == "BarrierWaitResult(is_leader=True)"


@pytest.mark.parametrize("n, exc", [(0, ValueError), (-3, ValueError), (2**40, ValueError),
                                    (1.5, TypeError), ("2", TypeError), (True, TypeError)])
def test_barrier_bad_sizes(n, exc):
    with pytest.raises(exc, match="n"):
        Barrier(n)


# ---------------------------------------------------------------------------
# OnceLock
# ---------------------------------------------------------------------------


def test_oncelock_set_get_and_already_set_carries_the_value():
    c = OnceLock()
    assert c.get() is None and not c.is_set() and repr(c) == "OnceLock(<unset>)"
    c.set(1)
    assert c.get() == 1 and c.is_set() and repr(c) == "OnceLock(1)"
    with pytest.raises(AlreadySet) as ei:
        c.set(2)
    assert ei.value.value == 2 and isinstance(ei.value, ValueError)
    assert c.get_or_init(lambda: 3) == 1
    assert c.get() == 1


def test_oncelock_failed_initializer_leaves_it_empty_and_usable():
    c = OnceLock()
    with pytest.raises(ZeroDivisionError):
        c.get_or_init(lambda: 1 / 0)
    assert not c.is_set()
    assert c.get_or_init(lambda: "ok") == "ok"


def test_oncelock_initializer_runs_once_under_a_race():
    c = OnceLock()
    calls = AtomicInt()

    def init():
        calls.fetch_add(1)
        time.sleep(0.05)  # the others wait meanwhile (GIL released)
        return object()

    from conftest import run_threads

    vals = run_threads(lambda i: c.get_or_init(init), 6)
    assert calls.load() == 1
    assert all(v is vals[0] for v in vals)


def test_oncelock_waiters_take_over_when_the_initializer_fails():
    c = OnceLock()
    calls = AtomicInt()

    def init():
        n = calls.fetch_add(1)
        time.sleep(0.02)
        if n == 0:
            raise RuntimeError("first fails")
        return n

    def worker(i):
        try:
            return c.get_or_init(init)
        except RuntimeError:
            return "failed"

    from conftest import run_threads

    res = run_threads(worker, 4)
    assert res.count("failed") == 1
    assert calls.load() == 2
    assert {r for r in res if r != "failed"} == {1}


def test_oncelock_reentrant_init_is_a_deadlock_error_and_bad_input():
    c = OnceLock()
    with pytest.raises(DeadlockError):
        c.get_or_init(lambda: c.get_or_init(lambda: 1))
    assert not c.is_set()
    with pytest.raises(TypeError, match="callable"):
        c.get_or_init(5)
    with pytest.raises(TypeError):
        OnceLock(1)
    assert not c.is_set()


# ---------------------------------------------------------------------------
# AtomicInt / AtomicBool
# ---------------------------------------------------------------------------


def test_atomic_int_operations():
    a = AtomicInt(10)
    assert a.load() == 10 and repr(a) == "AtomicInt(10)"
    a.store(5)
    assert a.swap(7) == 5
    assert a.fetch_add(3) == 7 and a.load() == 10
    assert a.fetch_sub(4) == 10 and a.load() == 6
    assert a.fetch_and(0b100) == 6 and a.load() == 4
    assert a.fetch_or(0b011) == 4 and a.load() == 7
    assert a.fetch_xor(0b101) == 7 and a.load() == 2
    assert a.fetch_max(9) == 2 and a.load() == 9
    assert a.fetch_max(1) == 9 and a.load() == 9
    assert a.fetch_min(-3) == 9 and a.load() == -3
    assert a.compare_exchange(-3, 4) == Ok(-3)
    assert a.compare_exchange(-3, 5) == Err(4)
    assert a.fetch_update(lambda v: v * 10) == Ok(4) and a.load() == 40
    assert a.fetch_update(lambda v: None) == Err(40) and a.load() == 40
    assert AtomicInt().load() == 0


def test_atomic_int_overflow_raises_and_never_wraps():
    big, small = 2**63 - 1, -(2**63)
    a = AtomicInt(big)
    with pytest.raises(OverflowError, match="unchanged"):
        a.fetch_add(1)
    assert a.load() == big
    b = AtomicInt(small)
    with pytest.raises(OverflowError):
        b.fetch_sub(1)
    assert b.load() == small
    with pytest.raises(OverflowError):
        AtomicInt(2**63)
    with pytest.raises(OverflowError):
        a.store(2**64)
    with pytest.raises(OverflowError):
        a.fetch_update(lambda v: v + 1)
    assert a.load() == big


def test_atomic_int_bad_types_change_nothing():
    a = AtomicInt(1)
    for bad in (1.5, "2", None):
        with pytest.raises(TypeError, match="int"):
            a.fetch_add(bad)
        with pytest.raises(TypeError):
            a.store(bad)
    with pytest.raises(TypeError):
        a.compare_exchange(1)
    with pytest.raises(TypeError, match="callable"):
        a.fetch_update(1)
    with pytest.raises(TypeError):
        a.fetch_update(lambda v: "x")
    with pytest.raises(TypeError):
        AtomicInt(2.0)
    assert a.load() == 1


def test_atomic_bool_operations_and_bad_input():
    b = AtomicBool()
    assert b.load() is False and repr(b) == "AtomicBool(False)"
    assert b.swap(True) is False and b.load() is True
    assert b.fetch_and(False) is True and b.load() is False
    assert b.fetch_or(True) is False and b.load() is True
    assert b.fetch_xor(True) is True and b.load() is False
    assert b.fetch_nand(True) is False and b.load() is True
    b.store(False)
    assert b.compare_exchange(False, True) == Ok(False)
    assert b.compare_exchange(False, True) == Err(True)
    assert b.fetch_update(lambda v: not v) == Ok(True) and b.load() is False
    assert b.fetch_update(lambda v: None) == Err(False)
    for bad in (1, None, "x"):
        with pytest.raises(TypeError, match="bool"):
            b.store(bad)
    with pytest.raises(TypeError):
        AtomicBool(1)
    assert AtomicBool(True).load() is True
    assert b.load() is False


def test_fetch_update_retries_when_another_thread_races():
    a = AtomicInt(0)
    raced = []

    def f(v):
        if not raced:
            raced.append(v)
            in_thread(a.fetch_add, 100)  # change it under our feet
        return v + 1

    assert a.fetch_update(f) == Ok(100)
    assert a.load() == 101


def test_condvar_notify_by_the_holder_is_delivered_at_unlock_for_two_condvars():
    # notify() made while holding the mutex is delayed until the unlock (the
    # waiters could not run before anyway); two Condvars on one Mutex both
    # get their wake-up, whichever way the lock is released.
    m, a, b = Mutex(0), Condvar(), Condvar()
    ready = AtomicInt()

    def waiter(cv, want):
        with m.lock() as g:
            ready.fetch_add(1)
            g = cv.wait_while(g, lambda v: v < want)
            return g.value

    ha = pyconc.spawn(waiter, a, 1)
    hb = pyconc.spawn(waiter, b, 1)
    while ready.load() < 2:
        time.sleep(0.001)
    time.sleep(0.02)  # both asleep in wait_while
    for release in ("unlock", "gc"):
        g = m.lock()
        g.value += 1
        a.notify_one()
        b.notify_all()
        if release == "unlock":
            g.unlock()
        else:
            del g  # released by refcount: the delayed wake-ups go out too
        if release == "unlock":
            assert ha.join(timeout=10).unwrap() == 1
            assert hb.join(timeout=10).unwrap() == 1
            ha = pyconc.spawn(waiter, a, 2)
            hb = pyconc.spawn(waiter, b, 2)
            while ready.load() < 4:
                time.sleep(0.001)
            time.sleep(0.02)
    assert ha.join(timeout=10).unwrap() == 2
    assert hb.join(timeout=10).unwrap() == 2


# ---------------------------------------------------------------------------
# Regressions of issue 11 (shared state)
# ---------------------------------------------------------------------------

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_py(code: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """Run code in a fresh interpreter (a hang there fails the test by its
    time limit instead of hanging the suite)."""
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=timeout, cwd=ROOT)


def wait_for_waiters(cv, n, timeout=10.0):
    """Wait until n threads sleep in cv (its repr counts them)."""
    deadline = time.monotonic() + timeout
    while repr(cv) != f"Condvar(waiters={n})":
        assert time.monotonic() < deadline, f"{cv!r}: never {n} waiters"
        time.sleep(0.001)
    time.sleep(0.02)  # past the ticket, asleep


@pytest.mark.parametrize("consumers", [2, 3, 5])
def test_every_notify_one_made_by_the_holder_wakes_one_more_waiter(consumers):
    # Issue 11.1: k notify_one() calls made while holding the Mutex were
    # collapsed into one wake-up at unlock; all but one consumer slept on.
    r = run_py(f"""
        import time, pyconc
        m, cv = pyconc.Mutex([]), pyconc.Condvar()
        def consumer():
            with m.lock() as g:
                g = cv.wait_while(g, lambda q: not q)
                return g.value.pop(0)
        hs = [pyconc.spawn(consumer) for _ in range({consumers})]
        while repr(cv) != "Condvar(waiters={consumers})":
            time.sleep(0.001)
        time.sleep(0.05)
        with m.lock() as g:
            for item in "abcdefg"[:{consumers}]:
                g.value.append(item)
                cv.notify_one()
        got = sorted(h.join(timeout=5).unwrap() for h in hs)
        print("".join(got))
    """, timeout=30)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "abcdefg"[:consumers]


def test_notify_one_counts_survive_a_notify_on_another_condvar_of_the_same_mutex():
    # Two notify_one on cv_a, then one on cv_b, all under the lock: cv_a's
    # two wake-ups are delivered (not reset to one by cv_b's turn).
    r = run_py("""
        import time, pyconc
        m, a, b = pyconc.Mutex([]), pyconc.Condvar(), pyconc.Condvar()
        def consumer(cv):
            with m.lock() as g:
                g = cv.wait_while(g, lambda q: not q)
                return g.value.pop(0)
        hs = [pyconc.spawn(consumer, a) for _ in range(2)]
        while repr(a) != "Condvar(waiters=2)":
            time.sleep(0.001)
        time.sleep(0.05)
        with m.lock() as g:
            g.value += ["x", "y"]
            a.notify_one()
            a.notify_one()
            b.notify_one()
        print(sorted(h.join(timeout=5).unwrap() for h in hs))
    """, timeout=30)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "['x', 'y']"


@pytest.mark.parametrize("order", ["other-mutex-waits-first", "other-mutex-waits-last"])
def test_notify_all_under_one_mutex_wakes_a_waiter_of_another_mutex_at_once(order):
    # Issue 11.2: one Condvar, waiters with two Mutexes (pthreads allows it;
    # pyconc's choice, documented on Condvar).  A notify_all made while
    # holding m1 must wake the m2 waiter now, not when m1 is released: here
    # the notifier waits, still holding m1, for the m2 waiter's reply.
    m1, m2, cv = Mutex(False), Mutex(False), Condvar()
    tx, rx = pyconc.channel()

    def waiter(m, reply):
        with m.lock() as g:
            g = cv.wait_while(g, lambda ready: not ready)
        if reply:
            tx.send("woken")

    first, last = ((m2, True), (m1, False)) if order == "other-mutex-waits-first" else \
        ((m1, False), (m2, True))
    h1 = pyconc.spawn(waiter, *first)
    wait_for_waiters(cv, 1)
    h2 = pyconc.spawn(waiter, *last)
    wait_for_waiters(cv, 2)
    with m2.lock() as g:
        g.value = True
    with m1.lock() as g:
        g.value = True
        cv.notify_all()
        try:
            assert rx.recv(timeout=5) == "woken"
        finally:
            cv.notify_all()  # (on failure: still let everybody go)
    h1.join(timeout=10).unwrap()
    h2.join(timeout=10).unwrap()


def test_wait_while_predicate_that_unlocks_the_guard_raises_and_never_releases_the_lock_twice():
    # Issue 11.7: the predicate unlocks the guard, then (here) locks the
    # mutex again through a new guard; the wait used to release the mutex
    # a second time -- out from under that new guard.
    m, cv = Mutex(0), Condvar()
    g = m.lock()
    held = []

    def pred(_):
        g.unlock()
        held.append(m.lock())
        return True

    with pytest.raises(UseAfterDrop, match="predicate"):
        cv.wait_timeout_while(g, 0.2, pred)
    assert not g.locked
    assert held[0].locked and m.is_locked()
    with pytest.raises(WouldBlock):  # still held by the new guard, by nobody else
        in_thread(m.try_lock)
    held[0].unlock()
    assert not m.is_locked()
    with m.lock(timeout=1) as g2:
        assert g2.value == 0


def test_wait_while_predicate_that_unlocks_and_returns_false_raises_instead_of_returning_it():
    m, cv = Mutex(0), Condvar()
    g = m.lock()

    def pred(_):
        g.unlock()
        return False

    with pytest.raises(UseAfterDrop, match="predicate"):
        cv.wait_while(g, pred)
    assert not m.is_locked()
    in_thread(lambda: m.lock(timeout=1).unlock())


def test_wait_while_predicate_unlocking_lets_no_second_thread_into_the_critical_section():
    m, cv = Mutex(0), Condvar()
    inside = AtomicInt()
    stop = AtomicBool(False)
    overlaps = AtomicInt()

    def other():
        while not stop.load():
            with m.lock() as g2:
                if inside.fetch_add(1) != 0:
                    overlaps.fetch_add(1)
                time.sleep(0.0005)
                inside.fetch_sub(1)
                g2.value += 1

    h = pyconc.spawn(other)
    try:
        for _ in range(20):
            g = m.lock()
            inside.fetch_add(1)

            def pred(_):
                inside.fetch_sub(1)
                g.unlock()
                time.sleep(0.002)  # the other thread gets in
                return True

            with pytest.raises(UseAfterDrop):
                cv.wait_timeout_while(g, 0.01, pred)
    finally:
        stop.store(True)
    h.join(timeout=10).unwrap()
    assert overlaps.load() == 0
    assert not m.is_locked()


def test_guard_lent_to_a_condvar_wait_refuses_unlock_and_value_elsewhere():
    # While a wait has released the mutex on the guard's behalf, the guard
    # does not hold the lock: unlocking it (from another thread, which used
    # to release the lock for whoever held it then) or reading its value
    # must fail; the waiter gets it back locked.
    m, cv = Mutex("v"), Condvar()
    box = []

    def waiter():
        with m.lock() as g:
            box.append(g)
            g, timed_out = cv.wait_timeout(g, 0.5)
            return g.locked, g.value

    h = pyconc.spawn(waiter)
    wait_for_waiters(cv, 1)
    g = box[0]
    assert not g.locked
    with pytest.raises(UseAfterDrop, match="Condvar wait"):
        g.unlock()
    with pytest.raises(UseAfterDrop, match="Condvar wait"):
        g.value
    with m.lock(timeout=1) as mine:  # the lock is really free meanwhile
        assert mine.value == "v"
    assert h.join(timeout=10).unwrap() == (True, "v")
    assert not m.is_locked()


def _same_os_thread_pair(first, second):
    """Run first() (which takes and returns a guard) then second() on pyconc
    threads that the thread cache puts on the same OS thread -- the case of
    issue 11.9; retry (unlocking) when it did not.  Returns (guard, second's
    return value)."""
    for _ in range(50):
        tid1, kept = pyconc.spawn(lambda: (threading.get_native_id(), first())).join(
            timeout=10).unwrap()
        tid2, out = pyconc.spawn(lambda: (threading.get_native_id(), second())).join(
            timeout=10).unwrap()
        if tid1 == tid2:
            return kept, out
        kept.unlock()
    pytest.fail("spawned threads never ran on the same OS thread")


def test_a_mutex_left_locked_by_a_finished_thread_times_out_for_the_next_thread_on_its_os_thread():
    # Issue 11.9: lock ownership belonged to the reused OS thread, so the
    # next pyconc thread got DeadlockError ("this thread already holds").
    m = Mutex(0)

    def second():
        try:
            m.lock(timeout=0.2)
        except LockTimeoutError:
            return "timed out"

    kept, outcome = _same_os_thread_pair(m.lock, second)
    assert outcome == "timed out"
    assert kept.locked
    kept.unlock()


def test_a_mutex_left_locked_by_a_finished_pool_job_times_out_for_the_next_job_on_its_worker():
    # Issue 11.9 for pool jobs: ownership belonged to the worker's OS thread.
    m = Mutex(0)

    def second():
        try:
            m.lock(timeout=0.2)
        except LockTimeoutError:
            return "timed out"
        return "locked"

    with pyconc.ThreadPool(1) as pool:  # one worker: both jobs run on it
        kept = pool.spawn(m.lock).join().unwrap()
        assert pool.spawn(second).join().unwrap() == "timed out"
    assert kept.locked
    kept.unlock()


def test_an_rwlock_read_guard_left_by_a_finished_thread_does_not_belong_to_the_next_one():
    lock = RwLock(0)

    def second():
        try:
            lock.write(timeout=0.2)
        except LockTimeoutError:
            return "timed out"

    kept, outcome = _same_os_thread_pair(lock.read, second)
    assert outcome == "timed out"
    kept.unlock()
    with lock.write(timeout=1):
        pass


def test_a_later_thread_cannot_condvar_wait_with_a_guard_a_finished_thread_took():
    m, cv = Mutex(0), Condvar()

    def second():
        try:
            cv.wait_timeout(kept_box[-1], 0.05)
        except RuntimeError as e:
            return str(e)

    kept_box = []

    def first():
        g = m.lock()
        kept_box.append(g)
        return g

    kept, outcome = _same_os_thread_pair(first, second)
    assert "held by another thread" in outcome
    assert kept.locked and m.is_locked()
    kept.unlock()


def _poison(lock):
    try:
        with (lock.lock() if isinstance(lock, Mutex) else lock.write()):
            raise RuntimeError("poison")
    except RuntimeError:
        pass


@pytest.mark.parametrize("how", ["spawn", "pool", "chained"])
def test_poison_error_escaping_a_thread_leaves_the_mutex_unlocked_when_the_thread_ends(how):
    # Issue 11.10: the uncaught PoisonError carries the guard lock() took;
    # the thread's Err keeps it alive, so the mutex stayed locked until the
    # Err was collected.  Rust drops the guard while unwinding.
    m = Mutex(7)
    _poison(m)

    def body():
        if how == "chained":
            try:
                m.lock()
            except PoisonError as e:
                raise ValueError("gave up") from e
        with m.lock() as g:
            g.value += 1

    if how == "pool":
        with pyconc.ThreadPool(1) as pool:
            err = pool.spawn(body).join(timeout=10)
    else:
        err = pyconc.spawn(body).join(timeout=10)
    assert err.is_err()
    assert not m.is_locked()
    exc = err.unwrap_err()
    poison = exc.__cause__ if how == "chained" else exc
    assert isinstance(poison, PoisonError)
    guard = poison.into_inner()
    assert not guard.locked
    with pytest.raises(UseAfterDrop):
        guard.value
    with pytest.raises(PoisonError) as ei:  # still poisoned, and free
        m.lock(timeout=1)
    g = ei.value.into_inner()
    assert g.value == 7
    g.unlock()
    assert err.is_err()  # (the Err, inspected, is alive all along)


def test_poison_error_escaping_a_thread_releases_an_rwlock_write_guard():
    lock = RwLock(1)
    _poison(lock)

    def body():
        with lock.write():
            pass

    err = pyconc.spawn(body).join(timeout=10)
    assert isinstance(err.unwrap_err(), PoisonError)
    with pytest.raises(PoisonError) as ei:
        lock.write(timeout=1)
    ei.value.into_inner().unlock()


def test_poison_error_caught_inside_the_thread_keeps_its_guard_locked():
    m = Mutex(0)
    _poison(m)

    def body():
        try:
            m.lock()
        except PoisonError as e:
            g = e.into_inner()
            return g.locked, m.is_locked()

    assert in_thread(body) == (True, True)  # (the guard died with the thread)
    assert not m.is_locked()


class _Conn:
    def __init__(self):
        self.dropped = 0

    def drop(self):
        self.dropped += 1
        return "conn dropped"


def test_arc_operation_names_the_value_also_has_are_refused_naming_both_spellings():
    # Issue 11.11: Arc({"k": 1}).get("k") raised TypeError (Arc.get took
    # it); Arc(conn).drop() dropped the Arc instead of calling conn.drop().
    a = Arc({"k": 1})
    with pytest.raises(AttributeError, match=r"Arc\.get\(a\).*Arc\.get\(a\)\.get"):
        a.get("k")
    assert Arc.get(a).get("k") == 1  # the value's method
    assert Arc.get(a) == {"k": 1}  # the Arc's
    assert a.keys() == {"k": 1}.keys()  # other names forward as before
    c = Arc(_Conn())
    with pytest.raises(AttributeError, match=r"Arc\.drop\(a\)"):
        c.drop()
    assert Arc.strong_count(c) == 1  # nothing was dropped
    assert Arc.get(c).drop() == "conn dropped" and Arc.get(c).dropped == 1
    Arc.drop(c)  # the Arc's
    with pytest.raises(UseAfterDrop):
        Arc.get(c)


def test_arc_methods_keep_working_when_the_value_has_no_such_name_and_clone_is_always_the_arcs():
    a = Arc([1, 2])
    assert a.get() == [1, 2]
    b = a.clone()
    assert a.strong_count() == 2 == Arc.strong_count(a)
    assert Arc.ptr_eq(a, b) and a.ptr_eq(b)
    tx, rx = pyconc.channel()  # Sender has its own clone(): Arc's wins (Rust)
    s = Arc(tx)
    s2 = s.clone()
    assert isinstance(s2, Arc) and Arc.strong_count(s) == 2
    assert type(Arc.get(s).clone()) is type(tx)
    b.drop()
    a.drop()
    with pytest.raises(UseAfterDrop):
        a.get()
    d = Arc({"k": 1})
    Arc.drop(d)
    with pytest.raises(UseAfterDrop):  # a dropped handle says so, not "ambiguous"
        d.get()


def test_barrier_accepts_any_integer_with_index_but_not_bool_or_float():
    import numpy as np
    b = Barrier(np.int64(1))
    assert b.wait().is_leader()

    class Two:
        def __index__(self):
            return 2

    assert Barrier(Two()).n == 2
    for bad in (True, 2.0, "2"):
        with pytest.raises(TypeError):
            Barrier(bad)
    with pytest.raises(ValueError):
        Barrier(np.int64(0))


def test_atomic_truthiness_reads_the_value():
    # Issue 11.12: bool(AtomicBool(False)) was True (object default).
    flag = AtomicBool(False)
    assert not flag
    flag.store(True)
    assert flag
    n = AtomicInt(0)
    assert not n
    n.fetch_add(3)
    assert n
    n.store(-1)
    assert n


def test_ctrl_c_arriving_as_a_condvar_wait_starts_still_delivers_the_holders_delayed_notify():
    # The holder's notify is delayed to its unlock; its own wait() unlocks,
    # so the wait delivers it -- but a Ctrl-C already pending as the wait
    # began made it return at once and the wake-up was dropped: the other
    # waiter slept on although notified.  The Ctrl-C (from another process:
    # a thread would need the GIL) lands while the predicate runs in C, a
    # sum over a range that checks no signal, so the wait's first check
    # finds it.  The waiter blocks SIGINT, so only the main thread gets it.
    r = run_py("""
        import functools, os, signal, subprocess, time, pyconc
        m, cv = pyconc.Mutex(0), pyconc.Condvar()

        def waiter():
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
            with m.lock() as g:
                g = cv.wait_while(g, lambda v: v == 0)
                return "woken"

        h = pyconc.spawn(waiter)
        while repr(cv) != "Condvar(waiters=1)":
            time.sleep(0.001)
        time.sleep(0.05)
        g = m.lock()
        g.value = range(1, 5 * 10**7)
        cv.notify_one()  # by the holder: delivered by the wait below
        kill = subprocess.Popen(["sh", "-c", f"sleep 0.3; kill -INT {os.getpid()}"])
        t = time.monotonic()
        try:
            cv.wait_while(g, functools.partial(sum))  # ~0.5-1 s in C, then waits
            print("no interrupt")
        except KeyboardInterrupt:
            print("interrupted")
        took = time.monotonic() - t
        g.unlock()
        print(h.join(timeout=5))
        kill.wait()
        print("late" if took < 0.35 else "in-time")
    """, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["interrupted", "Ok('woken')", "in-time"]
