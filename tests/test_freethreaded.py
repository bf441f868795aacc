"""Free-threaded CPython (PEP 703): pyconc never re-enables the GIL, and its
objects hold up when many threads use them at once with no GIL at all.

The first test is about free-threaded builds only (CI runs the suite on
python3.13t with PYTHON_GIL=0); the others run everywhere."""
from __future__ import annotations

import subprocess
import sys
import sysconfig
import textwrap

import pytest

import pyconc
from conftest import run_threads, stress_scale

FREE_THREADED = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))


@pytest.mark.skipif(not FREE_THREADED, reason="needs a free-threaded (3.13t) interpreter")
def test_importing_and_using_pyconc_keeps_the_gil_disabled():
    code = textwrap.dedent("""
        import sys
        assert not sys._is_gil_enabled(), "GIL enabled before import"
        import pyconc
        assert not sys._is_gil_enabled(), "import re-enabled the GIL"
        tx, rx = pyconc.channel()
        hs = [pyconc.spawn(tx.send, i) for i in range(8)]
        [h.join().unwrap() for h in hs]
        m = pyconc.Mutex(0)
        with m.lock() as g:
            g.value += 1
        assert sorted(rx.try_iter()) == list(range(8))
        assert not sys._is_gil_enabled(), "using pyconc re-enabled the GIL"
        print("ok")
    """)
    r = subprocess.run([sys.executable, "-X", "gil=0", "-W", "error", "-c", code],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr


def test_one_sender_and_one_receiver_shared_by_many_threads():
    tx, rx = pyconc.sync_channel(8)
    n, per = 4, stress_scale(20_000, 500)
    got = []

    def producer(i):
        for k in range(per):
            tx.send((i, k))  # the same Sender object from every thread

    def consumer():
        for _ in range(n * per):
            got.append(rx.recv(timeout=30))

    c = pyconc.spawn(consumer)
    run_threads(producer, n)
    c.join(timeout=60).unwrap()
    assert sorted(got) == sorted((i, k) for i in range(n) for k in range(per))
    for i in range(n):
        assert [k for (j, k) in got if j == i] == list(range(per))


def test_one_join_handle_joined_from_many_threads_gives_one_result():
    h = pyconc.spawn(lambda: object())
    results = run_threads(lambda i: h.join(timeout=30), 8)
    assert all(r is results[0] for r in results)


def test_arc_clones_and_drops_from_many_threads_keep_exact_counts():
    a = pyconc.Arc([])

    def churn(i):
        for _ in range(stress_scale(5_000, 200)):
            c = a.clone()
            c.drop()

    run_threads(churn, 4)
    assert pyconc.Arc.strong_count(a) == 1
