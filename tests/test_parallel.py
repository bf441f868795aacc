"""The pool: ThreadPool, join, scope, spawn, close, Executor, merge_sort."""
from __future__ import annotations

import concurrent.futures as cf
import os
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import pyconc
from pyconc import Err, Ok, ThreadPool


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_py(code: str, timeout: float = 30) -> subprocess.CompletedProcess:
    """Run `code` in a fresh interpreter; a hang fails the test at `timeout`."""
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=timeout, cwd=ROOT)


def fib(n: int) -> int:
    if n < 2:
        return n
    a, b = pyconc.join(lambda: fib(n - 1), lambda: fib(n - 2))
    return a + b


def test_join_returns_both_results_in_order():
    assert pyconc.join(lambda: "a", lambda: "b") == ("a", "b")


def test_nested_joins_compute_fib_on_the_global_pool():
    assert fib(15) == 610


def test_nested_joins_inside_a_one_thread_pool_do_not_deadlock():
    with ThreadPool(1) as pool:
        assert pool.install(lambda: fib(12)) == 144


def test_join_runs_b_on_another_thread_when_a_blocks():
    # a waits until b has run: only possible if b runs concurrently elsewhere
    ev = threading.Event()
    with ThreadPool(2) as pool:
        a_saw, b_thread = pool.join(lambda: ev.wait(10), lambda: (ev.set(), threading.get_ident())[1])
    assert a_saw is True and b_thread != threading.get_ident()


def test_join_exception_in_a_propagates_after_b_ran():
    ran = []
    with pytest.raises(ZeroDivisionError):
        pyconc.join(lambda: 1 / 0, lambda: ran.append("b"))
    assert ran == ["b"]


def test_join_exception_in_b_propagates_after_a_ran():
    ran = []
    with pytest.raises(KeyError):
        pyconc.join(lambda: ran.append("a"), lambda: {}["missing"])
    assert ran == ["a"]


def test_join_both_raise_a_wins_and_b_is_noted():
    def b():
        raise ValueError("from b")

    with pytest.raises(ZeroDivisionError) as info:
        pyconc.join(lambda: 1 / 0, b)
    assert any("from b" in n for n in getattr(info.value, "__notes__", []))


def test_join_inside_a_pool_worker_propagates_exceptions():
    with ThreadPool(2) as pool:
        def body():
            return pyconc.join(lambda: 1, lambda: [][1])
        with pytest.raises(IndexError):
            pool.install(body)


def test_join_rejects_non_callables():
    with pytest.raises(TypeError, match="two callables"):
        pyconc.join(1, lambda: 2)


def test_install_runs_on_a_pool_thread_and_uses_that_pool():
    with ThreadPool(3) as pool:
        ident, n = pool.install(lambda: (threading.get_ident(), pyconc.current_num_threads()))
    assert ident != threading.get_ident()
    assert n == 3


def test_install_propagates_the_exception_with_its_traceback():
    def boom():
        raise RuntimeError("inside")

    with ThreadPool(1) as pool:
        with pytest.raises(RuntimeError, match="inside") as info:
            pool.install(boom)
    assert "boom" in str(info.traceback[-1].name)


def test_thousands_of_spawns_each_run_exactly_once():
    counts = [0] * 5000
    lock = threading.Lock()

    def work(i):
        with lock:
            counts[i] += 1
        return i * 2

    with ThreadPool(2) as pool:
        handles = [pool.spawn(work, i) for i in range(5000)]
        results = [h.join(timeout=60) for h in handles]
    assert results == [Ok(i * 2) for i in range(5000)]
    assert counts == [1] * 5000


def test_spawn_passes_args_and_kwargs_and_captures_errors():
    with ThreadPool(2) as pool:
        assert pool.spawn(lambda a, b=0: a + b, 1, b=2).join() == Ok(3)
        r = pool.spawn(lambda: 1 / 0).join()
    assert r.is_err() and isinstance(r.err(), ZeroDivisionError)


def test_close_completes_pending_work_and_rejects_new_work():
    started = threading.Event()
    release = threading.Event()
    pool = ThreadPool(1)
    first = pool.spawn(lambda: (started.set(), release.wait(10))[1])
    pending = [pool.spawn(lambda i=i: i) for i in range(100)]
    assert started.wait(10)
    closer = pyconc.spawn(pool.close)
    time.sleep(0.05)
    with pytest.raises(RuntimeError, match="closed"):
        pool.spawn(lambda: None)
    with pytest.raises(RuntimeError, match="closed"):
        pool.join(lambda: None, lambda: None)
    release.set()
    assert closer.join(timeout=30).is_ok()
    assert first.join() == Ok(True)
    assert [h.join() for h in pending] == [Ok(i) for i in range(100)]
    assert pool.closed and "closed" in repr(pool)


def test_close_from_inside_the_pool_is_refused_without_deadlock():
    pool = ThreadPool(1)
    with pytest.raises(RuntimeError, match="wait for itself"):
        pool.install(pool.close)
    pool.close()


def test_pool_scope_waits_for_every_job_and_raises_the_first_error():
    done = []
    with ThreadPool(2) as pool:
        with pytest.raises(ValueError, match="job 3"):
            with pool.scope() as s:
                for i in range(10):
                    def job(i=i):
                        time.sleep(0.001)
                        done.append(i)
                        if i == 3:
                            raise ValueError("job 3")
                    s.spawn(job)
    assert sorted(done) == list(range(10))


def test_threadpool_validates_num_threads():
    with pytest.raises(ValueError):
        ThreadPool(0)
    with pytest.raises(TypeError):
        ThreadPool("2")
    with pytest.raises(TypeError):
        ThreadPool(True)


def test_current_num_threads_is_the_global_pool_size_outside_any_pool():
    assert pyconc.current_num_threads() == pyconc._core._global_pool().num_threads >= 1


def test_global_pool_size_comes_from_PYCONC_NUM_THREADS():
    import subprocess
    import sys

    code = "import pyconc; print(pyconc.current_num_threads(), pyconc.ThreadPool().num_threads)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**__import__("os").environ, "PYCONC_NUM_THREADS": "3"}, timeout=60)
    assert out.stdout.split() == ["3", "3"], out.stderr


def test_idle_pool_threads_use_no_cpu():
    import resource

    with ThreadPool(2) as pool:
        pool.install(lambda: None)
        time.sleep(0.05)
        before = resource.getrusage(resource.RUSAGE_SELF)
        time.sleep(0.3)
        after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    assert cpu < 0.1


def test_executor_submit_map_and_shutdown():
    with pyconc.Executor(2) as ex:
        assert isinstance(ex, cf.Executor)
        f = ex.submit(pow, 2, 8)
        assert f.result(timeout=30) == 256
        assert list(ex.map(lambda x: x * x, range(50))) == [x * x for x in range(50)]
        bad = ex.submit(lambda: 1 / 0)
        with pytest.raises(ZeroDivisionError):
            bad.result(timeout=30)
    with pytest.raises(RuntimeError):
        ex.submit(pow, 2, 2)


def test_executor_shutdown_cancel_futures_cancels_queued_work():
    gate = threading.Event()
    started = threading.Event()
    ex = pyconc.Executor(1)
    first = ex.submit(lambda: (started.set(), gate.wait(10))[1])
    assert started.wait(10)
    queued = [ex.submit(lambda: "ran") for _ in range(20)]
    ex.shutdown(wait=False, cancel_futures=True)
    gate.set()
    assert first.result(timeout=30) is True
    assert all(f.cancelled() for f in queued)


def test_merge_sort_sorts_in_place_and_handles_large_and_edge_inputs():
    import random

    xs = [random.randrange(1000) for _ in range(20000)]
    assert pyconc.merge_sort(list(xs)) == sorted(xs)
    assert pyconc.merge_sort([]) == []
    assert pyconc.merge_sort([1]) == [1]


def test_ctrl_c_interrupts_install_promptly_and_the_job_finishes_alone(interrupt_main):
    from conftest import assert_prompt

    finished = threading.Event()

    def slow():
        time.sleep(1.0)
        finished.set()
        return "late"

    with ThreadPool(1) as pool:
        with interrupt_main(0.1) as irq:
            with pytest.raises(KeyboardInterrupt):
                pool.install(slow)
        assert_prompt(irq)
        assert finished.wait(10)  # the abandoned job ran to its end on the pool


def test_ctrl_c_interrupts_a_join_waiting_for_b(interrupt_main):
    from conftest import assert_prompt

    b_started = threading.Event()

    def b():
        b_started.set()
        time.sleep(1.0)
        return "b"

    def a():
        assert b_started.wait(10)  # b is running on a pool thread: we will wait for it
        return "a"

    with ThreadPool(2) as pool:
        with interrupt_main(0.2) as irq:
            with pytest.raises(KeyboardInterrupt):
                pool.join(a, b)
        assert_prompt(irq)


def test_joins_and_sorts_from_several_threads_at_once_are_all_correct():
    import numpy as np
    from conftest import run_threads

    def body(i):
        a = np.random.default_rng(i).integers(-10**9, 10**9, 300_000)
        want = np.sort(a, kind="stable")
        pyconc.par_sort(a)
        return fib(12), bool(np.array_equal(a, want))

    assert run_threads(body, 4) == [(144, True)] * 4


def test_repr_shows_live_state():
    pool = ThreadPool(2)
    r = repr(pool)
    assert r.startswith("ThreadPool(num_threads=2, queued=") and "open" in r
    pool.close()
    assert "closed" in repr(pool)


def test_scope_inside_a_one_thread_pool_helps_instead_of_deadlocking():
    def body():
        out = []
        with pool.scope() as s:
            for i in range(20):
                s.spawn(out.append, i)
        return sorted(out)

    with ThreadPool(1) as pool:
        assert pool.install(body) == list(range(20))


# ---- issue 11 regressions ---------------------------------------------------------------


def test_close_waits_for_a_job_that_spawns_sub_work_after_close_and_joins_it():
    # close() (leaving the block) while the job sleeps; then it spawns and
    # joins: the other workers must still be there to run the sub-job.
    r = run_py("""
        import time, pyconc
        def sub(x):
            return x * 2
        def task(pool):
            time.sleep(0.2)
            return pool.spawn(sub, 21).join().unwrap()
        with pyconc.ThreadPool(4) as pool:
            h = pool.spawn(task, pool)
        print(h.join(), pool)
    """, timeout=20)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("Ok(42) ThreadPool(num_threads=4, queued=0")


def test_closed_pool_still_runs_sub_work_spawned_by_running_jobs_in_process():
    results = []
    pool = ThreadPool(2)
    gate = threading.Event()

    def task():
        gate.wait(10)
        time.sleep(0.05)  # the idle worker has seen the close and gone to sleep
        results.append(pool.spawn(lambda: "sub").join(timeout=10).unwrap())

    h = pool.spawn(task)
    pool.close(wait=False)
    gate.set()
    pool.close()  # waits for task and its sub-job
    assert h.join(timeout=10) == Ok(None)
    assert results == ["sub"]


@pytest.mark.parametrize("inner", [
    "A.install(lambda: 'inner')",
    "A.install(lambda: (pyconc.par_sort(xs), xs[:3])[1])",
    "A.join(lambda: 'a', lambda: 'b')",
])
def test_pools_nested_in_each_other_run_instead_of_deadlocking(inner):
    r = run_py(f"""
        import pyconc
        xs = list(range(20000, 0, -1))
        A, B = pyconc.ThreadPool(1), pyconc.ThreadPool(1)
        print(A.install(lambda: B.install(lambda: {inner})))
        # joins whose sides hop between the pools
        print(A.install(lambda: B.join(lambda: A.install(lambda: 1), lambda: A.join(lambda: 2, int))))
    """, timeout=30)
    assert r.returncode == 0, r.stderr
    first, second = r.stdout.splitlines()
    assert first == {"A.install(lambda: 'inner')": "inner",
                     "A.join(lambda: 'a', lambda: 'b')": "('a', 'b')"}.get(inner, "[1, 2, 3]")
    assert second == "(1, (2, 0))"


def test_cross_pool_waits_keep_each_worker_serving_its_own_pool():
    A, B = ThreadPool(1), ThreadPool(1)
    try:
        def ping(depth):
            if depth == 0:
                return pyconc.current_num_threads()
            other = B if depth % 2 else A
            return other.install(lambda: ping(depth - 1))
        assert A.install(lambda: ping(6)) == 1
        assert B.install(lambda: A.join(lambda: ping(3), lambda: ping(4))) == (1, 1)
    finally:
        A.close()
        B.close()


# The object whose __del__ asks for pool work lives in a reference cycle with
# the collector off: the interpreter's last collection, once finalization has
# begun and while module globals are still intact, runs the __del__.
_TEARDOWN_PRELUDE = """
    import gc, sys, time, pyconc
    gc.disable()
    pyconc.join(lambda: 1, lambda: 2)  # the global pool exists and has run work
"""


@pytest.mark.parametrize("call, expect", [
    ("pyconc.join(lambda: 1, lambda: time.sleep(0.05) or 2)", "(1, 2)"),
    ("pyconc.join(lambda: 1 / 0, lambda: 2)", None),
    ("pyconc.join(lambda: time.sleep(0.05), lambda: 2)", "(None, 2)"),
    ("pyconc.par_sorted(range(5000, 0, -1))[:3]", "[1, 2, 3]"),
    ("pyconc._core._global_pool().install(lambda: 'installed')", "'installed'"),
    ("pyconc._core._global_pool().join(lambda: 'a', lambda: 'b')", "('a', 'b')"),
])
def test_pool_work_from_del_at_interpreter_teardown_runs_inline(call, expect):
    r = run_py(_TEARDOWN_PRELUDE + f"""
    class D:
        def __del__(self):
            try:
                print(sys.is_finalizing(), repr({call}), flush=True)
            except ZeroDivisionError as e:
                print(sys.is_finalizing(), "raised", repr(e), flush=True)
    d = D()
    d.cycle = d
    del d
    """, timeout=20)
    assert r.returncode == 0, r.stderr
    if expect is None:
        expect = "raised ZeroDivisionError('division by zero')"
    assert r.stdout.strip() == f"True {expect}", r.stderr
    assert "Traceback" not in r.stderr


def test_new_pool_or_spawn_at_interpreter_teardown_raises_runtime_error():
    r = run_py(_TEARDOWN_PRELUDE + """
    pool = pyconc.ThreadPool(1)
    class D:
        def __del__(self):
            print(sys.is_finalizing(), flush=True)
            for what in (lambda: pyconc.ThreadPool(1).install(lambda: 1),
                         lambda: pool.spawn(abs, -1)):
                try:
                    what()
                except RuntimeError as e:
                    print("RuntimeError:", e, flush=True)
            print("close:", pool.close(), flush=True)  # never waits for dying threads
    d = D()
    d.cycle = d
    del d
    """, timeout=20)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [
        "True",
        "RuntimeError: can't start a ThreadPool at interpreter shutdown",
        "RuntimeError: can't spawn pool work at interpreter shutdown",
        "close: None",
    ]


class _Count:
    def __init__(self, n: int) -> None:
        self.n = n

    def __index__(self) -> int:
        return self.n


def test_threadpool_and_executor_accept_any_integer_with_index_as_count():
    import numpy as np

    for n in (np.int64(2), np.int32(3), _Count(2)):
        with ThreadPool(n) as pool:
            assert pool.num_threads == int(n)
        with pyconc.Executor(n) as ex:
            assert ex._max_workers == int(n)
            assert ex.submit(abs, -3).result(timeout=30) == 3
    for bad in (True, 2.0, "2", np.float64(2)):
        with pytest.raises(TypeError):
            ThreadPool(bad)
        with pytest.raises(TypeError):
            pyconc.Executor(bad)
    with pytest.raises(ValueError):
        ThreadPool(np.int64(0))
    with pytest.raises(ValueError):
        pyconc.Executor(np.int64(-1))


@pytest.mark.parametrize("ending", [
    "",                                  # just let the script end
    "ex.shutdown(wait=False)",           # the contract holds after shutdown(wait=False) too
    "del ex",                            # and for an Executor nobody references any more
])
def test_executor_finishes_submitted_work_before_the_interpreter_exits(ending):
    r = run_py(f"""
        import os, time, pyconc
        def job(i):
            time.sleep(0.3)
            os.write(1, b"line %d\\n" % i)
        ex = pyconc.Executor(2)
        for i in range(4):
            ex.submit(job, i)
        {ending}
    """, timeout=30)
    assert r.returncode == 0, r.stderr
    assert sorted(r.stdout.splitlines()) == [f"line {i}" for i in range(4)]
    assert r.stderr == ""


def test_executor_submit_from_an_atexit_hook_raises_runtime_error():
    r = run_py("""
        import atexit, pyconc
        ex = pyconc.Executor(2)
        assert ex.submit(abs, -1).result(timeout=30) == 1
        @atexit.register
        def late():
            try:
                ex.submit(abs, -2)
            except RuntimeError as e:
                print("RuntimeError:", e, flush=True)
    """, timeout=30)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "RuntimeError: cannot schedule new futures after interpreter shutdown"


def _hold_the_gil(seconds: float) -> None:
    """Run Python without a pause for `seconds` (with a long switch interval
    nobody else gets the GIL meanwhile)."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def test_executor_future_is_running_once_a_pool_thread_took_its_job():
    old = sys.getswitchinterval()
    with pyconc.Executor(1) as ex:
        sys.setswitchinterval(100)
        try:
            fut = ex.submit(abs, -5)
            _hold_the_gil(0.2)  # the worker takes the job, then waits for the GIL
            # no Python code of the job ran yet, but a thread has it: running
            assert fut.running() or fut.done()
            assert fut.cancel() is False
            assert not fut.cancelled()
        finally:
            sys.setswitchinterval(old)
        assert fut.result(timeout=30) == 5


def test_executor_cancel_futures_after_a_burst_cancels_only_jobs_no_thread_took():
    old = sys.getswitchinterval()
    ex = pyconc.Executor(4)
    sys.setswitchinterval(100)
    try:
        fs = [ex.submit(time.sleep, 0.1) for _ in range(50)]
        # each worker takes one job and waits for the GIL (without a GIL:
        # runs two or so) -- far fewer than 50 - 20
        _hold_the_gil(0.2)
        ex.shutdown(cancel_futures=True)
    finally:
        sys.setswitchinterval(old)
    cancelled = [f for f in fs if f.cancelled()]
    others = [f for f in fs if not f.cancelled()]
    assert len(cancelled) > 20
    assert 1 <= len(others) <= 50 - 20
    for f in others:
        assert f.done() and f.exception() is None
    for f in cancelled:  # cancelled futures were announced to waiters at once
        assert cf.wait([f], timeout=0).done == {f}


def test_executor_exit_in_a_forked_child_does_not_wait_for_the_parents_futures():
    # The parent's pool threads do not exist in the child: its pending
    # futures never finish there, so the child's exit must not wait for them.
    r = run_py("""
        import os, signal, sys, time, pyconc
        ex = pyconc.Executor(1)
        f = ex.submit(time.sleep, 1.0)
        pid = os.fork()
        if pid == 0:
            signal.alarm(5)  # a hung child ends (-14) instead of outliving the test
            sys.exit(0)
        t = time.monotonic()
        _, status = os.waitpid(pid, 0)
        print(os.waitstatus_to_exitcode(status), time.monotonic() - t < 0.9, f.result() is None)
    """, timeout=30)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["0", "True", "True"]


def test_threadpool_count_whose_index_raises_propagates_that_error():
    class Bad:
        def __index__(self) -> int:
            raise OverflowError("from __index__")

    with pytest.raises(OverflowError, match="from __index__"):
        ThreadPool(Bad())


def test_importing_pyconc_first_in_an_atexit_hook_works_and_refuses_executor_work():
    r = run_py("""
        import atexit, threading  # threading's shutdown runs before atexit hooks
        @atexit.register
        def late():
            import pyconc
            print(pyconc.join(lambda: 1, lambda: 2), flush=True)
            try:
                pyconc.Executor(1).submit(abs, -1)
            except RuntimeError as e:
                print("RuntimeError:", e, flush=True)
    """, timeout=30)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [
        "(1, 2)", "RuntimeError: cannot schedule new futures after interpreter shutdown"]


def test_executor_cancel_between_the_workers_state_check_and_its_transition(monkeypatch):
    # CI on 3.13t: cancel() saw the job taken and marked the future RUNNING
    # between the worker's own RUNNING check and its switch to RUNNING; the
    # worker then raised "Future in unexpected state" and the future never
    # finished (interpreter exit waited for it forever).  The window is
    # widened here: the worker stops inside that transition until cancel()
    # has been called.
    original = cf.Future.set_running_or_notify_cancel
    inside = threading.Event()
    main = threading.get_ident()

    def slow_transition(self: cf.Future) -> bool:  # type: ignore[type-arg]
        if threading.get_ident() != main:
            inside.set()
            time.sleep(0.3)
        return original(self)

    monkeypatch.setattr(cf.Future, "set_running_or_notify_cancel", slow_transition)
    with pyconc.Executor(1) as ex:
        fut = ex.submit(lambda: 42)
        assert inside.wait(10)
        canceller = threading.Thread(target=lambda: fut.cancel())
        canceller.start()
        canceller.join(10)
        assert fut.result(timeout=10) == 42
        assert not fut.cancelled()
