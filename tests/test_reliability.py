"""Reliability: leaks, fork, exit safety (each exit case in a subprocess)."""
from __future__ import annotations

import gc
import os
import resource
import subprocess
import sys
import textwrap
import tracemalloc

import pytest

import pyconc
from conftest import stress_scale

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_py(code: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=timeout, cwd=ROOT)


def rss_kib() -> int:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * resource.getpagesize() // 1024


def assert_flat(step, rounds: int, batch: int, tol_kib: int = 4096, tol_traced: int = 256 * 1024):
    """Run step() `batch` times per round; after a warm-up round, neither the
    traced Python allocations nor the RSS may keep growing beyond the
    tolerance (a leak of even a few bytes per operation over ~10^5-10^6
    operations exceeds it)."""
    step_n = lambda: [step() for _ in range(batch)]  # noqa: E731
    step_n()
    gc.collect()
    tracemalloc.start()
    try:
        base_traced = tracemalloc.get_traced_memory()[0]
        base_rss = rss_kib()
        for _ in range(rounds):
            step_n()
        gc.collect()
        grown_traced = tracemalloc.get_traced_memory()[0] - base_traced
        grown_rss = rss_kib() - base_rss
    finally:
        tracemalloc.stop()
    assert grown_traced < tol_traced, f"traced memory grew by {grown_traced} bytes"
    # Under AddressSanitizer freed memory sits in a quarantine, so RSS grows
    # without any leak: there only the traced allocations are checked (and
    # ASan itself reports invalid frees).  CI's ASan run sets this variable.
    if not os.environ.get("PYCONC_SANITIZED"):
        assert grown_rss < tol_kib, f"RSS grew by {grown_rss} KiB"


# ---- leaks -------------------------------------------------------------------


def test_spawn_join_in_batches_does_not_leak():
    payload = object()
    before = sys.getrefcount(payload)

    def batch():
        hs = [pyconc.spawn(lambda p: p, payload) for _ in range(20)]
        for h in hs:
            h.join().unwrap()

    assert_flat(batch, rounds=stress_scale(200, 10), batch=5)
    gc.collect()
    assert sys.getrefcount(payload) == before


def test_failing_threads_do_not_leak_their_exceptions():
    def batch():
        for _ in range(20):
            assert pyconc.spawn(lambda: 1 / 0).join().is_err()

    assert_flat(batch, rounds=stress_scale(100, 5), batch=5)


# ---- fork ----------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # fork with threads running
def test_forked_child_can_spawn_and_join_threads():
    # warm the idle-thread cache in the parent, so the child inherits a cache
    # whose threads do not exist there
    for _ in range(5):
        pyconc.spawn(int).join()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        try:
            ok = all(pyconc.spawn(lambda i=i: i).join(timeout=10).unwrap() == i for i in range(20))
            os.write(w, b"ok" if ok else b"bad")
        except BaseException as e:  # pragma: no cover - reported to the parent
            os.write(w, repr(e).encode()[:200])
        finally:
            os._exit(0)
    os.close(w)
    _, status = os.waitpid(pid, 0)
    msg = os.read(r, 256)
    os.close(r)
    assert status == 0 and msg == b"ok", msg


# ---- exit safety -----------------------------------------------------------------


@pytest.mark.parametrize("ending,code", [("pass", 0), ("import sys; sys.exit(3)", 3),
                                         ("raise RuntimeError('x')", 1)])
def test_exit_while_threads_are_blocked_or_running(ending, code):
    r = run_py(f"""
        import threading, pyconc
        ev = threading.Event()
        def spin():
            while True:
                pass
        hs = [pyconc.spawn(ev.wait) for _ in range(3)]
        hs += [pyconc.spawn(pyconc.park), pyconc.spawn(pyconc.sleep, 100), pyconc.spawn(spin)]
        hs += [pyconc.spawn(int) for _ in range(30)]
        {ending}
    """)
    assert r.returncode == code, r.stderr
    assert "Fatal Python error" not in r.stderr and "Segmentation" not in r.stderr
