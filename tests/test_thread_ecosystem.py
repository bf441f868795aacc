"""pyconc threads are Python threads to every tool that looks at threads
(API.md, "Threads in the Python ecosystem"): names, trace/profile hooks
(coverage.py, debuggers, profilers), the panic hook, contextvars."""
from __future__ import annotations

import concurrent.futures.thread as cf_thread
import contextvars
import faulthandler
import gc
import io
import logging
import os
import subprocess
import sys
import sysconfig
import tempfile
import textwrap
import threading
import time
from typing import Any, Callable, List

import pytest

import pyconc


def _os_name() -> str:
    with open(f"/proc/self/task/{threading.get_native_id()}/comm") as f:
        return f.read().strip()


def _names() -> Any:
    return (pyconc.current().name, threading.current_thread().name, _os_name())


def _run(code: str, *args: str, timeout: float = 60, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args, "-c", textwrap.dedent(code)],
                          capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **env})


# ---- names -----------------------------------------------------------------


def test_builder_name_is_the_threading_logging_and_os_thread_name():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(threadName)s: %(message)s"))
    log = logging.getLogger("pyconc-test-names")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        r = pyconc.Builder(name="worker-7").spawn(lambda: (log.info("hello"), _names())[1])
        assert r.join().unwrap() == ("worker-7", "worker-7", "worker-7")
    finally:
        log.removeHandler(handler)
    assert stream.getvalue() == "worker-7: hello\n"


def test_long_names_are_cut_to_15_bytes_for_the_os_on_a_character_boundary():
    name = "a-very-long-name-é"
    assert pyconc.Builder(name=name).spawn(_names).join().unwrap() == (
        name, name, name.encode()[:15].decode())
    name = "fourteen-bytes" + "é"  # 14 + 2 bytes: "é" does not fit
    assert pyconc.Builder(name=name).spawn(_os_name).join().unwrap() == "fourteen-bytes"


def test_unnamed_threads_are_pyconc_id_in_threading_and_keep_the_process_os_name():
    with open("/proc/self/comm") as f:
        process_name = f.read().strip()
    for _ in range(3):
        # the idle-thread cache reuses OS threads: a name never carries over
        assert pyconc.Builder(name="named").spawn(_os_name).join().unwrap() == "named"
        h = pyconc.spawn(_names)
        assert h.join().unwrap() == (None, f"pyconc-{h.thread.id}", process_name)


def test_a_running_thread_is_in_threading_enumerate_and_a_finished_one_is_not():
    started, release = threading.Event(), threading.Event()

    def body() -> Any:
        me = threading.current_thread()
        started.set()
        release.wait(10)
        return me

    h = pyconc.Builder(name="enumerated").spawn(body)
    assert started.wait(10)
    live = [t for t in threading.enumerate() if t.name == "enumerated"]
    assert len(live) == 1 and live[0].is_alive() and live[0].daemon
    assert live[0].ident is not None and live[0].native_id is not None
    release.set()
    me = h.join(timeout=10).unwrap()
    assert me is live[0]
    assert not me.is_alive()
    assert "enumerated" not in [t.name for t in threading.enumerate()]
    with pytest.raises(RuntimeError, match="JoinHandle"):
        me.join()


def _wait_for_names(prefix: str, done: Callable[[int], bool]) -> List[str]:
    """The sorted names of the live threads starting with prefix, once
    done(how many) holds, or after 10 s."""
    deadline = time.monotonic() + 10
    while True:
        names = sorted(t.name for t in threading.enumerate() if t.name.startswith(prefix))
        if done(len(names)) or time.monotonic() > deadline:
            return names
        time.sleep(0.005)


def test_pool_workers_are_named_pyconc_pool_n_k_and_listed_while_the_pool_lives():
    with pyconc.ThreadPool(2) as pool:
        name = pool.install(lambda: threading.current_thread().name)
        n = name.split("-")[2]
        assert name in (f"pyconc-pool-{n}-0", f"pyconc-pool-{n}-1")
        assert _wait_for_names(f"pyconc-pool-{n}-", lambda k: k >= 2) == [
            f"pyconc-pool-{n}-0", f"pyconc-pool-{n}-1"]
        pyname, osname = pool.install(lambda: (threading.current_thread().name, _os_name()))
        assert osname == pyname[:15]  # the OS keeps 15 bytes
        assert pool.spawn(pyconc.current).join().unwrap().name is None  # not a spawned thread
    assert _wait_for_names(f"pyconc-pool-{n}-", lambda k: k == 0) == []


def test_thread_pool_thread_name_prefix_names_workers_as_threadpoolexecutor_does():
    with pyconc.ThreadPool(2, thread_name_prefix="io") as pool:
        assert _wait_for_names("io_", lambda k: k >= 2) == ["io_0", "io_1"]
        assert pool.install(_os_name) in ("io_0", "io_1")
    with pytest.raises(TypeError):
        pyconc.ThreadPool(1, thread_name_prefix=3)  # type: ignore[call-overload]
    with pytest.raises(ValueError):
        pyconc.ThreadPool(1, thread_name_prefix="a\0b")


def test_executor_thread_name_prefix_and_initializer_run_once_per_worker_before_its_jobs():
    inits: List[str] = []
    with pyconc.Executor(2, thread_name_prefix="exec", initializer=inits.append,
                         initargs=("x",)) as ex:
        names = set(ex.map(lambda _: (time.sleep(0.01), threading.current_thread().name)[1],
                           range(20)))
        assert names <= {"exec_0", "exec_1"}
    assert inits in (["x"], ["x", "x"]) and len(inits) == len(names)


def test_executor_failing_initializer_breaks_it_with_brokenthreadpool(caplog):
    def bad_init() -> None:
        raise ValueError("no database")

    ex = pyconc.Executor(1, initializer=bad_init)
    try:
        with pytest.raises(cf_thread.BrokenThreadPool):
            ex.submit(lambda: 1).result(timeout=10)
        with pytest.raises(cf_thread.BrokenThreadPool):
            ex.submit(lambda: 1)
    finally:
        ex.shutdown()
    assert "Exception in initializer" in caplog.text and "no database" in caplog.text


def test_faulthandler_dump_shows_a_pyconc_thread_and_what_it_runs():
    started, release = threading.Event(), threading.Event()

    def parked_in_a_recognisable_function() -> None:
        started.set()
        release.wait(10)

    h = pyconc.spawn(parked_in_a_recognisable_function)
    assert started.wait(10)
    with tempfile.TemporaryFile("w+") as f:
        faulthandler.dump_traceback(f, all_threads=True)
        f.seek(0)
        dump = f.read()
    release.set()
    h.join(timeout=10).unwrap()
    assert "parked_in_a_recognisable_function" in dump


# ---- trace and profile hooks -----------------------------------------------


def _in_spawn() -> str:
    return "spawn"


def _in_builder() -> str:
    return "builder"


def _in_scope() -> str:
    return "scope"


def _in_pool_job() -> str:
    return "pool"


def _in_executor_job() -> str:
    return "executor"


def _in_join_b() -> str:
    return "join"


def _run_everywhere() -> None:
    assert pyconc.spawn(_in_spawn).join().unwrap() == "spawn"
    assert pyconc.Builder(name="b").spawn(_in_builder).join().unwrap() == "builder"
    with pyconc.scope() as s:
        s.spawn(_in_scope)
    with pyconc.ThreadPool(2) as pool:
        assert pool.spawn(_in_pool_job).join().unwrap() == "pool"
        # a sleeps, so b is stolen by the other worker
        assert pool.install(lambda: pyconc.join(lambda: time.sleep(0.05), _in_join_b)) == (
            None, "join")
    with pyconc.Executor(1) as ex:
        assert ex.submit(_in_executor_job).result(timeout=10) == "executor"


_EVERYWHERE = {"_in_spawn", "_in_builder", "_in_scope", "_in_pool_job", "_in_executor_job",
               "_in_join_b"}


@pytest.mark.parametrize("install", ["settrace", "setprofile"])
def test_threading_settrace_and_setprofile_apply_to_every_kind_of_pyconc_thread(install):
    seen: List[str] = []
    main = threading.get_ident()

    def hook(frame: Any, event: str, arg: Any) -> None:
        if event == "call" and threading.get_ident() != main:
            seen.append(frame.f_code.co_name)

    getattr(threading, install)(hook)
    try:
        _run_everywhere()
    finally:
        getattr(threading, install)(None)
    assert _EVERYWHERE <= set(seen)


def _in_a_threading_thread() -> int:
    return 1


def test_cprofile_sees_calls_in_pyconc_threads_exactly_when_it_sees_a_threading_threads():
    # cProfile profiles the thread that enabled it (3.11) or, through
    # sys.monitoring, every thread (3.12+): pyconc threads are no exception
    import cProfile
    import pstats

    profiler = cProfile.Profile()
    profiler.enable()
    try:
        t = threading.Thread(target=_in_a_threading_thread)
        t.start()
        t.join()
        pyconc.spawn(_in_spawn).join().unwrap()
    finally:
        profiler.disable()
    names = {func[2] for func in pstats.Stats(profiler).stats}  # type: ignore[attr-defined]
    assert ("_in_spawn" in names) == ("_in_a_threading_thread" in names)


def test_settrace_all_threads_applies_to_threads_started_later():
    # threading.settrace_all_threads is 3.12+; on 3.11 threading.settrace
    # is what sets the hook for threads started later
    install = getattr(threading, "settrace_all_threads", threading.settrace)
    seen: List[str] = []

    def hook(frame: Any, event: str, arg: Any) -> None:
        if event == "call":
            seen.append(frame.f_code.co_name)

    install(hook)
    try:
        pyconc.spawn(_in_spawn).join().unwrap()
    finally:
        install(None)
        sys.settrace(None)
    assert "_in_spawn" in seen


def test_trace_and_profile_functions_set_by_a_job_never_leak_into_later_jobs():
    # issue 11 #8: spawn(lambda: sys.settrace(tracer)) made later, unrelated
    # spawns run under that tracer (one pdb.set_trace() leaked everywhere)
    calls: List[str] = []

    def tracer(frame: Any, event: str, arg: Any) -> None:
        calls.append(frame.f_code.co_name)

    def install() -> None:
        sys.settrace(tracer)
        sys.setprofile(tracer)

    def hooks() -> Any:
        return sys.gettrace(), sys.getprofile()

    with pyconc.ThreadPool(1) as pool:
        for _ in range(3):
            pyconc.spawn(install).join().unwrap()
            assert pyconc.spawn(hooks).join().unwrap() == (None, None)
            pool.install(install)
            assert pool.install(hooks) == (None, None)
            assert pool.spawn(hooks).join().unwrap() == (None, None)
        # the pool's worker ran on a cached thread; back in the cache, clean
    assert pyconc.spawn(hooks).join().unwrap() == (None, None)
    assert "hooks" not in calls


def test_a_nested_pool_job_and_a_job_run_by_its_submitter_keep_that_threads_hooks():
    seen: List[str] = []

    def tracer(frame: Any, event: str, arg: Any) -> Any:
        if event == "call":
            seen.append(frame.f_code.co_name)
        return None

    def _inline_b() -> str:
        return "b"

    sys.settrace(tracer)
    try:
        with pyconc.ThreadPool(1) as pool:
            # the only worker is busy: join's b is taken back and run here
            busy = threading.Event()
            blocker = pool.spawn(busy.wait, 10)
            assert pool.join(lambda: "a", _inline_b) == ("a", "b")
            assert sys.gettrace() is tracer
            busy.set()
            blocker.join(timeout=10).unwrap()
    finally:
        sys.settrace(None)
    assert "_inline_b" in seen


_COVERAGE_PROGRAM = '''\
import time
import pyconc


def in_spawn(x):
    y = x + 1
    return y


def in_builder(x):
    y = x * 2
    return y


def in_scope(x):
    y = x - 1
    return y


def in_pool(x):
    y = x + 10
    return y


def in_executor(x):
    y = x + 20
    return y


def in_join_a():
    time.sleep(0.05)
    return "a"


def in_join_b():
    b = "b"
    return b


assert pyconc.spawn(in_spawn, 1).join().unwrap() == 2
assert pyconc.Builder(name="b").spawn(in_builder, 2).join().unwrap() == 4
with pyconc.scope() as s:
    h = s.spawn(in_scope, 3)
assert h.join().unwrap() == 2
with pyconc.ThreadPool(2) as pool:
    assert pool.spawn(in_pool, 1).join().unwrap() == 11
    assert pool.install(lambda: pyconc.join(in_join_a, in_join_b)) == ("a", "b")
with pyconc.Executor(1) as ex:
    assert ex.submit(in_executor, 1).result() == 21
'''


def _settrace_core() -> str:
    """coverage.py's settrace-based core here: its C tracer, or -- where
    coverage ships none (free-threaded 3.13t) -- its Python tracer, which
    hooks the threads the same way (threading.settrace)."""
    try:
        from coverage.tracer import CTracer  # noqa: F401
    except ImportError:
        return "pytrace"
    return "ctrace"


@pytest.mark.parametrize("core", [_settrace_core()]
                         + (["sysmon"] if sys.version_info >= (3, 12) else []))
def test_coverage_reports_every_line_run_in_threads_pool_jobs_executor_jobs_and_join(core,
                                                                                       tmp_path):
    import coverage  # noqa: F401  (the test extra installs it)

    prog = tmp_path / "prog.py"
    prog.write_text(_COVERAGE_PROGRAM)
    env = {"COVERAGE_CORE": core, "COVERAGE_FILE": str(tmp_path / ".coverage")}
    run = subprocess.run([sys.executable, "-m", "coverage", "run", "--include", str(prog),
                          str(prog)], capture_output=True, text=True, timeout=60,
                         cwd=tmp_path, env={**os.environ, **env})
    assert run.returncode == 0, run.stderr
    report = subprocess.run([sys.executable, "-m", "coverage", "report", "-m"],
                            capture_output=True, text=True, timeout=60, cwd=tmp_path,
                            env={**os.environ, **env})
    assert report.returncode == 0, report.stdout + report.stderr
    total = [line for line in report.stdout.splitlines() if line.startswith("TOTAL")]
    assert total and total[0].split()[-1] == "100%", report.stdout


# ---- the panic hook ---------------------------------------------------------


def test_an_escaping_exception_is_reported_once_on_the_thread_by_name_and_join_returns_err(
        panic_reports):
    def fail() -> None:
        raise KeyError("lost?")

    h = pyconc.Builder(name="failing").spawn(fail)
    r = h.join(timeout=10)
    assert isinstance(r.err(), KeyError)
    assert len(panic_reports) == 1
    report = panic_reports[0]
    assert (report.exc_type, report.exc_value) == (KeyError, r.err())
    assert report.exc_traceback is r.err().__traceback__
    assert report.thread.name == "failing"
    assert pyconc.spawn(lambda: 1).join().unwrap() == 1
    assert len(panic_reports) == 1  # Ok outcomes are not reported


def test_the_report_happens_before_join_returns(panic_reports):
    for _ in range(20):
        h = pyconc.spawn(lambda: 1 / 0)
        h.join(timeout=10)
        assert len(panic_reports) == 1
        panic_reports.clear()


def test_pool_spawn_jobs_and_scoped_threads_are_reported_too(panic_reports):
    with pyconc.ThreadPool(1, thread_name_prefix="rep") as pool:
        assert pool.spawn(lambda: 1 / 0).join(timeout=10).is_err()
    with pytest.raises(ValueError, match="scoped"):
        with pyconc.scope() as s:
            s.spawn(lambda: int("scoped"))
    assert [(a.thread.name, a.exc_type) for a in panic_reports] == [
        ("rep_0", ZeroDivisionError), (panic_reports[1].thread.name, ValueError)]
    assert panic_reports[1].thread.name.startswith("pyconc-")


def test_executor_jobs_and_join_hand_their_exceptions_to_the_caller_not_the_hook(
        panic_reports):
    with pyconc.Executor(1) as ex:
        with pytest.raises(ZeroDivisionError):
            ex.submit(lambda: 1 / 0).result(timeout=10)
    with pytest.raises(ZeroDivisionError):
        pyconc.join(lambda: 1, lambda: 1 / 0)
    assert panic_reports == []


def test_take_panic_hook_returns_the_hook_and_restores_the_default():
    def mine(args: Any) -> None:
        pass

    pyconc.set_panic_hook(mine)
    assert pyconc.take_panic_hook() is mine
    default = pyconc.take_panic_hook()
    assert default is pyconc.take_panic_hook()  # the default stays
    with pytest.raises(TypeError):
        pyconc.set_panic_hook("print")  # type: ignore[arg-type]


def test_default_panic_hook_prints_the_name_and_traceback_even_if_nobody_joins():
    # issue 15: an exception escaping a thread whose handle is still alive at
    # exit was lost without a word
    r = _run('''
        import time, pyconc
        def fail_in_worker():
            raise LookupError("nobody joins me")
        h = pyconc.Builder(name="reporter").spawn(fail_in_worker)
        time.sleep(0.5)
    ''')
    assert r.returncode == 0, r.stderr
    assert "Exception in thread reporter:" in r.stderr
    assert "fail_in_worker" in r.stderr and "LookupError: nobody joins me" in r.stderr
    assert r.stderr.count("LookupError: nobody joins me") == 1


def test_a_dropped_handle_is_reported_once_not_also_by_the_gc_warning():
    r = _run('''
        import gc, pyconc
        h = pyconc.spawn(lambda: 1 / 0)
        h.join()
        del h
        gc.collect()
    ''', "-W", "always")
    assert r.returncode == 0, r.stderr
    assert r.stderr.count("ZeroDivisionError: division by zero") == 1, r.stderr
    assert "never inspected" not in r.stderr


def test_pytest_flags_an_exception_escaping_a_pyconc_thread_as_for_threading(tmp_path):
    # The default hook goes through threading.excepthook, which pytest
    # watches: an unexpected thread failure fails the test.
    (tmp_path / "test_inner.py").write_text(textwrap.dedent('''
        import pyconc
        def test_lets_a_thread_fail():
            pyconc.Builder(name="inner").spawn(lambda: 1 / 0).join()
    '''))
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                        "-W", "error::pytest.PytestUnhandledThreadExceptionWarning",
                        str(tmp_path / "test_inner.py")],
                       capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "Exception in thread inner" in r.stdout


# ---- contextvars --------------------------------------------------------------

_var: contextvars.ContextVar[str] = contextvars.ContextVar("_var", default="unset")


def test_a_spawned_thread_runs_in_a_fresh_empty_context():
    token = _var.set("spawner")
    try:
        assert pyconc.spawn(_var.get).join().unwrap() == "unset"
        assert pyconc.spawn(lambda: len(contextvars.copy_context())).join().unwrap() == 0
    finally:
        _var.reset(token)


def test_builder_context_runs_the_thread_in_that_context():
    token = _var.set("spawner")
    try:
        ctx = contextvars.copy_context()
    finally:
        _var.reset(token)

    def body() -> str:
        seen = _var.get()
        _var.set("thread")
        return seen

    assert pyconc.Builder(context=ctx).spawn(body).join().unwrap() == "spawner"
    assert ctx[_var] == "thread"  # the thread's changes stay in that context
    assert _var.get() == "unset"
    assert pyconc.Builder(name="n").stack_size(1 << 20).spawn(_var.get).join().unwrap() == "unset"
    # spawn() passes every keyword to f, so `context` reaches f there
    assert pyconc.spawn(lambda context: context, context=1).join().unwrap() == 1
    assert pyconc.spawn(ctx.run, _var.get).join().unwrap() == "thread"


def test_builder_context_in_use_by_another_thread_gives_err_runtimeerror(panic_reports):
    ctx = contextvars.copy_context()
    r = ctx.run(lambda: pyconc.Builder(context=ctx).spawn(lambda: "ran").join(timeout=10))
    assert isinstance(r.err(), RuntimeError)
    assert len(panic_reports) == 1
    with pytest.raises(TypeError, match="Context"):
        pyconc.Builder(context={}).spawn(lambda: None)  # type: ignore[arg-type]


# ---- issue 11 #12, #13 ------------------------------------------------------


def test_spawn_and_join_from_del_at_interpreter_shutdown_raise_instead_of_importerror_or_hang():
    r = _run('''
        import time, pyconc
        class Cleanup:
            def __init__(self, h):
                self.h = h
            # module globals and builtins may already be gone here (3.13t)
            def __del__(self, pyconc=pyconc, print=print, type=type, BaseException=BaseException):
                for what, f in (("spawn", lambda: pyconc.spawn(lambda: 42).join()),
                                ("join", lambda: self.h.join()),
                                ("done", lambda: self.done.join())):
                    try:
                        print(what, f(), flush=True)
                    except BaseException as e:
                        print(what, type(e).__name__, e, flush=True)
        c = Cleanup(pyconc.spawn(time.sleep, 5))
        c.done = pyconc.spawn(lambda: "finished early")
        c.done.join()
    ''', timeout=20)
    assert r.returncode == 0, r.stderr
    assert "ImportError" not in r.stdout + r.stderr
    lines = r.stdout.splitlines()
    if sysconfig.get_config_var("Py_GIL_DISABLED"):
        # 3.13t runs this __del__ while it tears the modules down, before
        # Py_IsFinalizing(): the spawn fails on threading's cleared globals
        # (TypeError) instead of pyconc's own check -- still an error, never
        # a hang or an ImportError (a known gap on free-threaded builds).
        assert lines[0].startswith("spawn ") and "Error" in lines[0], lines
    else:
        assert lines[0] == "spawn RuntimeError can't start a new thread at interpreter shutdown"
    assert lines[1].startswith("join DeadlockError the interpreter is shutting down")
    assert lines[2] == "done Ok('finished early')"


def test_threads_are_not_ordered_like_rusts_threadid():
    a, b = pyconc.current(), pyconc.spawn(pyconc.current).join().unwrap()
    assert a != b and a == pyconc.current()
    for op in ("__lt__", "__le__", "__gt__", "__ge__"):
        assert getattr(a, op)(b) is NotImplemented
    with pytest.raises(TypeError):
        a < b  # noqa: B015


def test_current_on_a_foreign_thread_propagates_an_error_from_threading(monkeypatch):
    # issue 11 #13: a failed PyLong_AsUnsignedLong was swallowed (and
    # Py_None's reference count decremented); the error now propagates
    class Broken:
        ident = "not an int"

    monkeypatch.setattr(threading, "main_thread", lambda: Broken())
    out: List[Any] = []

    def foreign() -> None:
        try:
            out.append(pyconc.current())
        except BaseException as e:  # noqa: BLE001 - the test inspects it
            out.append(e)

    t = threading.Thread(target=foreign)
    t.start()
    t.join()
    assert isinstance(out[0], TypeError)
    gc.collect()
