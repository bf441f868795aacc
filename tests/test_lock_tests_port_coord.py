"""CPython's Lib/test/lock_tests.py, the Event and Semaphore cases, run
against pyconc.Event and pyconc.Semaphore (issue 17).

Portions copyright (c) 2001-2024 Python Software Foundation; all rights
reserved (PSF License Agreement v2).  The test bodies and their assertions
are CPython 3.12's, as written; only the API spelling is adapted, in one
place: ``PyconcSemaphore`` gives ``threading.Semaphore``'s spelling
(``acquire(blocking=True, timeout=None) -> bool``, ``release(n=1)``,
``with``; default value 1) over a pyconc.Semaphore, whose own acquire
returns a SemaphorePermit and raises LockTimeoutError / WouldBlock instead of
returning False.  pyconc.Event already has threading.Event's spelling and is
tested as it is.  ``Bunch`` and ``BaseTestCase`` are the helpers of
tests/test_lock_tests_port.py (the Condition/Barrier port); ``support``
gives the few test.support names the bodies use.

The semaphore cases are BaseSemaphoreTests (shared by CPython's Semaphore
and BoundedSemaphore tests: run once) and SemaphoreTests.

Not ported, and why:

* EventTests.test_at_fork_reinit -- tests threading.Event's private
  _cond/_at_fork_reinit; pyconc.Event has no Condition inside.
* EventTests.test_repr, SemaphoreTests.test_repr, BoundedSemaphoreTests.test_repr
  -- pyconc's reprs are ``Event(set=False, waiters=0)`` and
  ``Semaphore(permits=3, waiters=0)`` (tests/test_coord.py), not
  ``<threading.Event at ...: unset>``.
* BoundedSemaphoreTests.test_release_unacquired -- pyconc's Semaphore (tokio's)
  has no bound: release(n) adds permits, as threading.Semaphore does
  (SemaphoreTests.test_release_unacquired is ported).
"""
from __future__ import annotations

import sys
import time
import types

import pytest

import pyconc

from test_lock_tests_port import SHORT_TIMEOUT, BaseTestCase, Bunch, sleeping_retry, wait_threads_blocked

# CPython's unittest TestCases: pytest-run-parallel's copies would share one
# TestCase instance.
pytestmark = pytest.mark.thread_unsafe(reason="CPython's unittest TestCases share one instance")

support = types.SimpleNamespace(sleeping_retry=sleeping_retry, SHORT_TIMEOUT=SHORT_TIMEOUT,
                                LONG_TIMEOUT=5 * 60.0)


# ---- the API spelling ---------------------------------------------------------


class PyconcSemaphore:
    """threading.Semaphore's spelling over a pyconc.Semaphore."""

    def __init__(self, value=1):
        self._sem = pyconc.Semaphore(value)

    def acquire(self, blocking=True, timeout=None):
        if not blocking:
            if timeout is not None:
                raise ValueError("can't specify timeout for non-blocking acquire")
            try:
                self._sem.try_acquire()
            except pyconc.WouldBlock:
                return False
            return True
        try:
            self._sem.acquire(timeout=timeout)
        except pyconc.LockTimeoutError:
            return False
        return True

    def release(self, n=1):
        self._sem.release(n)

    def __enter__(self):
        return self._sem.__enter__()

    def __exit__(self, *exc):
        return self._sem.__exit__(*exc)


# ---- CPython 3.12's tests -----------------------------------------------------


class EventTests(BaseTestCase):
    """
    Tests for Event objects.
    """
    eventtype = pyconc.Event

    def test_is_set(self):
        evt = self.eventtype()
        self.assertFalse(evt.is_set())
        evt.set()
        self.assertTrue(evt.is_set())
        evt.set()
        self.assertTrue(evt.is_set())
        evt.clear()
        self.assertFalse(evt.is_set())
        evt.clear()
        self.assertFalse(evt.is_set())

    def _check_notify(self, evt):
        # All threads get notified
        N = 5
        results1 = []
        results2 = []
        def f():
            results1.append(evt.wait())
            results2.append(evt.wait())

        with Bunch(f, N):
            # Threads blocked on first evt.wait()
            wait_threads_blocked(N)
            self.assertEqual(len(results1), 0)

            # Threads unblocked
            evt.set()

        self.assertEqual(results1, [True] * N)
        self.assertEqual(results2, [True] * N)

    def test_notify(self):
        evt = self.eventtype()
        self._check_notify(evt)
        # Another time, after an explicit clear()
        evt.set()
        evt.clear()
        self._check_notify(evt)

    def test_timeout(self):
        evt = self.eventtype()
        results1 = []
        results2 = []
        N = 5
        def f():
            results1.append(evt.wait(0.0))
            t1 = time.monotonic()
            r = evt.wait(0.5)
            t2 = time.monotonic()
            results2.append((r, t2 - t1))

        with Bunch(f, N):
            pass

        self.assertEqual(results1, [False] * N)
        for r, dt in results2:
            self.assertFalse(r)
            self.assertTimeout(dt, 0.5)

        # The event is set
        results1 = []
        results2 = []
        evt.set()
        with Bunch(f, N):
            pass

        self.assertEqual(results1, [True] * N)
        for r, dt in results2:
            self.assertTrue(r)

    def test_set_and_clear(self):
        # gh-57711: check that wait() returns true even when the event is
        # cleared before the waiting thread is woken up.
        event = self.eventtype()
        results = []
        def f():
            results.append(event.wait(support.LONG_TIMEOUT))

        N = 5
        with Bunch(f, N):
            # Threads blocked on event.wait()
            wait_threads_blocked(N)

            # Threads unblocked
            event.set()
            event.clear()

        self.assertEqual(results, [True] * N)


class BaseSemaphoreTests(BaseTestCase):
    """
    Common tests for {bounded, unbounded} semaphore objects.
    """
    semtype = PyconcSemaphore

    def test_constructor(self):
        self.assertRaises(ValueError, self.semtype, value = -1)
        self.assertRaises(ValueError, self.semtype, value = -sys.maxsize)

    def test_acquire(self):
        sem = self.semtype(1)
        sem.acquire()
        sem.release()
        sem = self.semtype(2)
        sem.acquire()
        sem.acquire()
        sem.release()
        sem.release()

    def test_acquire_destroy(self):
        sem = self.semtype()
        sem.acquire()
        del sem

    def test_acquire_contended(self):
        sem_value = 7
        sem = self.semtype(sem_value)
        sem.acquire()

        sem_results = []
        results1 = []
        results2 = []
        phase_num = 0

        def func():
            sem_results.append(sem.acquire())
            results1.append(phase_num)

            sem_results.append(sem.acquire())
            results2.append(phase_num)

        def wait_count(count):
            for _ in support.sleeping_retry(support.SHORT_TIMEOUT):
                if len(results1) + len(results2) >= count:
                    break

        N = 10
        with Bunch(func, N):
            # Phase 0
            count1 = sem_value - 1
            wait_count(count1)
            self.assertEqual(results1 + results2, [0] * count1)

            # Phase 1
            phase_num = 1
            for i in range(sem_value):
                sem.release()
            count2 = sem_value
            wait_count(count1 + count2)
            self.assertEqual(sorted(results1 + results2),
                             [0] * count1 + [1] * count2)

            # Phase 2
            phase_num = 2
            count3 = (sem_value - 1)
            for i in range(count3):
                sem.release()
            wait_count(count1 + count2 + count3)
            self.assertEqual(sorted(results1 + results2),
                             [0] * count1 + [1] * count2 + [2] * count3)
            # The semaphore is still locked
            self.assertFalse(sem.acquire(False))

            # Final release, to let the last thread finish
            count4 = 1
            sem.release()

        self.assertEqual(sem_results,
                         [True] * (count1 + count2 + count3 + count4))

    def test_multirelease(self):
        sem_value = 7
        sem = self.semtype(sem_value)
        sem.acquire()

        results1 = []
        results2 = []
        phase_num = 0
        def func():
            sem.acquire()
            results1.append(phase_num)

            sem.acquire()
            results2.append(phase_num)

        def wait_count(count):
            for _ in support.sleeping_retry(support.SHORT_TIMEOUT):
                if len(results1) + len(results2) >= count:
                    break

        with Bunch(func, 10):
            # Phase 0
            count1 = sem_value - 1
            wait_count(count1)
            self.assertEqual(results1 + results2, [0] * count1)

            # Phase 1
            phase_num = 1
            count2 = sem_value
            sem.release(count2)
            wait_count(count1 + count2)
            self.assertEqual(sorted(results1 + results2),
                             [0] * count1 + [1] * count2)

            # Phase 2
            phase_num = 2
            count3 = sem_value - 1
            sem.release(count3)
            wait_count(count1 + count2 + count3)
            self.assertEqual(sorted(results1 + results2),
                             [0] * count1 + [1] * count2 + [2] * count3)
            # The semaphore is still locked
            self.assertFalse(sem.acquire(False))

            # Final release, to let the last thread finish
            sem.release()

    def test_try_acquire(self):
        sem = self.semtype(2)
        self.assertTrue(sem.acquire(False))
        self.assertTrue(sem.acquire(False))
        self.assertFalse(sem.acquire(False))
        sem.release()
        self.assertTrue(sem.acquire(False))

    def test_try_acquire_contended(self):
        sem = self.semtype(4)
        sem.acquire()
        results = []
        def f():
            results.append(sem.acquire(False))
            results.append(sem.acquire(False))
        with Bunch(f, 5):
            pass
        # There can be a thread switch between acquiring the semaphore and
        # appending the result, therefore results will not necessarily be
        # ordered.
        self.assertEqual(sorted(results), [False] * 7 + [True] *  3 )

    def test_acquire_timeout(self):
        sem = self.semtype(2)
        self.assertRaises(ValueError, sem.acquire, False, timeout=1.0)
        self.assertTrue(sem.acquire(timeout=0.005))
        self.assertTrue(sem.acquire(timeout=0.005))
        self.assertFalse(sem.acquire(timeout=0.005))
        sem.release()
        self.assertTrue(sem.acquire(timeout=0.005))
        t = time.monotonic()
        self.assertFalse(sem.acquire(timeout=0.5))
        dt = time.monotonic() - t
        self.assertTimeout(dt, 0.5)

    def test_default_value(self):
        # The default initial value is 1.
        sem = self.semtype()
        sem.acquire()
        def f():
            sem.acquire()
            sem.release()

        with Bunch(f, 1) as bunch:
            # Thread blocked on sem.acquire()
            wait_threads_blocked(1)
            self.assertFalse(bunch.finished)

            # Thread unblocked
            sem.release()

    def test_with(self):
        sem = self.semtype(2)
        def _with(err=None):
            with sem:
                self.assertTrue(sem.acquire(False))
                sem.release()
                with sem:
                    self.assertFalse(sem.acquire(False))
                    if err:
                        raise err
        _with()
        self.assertTrue(sem.acquire(False))
        sem.release()
        self.assertRaises(TypeError, _with, TypeError)
        self.assertTrue(sem.acquire(False))
        sem.release()

class SemaphoreTests(BaseSemaphoreTests):
    """
    Tests for unbounded semaphores.
    """

    def test_release_unacquired(self):
        # Unbounded releases are allowed and increment the semaphore's value
        sem = self.semtype(1)
        sem.release()
        sem.acquire()
        sem.acquire()
        sem.release()



# BaseSemaphoreTests is the shared base (CPython runs it through its
# Semaphore and BoundedSemaphore subclasses): run it once, as SemaphoreTests.
del BaseSemaphoreTests
