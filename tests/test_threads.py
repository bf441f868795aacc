"""std::thread: spawn, JoinHandle, Builder, scope, current/park/sleep."""
from __future__ import annotations

import contextvars
import math
import os
import subprocess
import sys
import textwrap
import threading
import time
import traceback

import pytest

import pyconc
from pyconc import Err, JoinTimeoutError, Ok
from conftest import assert_prompt


# ---- spawn and join ---------------------------------------------------------


def test_spawn_passes_args_and_kwargs_and_join_returns_ok():
    h = pyconc.spawn(lambda a, b=0: a + b, 40, b=2)
    assert h.join() == Ok(42)


def test_thread_runs_on_another_native_thread():
    h = pyconc.spawn(threading.get_ident)
    assert h.join().unwrap() != threading.get_ident()


def test_join_returns_err_with_the_exception_and_its_traceback():
    def fail():
        raise ValueError("bad")

    r = pyconc.spawn(fail).join()
    assert r.is_err()
    exc = r.unwrap_err()
    assert isinstance(exc, ValueError) and str(exc) == "bad"
    frames = [f.name for f in traceback.extract_tb(exc.__traceback__)]
    assert "fail" in frames


@pytest.mark.parametrize("exc", [KeyboardInterrupt(), SystemExit(3), GeneratorExit()])
def test_base_exceptions_are_captured_not_propagated(exc):
    def raise_it():
        raise exc

    r = pyconc.spawn(raise_it).join()
    assert r.unwrap_err() is exc


def test_err_unwrap_reraises_the_threads_exception_with_traceback():
    def inner():
        raise KeyError("x")

    r = pyconc.spawn(inner).join()
    with pytest.raises(KeyError) as info:
        r.unwrap()
    assert any(f.name == "inner" for f in traceback.extract_tb(info.value.__traceback__))


def test_joining_twice_returns_the_same_result_object():
    h = pyconc.spawn(object)
    r1 = h.join()
    r2 = h.join(timeout=0)
    assert r1 is r2


def test_join_timeout_raises_timeouterror_and_thread_keeps_running():
    stop = threading.Event()
    h = pyconc.spawn(stop.wait, 30)
    t0 = time.monotonic()
    with pytest.raises(JoinTimeoutError) as info:
        h.join(timeout=0.05)
    assert isinstance(info.value, TimeoutError)
    assert 0.04 <= time.monotonic() - t0 < 5
    assert not h.is_finished()
    stop.set()
    assert h.join(timeout=10) == Ok(True)
    assert h.is_finished()


def test_join_timeout_zero_polls():
    ev = threading.Event()
    h = pyconc.spawn(ev.wait)
    with pytest.raises(TimeoutError):
        h.join(0)
    ev.set()
    assert h.join().unwrap() is True


@pytest.mark.parametrize("bad", [-1, -0.5, float("nan")])
def test_join_rejects_negative_or_nan_timeout(bad):
    h = pyconc.spawn(int)
    with pytest.raises(ValueError):
        h.join(timeout=bad)
    assert h.join() == Ok(0)


@pytest.mark.parametrize("bad", ["1", [1], True])
def test_join_rejects_non_number_timeout(bad):
    h = pyconc.spawn(int)
    with pytest.raises(TypeError):
        h.join(timeout=bad)
    h.join()


def test_join_accepts_inf_and_huge_timeouts():
    assert pyconc.spawn(int).join(timeout=math.inf) == Ok(0)
    assert pyconc.spawn(int).join(timeout=1e300) == Ok(0)
    assert pyconc.spawn(int).join(timeout=10**30) == Ok(0)


def test_join_rejects_bad_arguments():
    h = pyconc.spawn(int)
    with pytest.raises(TypeError):
        h.join(1, 2)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        h.join(timeot=1)  # type: ignore[call-arg]
    h.join()


def test_a_thread_cannot_join_itself():
    box = []
    ready = threading.Event()

    def body():
        ready.wait(10)
        return box[0].join()

    h = pyconc.spawn(body)
    box.append(h)
    ready.set()
    exc = h.join().unwrap_err()
    assert isinstance(exc, pyconc.DeadlockError)


def test_spawn_rejects_non_callables():
    with pytest.raises(TypeError, match="callable"):
        pyconc.spawn(42)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        pyconc.spawn()  # type: ignore[call-arg]


def test_is_finished_thread_and_repr():
    ev = threading.Event()
    h = pyconc.spawn(ev.wait, 10)
    assert not h.is_finished()
    assert "running" in repr(h)
    assert isinstance(h.thread, pyconc.Thread)
    assert h.thread.name is None
    ev.set()
    h.join()
    assert h.is_finished() and "finished" in repr(h)


def test_join_releases_the_gil_so_other_python_threads_run():
    ev = threading.Event()
    counter = []

    def spin():
        end = time.monotonic() + 0.2
        while time.monotonic() < end:
            counter.append(1)
        ev.set()

    t = threading.Thread(target=spin)
    h = pyconc.spawn(ev.wait, 10)
    t.start()
    h.join(timeout=10)
    t.join()
    assert counter


def test_many_threads_spawned_and_joined():
    handles = [pyconc.spawn(lambda i=i: i * i) for i in range(1000)]
    assert [h.join(timeout=60).unwrap() for h in handles] == [i * i for i in range(1000)]


def test_many_threads_at_once_all_alive_together():
    n = 200
    barrier = threading.Barrier(n)
    handles = [pyconc.spawn(barrier.wait, 30) for _ in range(n)]
    results = sorted(h.join(timeout=60).unwrap() for h in handles)
    assert results == list(range(n))


def test_each_spawn_gets_fresh_thread_locals_and_context():
    local = threading.local()
    var = contextvars.ContextVar("var", default="unset")

    def body(i):
        seen = (getattr(local, "x", None), var.get())
        local.x = i
        var.set(i)
        return seen

    for i in range(50):
        assert pyconc.spawn(body, i).join() == Ok((None, "unset"))


def test_func_and_args_are_released_when_the_thread_ends():
    import weakref

    class Payload:
        pass

    p = Payload()
    ref = weakref.ref(p)
    h = pyconc.spawn(lambda x: None, p)
    del p
    h.join()
    assert ref() is None


# ---- Builder ------------------------------------------------------------------


def test_builder_names_the_thread():
    h = pyconc.Builder(name="worker-1").spawn(lambda: pyconc.current().name)
    assert h.join() == Ok("worker-1")
    assert h.thread.name == "worker-1"


def test_builder_stack_size_and_chaining():
    b = pyconc.Builder().name("big").stack_size(4 * 1024 * 1024)
    assert b.spawn(lambda: 1).join() == Ok(1)
    assert "big" in repr(b)


def test_builder_deep_recursion_needs_the_stack_it_asked_for():
    def depth(n):
        return 0 if n == 0 else 1 + depth(n - 1)

    r = pyconc.Builder(stack_size=64 * 1024 * 1024).spawn(depth, 900).join()
    assert r == Ok(900)


@pytest.mark.parametrize("size", [-1, 0, 1, 1000, 2**41, 2**70])
def test_builder_rejects_bad_stack_sizes_before_starting(size):
    ran = []
    with pytest.raises(ValueError, match="stack_size"):
        pyconc.Builder(stack_size=size).spawn(ran.append, 1)
    assert ran == []


@pytest.mark.parametrize("size", ["1M", 1.5, True])
def test_builder_rejects_non_int_stack_size(size):
    with pytest.raises(TypeError):
        pyconc.Builder(stack_size=size).spawn(int)


def test_builder_rejects_nul_in_name_and_non_str_names():
    with pytest.raises(ValueError, match="NUL"):
        pyconc.Builder(name="a\0b").spawn(int)
    with pytest.raises(TypeError):
        pyconc.Builder(name=5).spawn(int)  # type: ignore[arg-type]


# ---- current / park / sleep ---------------------------------------------------------


def test_main_thread_is_named_main_and_ids_are_unique():
    me = pyconc.current()
    assert me.name == "main"
    assert me == pyconc.current() and hash(me) == hash(pyconc.current())
    other = pyconc.spawn(pyconc.current).join().unwrap()
    assert other != me and other.id != me.id
    assert repr(me) == f"Thread(id={me.id}, name='main')"


def test_foreign_threads_are_unnamed():
    out = []
    t = threading.Thread(target=lambda: out.append(pyconc.current().name))
    t.start()
    t.join()
    assert out == [None]


def test_unpark_wakes_a_parked_thread():
    flag = []

    def body():
        while not flag:
            pyconc.park()
        return "woke"

    h = pyconc.spawn(body)
    time.sleep(0.05)
    flag.append(1)
    h.thread.unpark()
    assert h.join(timeout=10) == Ok("woke")


def test_unpark_before_park_makes_park_return_at_once():
    pyconc.current().unpark()
    t0 = time.monotonic()
    pyconc.park(timeout=5)
    assert time.monotonic() - t0 < 1


def test_park_timeout_returns_after_the_timeout():
    t0 = time.monotonic()
    pyconc.park(timeout=0.05)
    assert time.monotonic() - t0 >= 0.045
    with pytest.raises(ValueError):
        pyconc.park(timeout=-1)


def test_sleep_sleeps_and_validates():
    t0 = time.monotonic()
    pyconc.sleep(0.05)
    assert time.monotonic() - t0 >= 0.045
    pyconc.sleep(0)
    with pytest.raises(ValueError):
        pyconc.sleep(-1)
    with pytest.raises(ValueError):
        pyconc.sleep(float("nan"))
    with pytest.raises(TypeError):
        pyconc.sleep(None)  # type: ignore[arg-type]


def test_yield_now_and_available_parallelism():
    assert pyconc.yield_now() is None
    n = pyconc.available_parallelism()
    assert isinstance(n, int) and n >= 1
    assert n <= (os.cpu_count() or n)


# ---- Ctrl-C -------------------------------------------------------------------------


def test_ctrl_c_interrupts_join_promptly(interrupt_main):
    ev = threading.Event()
    h = pyconc.spawn(ev.wait, 30)
    with interrupt_main(0.2) as irq:
        with pytest.raises(KeyboardInterrupt):
            h.join()
    assert_prompt(irq)
    ev.set()
    assert h.join(timeout=10) == Ok(True)


def test_ctrl_c_interrupts_park_and_sleep(interrupt_main):
    with interrupt_main(0.2) as irq:
        with pytest.raises(KeyboardInterrupt):
            pyconc.park()
    assert_prompt(irq)
    with interrupt_main(0.2) as irq:
        with pytest.raises(KeyboardInterrupt):
            pyconc.sleep(30)
    assert_prompt(irq)


def test_signal_handler_that_does_not_raise_lets_join_continue():
    import signal

    hits = []
    old = signal.signal(signal.SIGUSR1, lambda *a: hits.append(1))
    try:
        h = pyconc.spawn(time.sleep, 0.3)
        threading.Timer(0.1, signal.pthread_kill,
                        (threading.main_thread().ident, signal.SIGUSR1)).start()
        assert h.join(timeout=10) == Ok(None)
        assert hits == [1]
    finally:
        signal.signal(signal.SIGUSR1, old)


# ---- scope ----------------------------------------------------------------------------


def test_scope_waits_for_every_thread():
    done = []
    with pyconc.scope() as s:
        for i in range(10):
            s.spawn(lambda i=i: (time.sleep(0.01), done.append(i)))
    assert sorted(done) == list(range(10))


def test_scoped_threads_can_spawn_more_on_the_scope():
    done = []

    def child(s, depth):
        done.append(depth)
        if depth < 3:
            s.spawn(child, s, depth + 1)
            s.spawn(child, s, depth + 1)

    with pyconc.scope() as s:
        s.spawn(child, s, 0)
    assert len(done) == 1 + 2 + 4 + 8


def test_scope_propagates_the_first_exception_with_the_rest_as_notes():
    def fail(msg):
        raise ValueError(msg)

    with pytest.raises(ValueError) as info:
        with pyconc.scope() as s:
            s.spawn(fail, "first")
            s.spawn(fail, "second")
            s.spawn(lambda: 1)
    assert str(info.value) in ("first", "second")
    notes = getattr(info.value, "__notes__", [])
    assert len(notes) == 1 and "also raised" in notes[0]


def test_scope_ignores_threads_already_joined_by_hand():
    with pyconc.scope() as s:
        h = s.spawn(lambda: 1 / 0)
        assert h.join().is_err()
    # leaving the block did not raise: the outcome was already reported


def test_scope_body_exception_wins_and_threads_are_still_joined():
    done = []
    with pytest.raises(KeyError):
        with pyconc.scope() as s:
            s.spawn(lambda: (time.sleep(0.05), done.append(1)))
            raise KeyError("body")
    assert done == [1]


def test_scope_refuses_spawn_after_the_block():
    with pyconc.scope() as s:
        pass
    with pytest.raises(RuntimeError):
        s.spawn(int)
    assert "Scope(threads=0" in repr(s)


# ---- process exit ---------------------------------------------------------------------


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=60, cwd=os.path.dirname(os.path.dirname(__file__)))


def test_interpreter_exits_without_waiting_for_unjoined_threads():
    r = _run("""
        import threading, time, pyconc
        ev = threading.Event()
        blocked = [pyconc.spawn(ev.wait) for _ in range(4)]          # blocked in C
        def spin():
            while True:
                pass
        busy = [pyconc.spawn(spin) for _ in range(2)]                # running Python
        sleepers = [pyconc.spawn(pyconc.park) for _ in range(2)]
        late = [pyconc.spawn(time.sleep, 0) for _ in range(50)]      # still starting
        print("bye", flush=True)
    """)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "bye"
    assert "Fatal" not in r.stderr


def test_sys_exit_and_unhandled_exception_exit_codes_with_threads_running():
    r = _run("""
        import sys, pyconc
        def spin():
            while True:
                pass
        pyconc.spawn(spin)
        sys.exit(7)
    """)
    assert r.returncode == 7, r.stderr
    r = _run("""
        import pyconc
        pyconc.spawn(pyconc.park)
        raise SystemError("unhandled")
    """)
    assert r.returncode == 1 and "unhandled" in r.stderr
