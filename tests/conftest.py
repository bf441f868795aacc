"""Shared test helpers.

* ``interrupt_main(delay)``: sends SIGINT to the main thread after ``delay``
  seconds (like Ctrl-C) and records when; use it to prove a blocking call
  is interrupted promptly.
* ``until_interrupted(step)``: repeats ``step(i)`` until the interrupt
  comes out of it (the loop a test must not write inline on CPython 3.13).
* ``run_threads(fn, n)``: runs ``fn(i)`` on n pyconc threads started
  together, and re-raises the first failure in the test (worker failures
  are never swallowed).
* ``panic_reports``: what pyconc's panic hook reported during the test
  (every test runs with a quiet panic hook: see ``_quiet_panic_hook``).
"""
from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from typing import Any, Callable, Iterator, List

import pytest

import pyconc

def stress_scale(n: int, minimum: int = 1) -> int:
    """Scale a stress-test count by PYCONC_STRESS_SCALE (CI's sanitizer run
    sets 0.1: the same shape of test, fewer operations)."""
    f = float(os.environ.get("PYCONC_STRESS_SCALE", "1"))
    return max(minimum, int(n * f))


# The promise is 100 ms; CI machines are shared and noisy, so the tests
# allow this much on top before failing.
INTERRUPT_BUDGET = 0.1
INTERRUPT_SLACK = 0.4


class _Interrupter:
    sent_at: float = 0.0

    def latency(self) -> float:
        assert self.sent_at, "the interrupt was never sent"
        return time.monotonic() - self.sent_at


@contextlib.contextmanager
def _interrupt_main(delay: float = 0.2) -> Iterator[_Interrupter]:
    assert threading.current_thread() is threading.main_thread()
    info = _Interrupter()
    main_ident = threading.main_thread().ident

    armed, cancelled = threading.Event(), threading.Event()

    def fire() -> None:
        # the delay counts from `armed`, set once start() has returned: on a
        # loaded machine start() itself can take longer than the delay, and a
        # signal landing inside it would escape the caller's `with` block
        armed.wait()
        if cancelled.wait(delay):
            return
        info.sent_at = time.monotonic()
        signal.pthread_kill(main_ident, signal.SIGINT)  # type: ignore[arg-type]

    t = threading.Thread(target=fire, name="interrupt-main")
    t.start()
    armed.set()
    try:
        yield info
    finally:
        cancelled.set()
        t.join()


@pytest.fixture
def interrupt_main() -> Callable[..., Any]:
    """``with interrupt_main(0.2) as irq: ...; assert irq.latency() < budget``."""
    return _interrupt_main


def until_interrupted(step: Callable[[int], object], seconds: float = 30) -> None:
    """Call ``step(0)``, ``step(1)``, ... until an exception (the interrupt)
    comes out of one, or ``seconds`` pass.

    Use it inside ``with pytest.raises(KeyboardInterrupt):`` instead of
    writing the ``while`` loop there: on CPython 3.13 the back edge of a
    ``while cond:`` loop lies outside the exception table of the block
    around it, so a signal handled at that instruction escapes the
    ``with``/``try`` (python/cpython#130279; CI's 3.13.0 run stopped on it).
    Here the loop runs in this frame, and the caller's call is covered.
    ``tests/test_interrupt_loops.py`` keeps such loops out of the tests."""
    deadline, i = time.monotonic() + seconds, 0
    while time.monotonic() < deadline:
        step(i)
        i += 1


def wait_for_mutex_value(m: Any, n: int, settle: float = 0.1) -> None:
    """Poll until ``m.lock().value >= n`` (10 s at most), then sleep
    ``settle`` seconds.  The Condvar tests count a waiter in the Mutex's
    value, holding it, just before ``cv.wait(g)``: once the count is seen
    the waiter is queued, and the sleep lets it fall asleep in the kernel
    rather than still spinning."""
    deadline = time.monotonic() + 10
    while True:
        with m.lock() as g:
            if g.value >= n:
                break
        assert time.monotonic() < deadline, f"the Mutex's value never reached {n}"
        time.sleep(0.001)
    time.sleep(settle)


def assert_prompt(irq: _Interrupter) -> None:
    lat = irq.latency()
    assert lat < INTERRUPT_BUDGET + INTERRUPT_SLACK, f"interrupt took {lat * 1000:.0f} ms"


def run_threads(fn: Callable[[int], Any], n: int, timeout: float = 60.0) -> List[Any]:
    """Run fn(0..n-1) on n pyconc threads that start together; return their
    results in order; re-raise the first exception any of them raised."""
    barrier = threading.Barrier(n)

    def body(i: int) -> Any:
        barrier.wait()
        return fn(i)

    handles = [pyconc.spawn(body, i) for i in range(n)]
    results = [h.join(timeout=timeout) for h in handles]
    return [r.unwrap() for r in results]



# pyconc reports an exception escaping a thread through its panic hook, whose
# default hands it to threading.excepthook -- which pytest watches: an
# unexpected thread failure fails the test, as for threading.Thread.  Many
# tests here let threads raise on purpose and check the Err, so every test
# runs with a quiet hook that keeps nothing (keeping the exceptions would
# keep their frames alive for the leak tests); a test that checks the
# reports asks for `panic_reports`.
@pytest.fixture(autouse=True)
def _quiet_panic_hook() -> Iterator[None]:
    prev = pyconc.take_panic_hook()
    pyconc.set_panic_hook(lambda args: None)
    try:
        yield
    finally:
        pyconc.set_panic_hook(prev)


@pytest.fixture
def panic_reports(_quiet_panic_hook: None) -> List[Any]:
    """The panic hook's reports during this test: a list of
    threading.ExceptHookArgs, one per exception that escaped a thread."""
    reports: List[Any] = []
    pyconc.set_panic_hook(reports.append)
    return reports


# ---- pytest-run-parallel: which tests run in one thread only ------------------
#
# CI runs the suite on free-threaded CPython under pytest-run-parallel
# (``--parallel-threads=4``: every test runs in 4 threads at once).  A test is
# kept single-threaded only when it is inherently so; it is found here by
# what it uses, with the reason, instead of a marker in every file.  The
# names are looked for in the test's code and in the module-level helpers it
# calls (one level down).

_THREAD_UNSAFE_FIXTURES = {
    "interrupt_main": "sends SIGINT to the main thread: signals are delivered to the main thread only",
    "panic_reports": "installs a process-wide panic hook and counts its reports",
}
_THREAD_UNSAFE_NAMES = [
    ({"signal", "pthread_kill"}, "installs a signal handler or sends a signal (main thread only)"),
    ({"fork"}, "forks: the child of a multithreaded parent has only the forking thread"),
    ({"subprocess", "run_py"}, "runs its case in a subprocess: nothing shared with this process"),
    ({"tracemalloc", "getrefcount", "getrusage"},
     "measures process-wide memory, reference counts or CPU time that the other copies change"),
    ({"settrace", "setprofile"}, "sets a process-wide trace/profile hook"),
    ({"doctest", "DocTestRunner"}, "runs doctest, which patches linecache and sys.stdout process-wide"),
]
# by name: (pattern in the test's node id, reason)
_THREAD_UNSAFE_IDS = [
    ("test_cpython_futures_port.py::", "CPython's unittest TestCases: the copies share one "
                                        "TestCase instance, whose setUp/tearDown make and shut "
                                        "down one executor"),
    ("test_lock_tests_port.py::", "CPython's unittest TestCases: the copies share one TestCase "
                                  "instance and its fixtures"),
    ("test_thread_ecosystem.py::", "checks process-wide thread state that the copies change: "
                                   "threading.enumerate(), OS thread names, trace/profile "
                                   "hooks and the panic hook"),
    ("main_thread", "is about the main thread itself: the copies run on other threads"),
    ("_stress.py::", "a stress test that starts its own 4-16 threads at fixed sizes: 4 copies "
                     "oversubscribe a 2-core machine past the time limit (CI repeats the stress "
                     "files on 3.13t instead)"),
]


def _code_names(code: Any, seen: Any) -> set:
    names = set(code.co_names)
    for const in code.co_consts:
        if hasattr(const, "co_names") and const not in seen:
            seen.add(const)
            names |= _code_names(const, seen)
    return names


def _names_used_by(func: Any) -> set:
    code = getattr(func, "__code__", None)
    if code is None:
        return set()
    seen: set = set()
    names = _code_names(code, seen)
    module_globals = getattr(func, "__globals__", {})
    for name in list(names):
        helper = module_globals.get(name)
        helper_code = getattr(helper, "__code__", None)
        if helper_code is not None and helper is not func and helper_code not in seen:
            names |= _code_names(helper_code, seen)
    return names


def pytest_configure(config: Any) -> None:
    # registered by pytest-run-parallel too; here so the suite runs without it
    config.addinivalue_line("markers", "thread_unsafe: run this test in one thread only "
                            "(pytest-run-parallel)")
    # A shell starts a background job (`cmd &` without job control, nohup)
    # with SIGINT ignored, and Python then keeps it ignored: every Ctrl-C
    # test would wait forever, here and in the subprocesses it starts
    # (exec keeps an ignored signal ignored).  Ctrl-C is what they test:
    # give the main thread Python's own handler, as an interactive start does.
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def pytest_collection_modifyitems(config: Any, items: List[Any]) -> None:
    for item in items:
        if item.get_closest_marker("thread_unsafe") is not None:
            continue
        reason = next((why for fx, why in _THREAD_UNSAFE_FIXTURES.items()
                       if fx in getattr(item, "fixturenames", ())), None)
        if reason is None:
            reason = next((why for pat, why in _THREAD_UNSAFE_IDS if pat in item.nodeid), None)
        if reason is None:
            used = _names_used_by(getattr(item, "function", None))
            reason = next((why for names, why in _THREAD_UNSAFE_NAMES if names & used), None)
        if reason is not None:
            item.add_marker(pytest.mark.thread_unsafe(reason=reason))
