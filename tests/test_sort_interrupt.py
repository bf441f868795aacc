"""Ctrl-C during par_sort lands promptly even on a busy machine, and leaves the
data a permutation of the input (issue 14, item 7).

The run happens in a subprocess with a time limit: two busy-looping child
processes compete with the sort's threads for the CPUs, SIGINT is sent to the
main thread at several moments of a 30M-element sort (every phase of the
kernel: the first pass, the scatter, the buckets), and the slowest landing is
checked against a generous bound (API.md promises 100 ms; a loaded 2-core CI
box gets 0.5 s).  Before the kernels checked their cancel flag at a fine
grain, a loaded machine took up to ~0.7 s here.

A machine busier than the two children make it (other jobs on a shared
box) stretches every step alike, the sort's and its cancellation's: there
the bound is the time one whole uninterrupted sort takes under the same
load (a Ctrl-C must never cost more than letting the sort finish)."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

# Under AddressSanitizer (CI's ASan run preloads libasan) the kernels run
# several times slower between two cancel checks: the bound scales with it.
UNDER_ASAN = "libasan" in os.environ.get("LD_PRELOAD", "")
BOUND_S = 2.0 if UNDER_ASAN else 0.5

CODE = textwrap.dedent(r"""
    import os, signal, sys, threading, time
    import numpy as np
    import pyconc

    n, dtype = int(sys.argv[1]), sys.argv[2]
    rng = np.random.default_rng(3)
    a0 = (rng.integers(-2**62, 2**62, n) if dtype == "int64" else rng.standard_normal(n))
    a0 = a0.astype(dtype)
    a = np.empty_like(a0)
    want = np.sort(a0)
    parent, busy = os.getpid(), []
    for _ in range(2):
        pid = os.fork()
        if pid == 0:  # spin until the parent is gone
            while os.getppid() == parent:
                for _ in range(100_000):
                    pass
            os._exit(0)
        busy.append(pid)
    try:
        sorts = []  # one whole sort, under this load
        for _ in range(3):
            a[:] = a0
            t = time.monotonic()
            pyconc.par_sort(a)
            sorts.append(time.monotonic() - t)
        sort_s = sorted(sorts)[1]
        worst = 0.0
        for delay in (0.05, 0.2, 0.35):
            sent = {}

            def fire():
                sent["t"] = time.monotonic()
                signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)

            a[:] = a0
            timer = threading.Timer(delay, fire)
            try:
                # started inside the try: on a loaded machine the main thread
                # can still be in start() (waiting for the timer thread to
                # come up) when the signal lands (seen on 3.13t under load)
                timer.start()
                while True:
                    pyconc.par_sort(a)
                    a[:] = a0
            except KeyboardInterrupt:
                worst = max(worst, time.monotonic() - sent["t"])
            timer.join()
            # nothing lost, nothing duplicated
            assert np.array_equal(np.sort(a), want)
        print(f"sort {sort_s:.4f} worst {worst:.3f}")
    finally:
        for pid in busy:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
""")


def test_ctrl_c_during_big_par_sort_lands_within_bound_on_a_busy_machine():
    dtype = "int64"
    r = subprocess.run([sys.executable, "-c", CODE, "30000000", dtype], capture_output=True,
                       text=True, timeout=240)
    assert r.returncode == 0, r.stderr
    words = r.stdout.split()
    sort_s, worst = float(words[-3]), float(words[-1])
    bound = max(BOUND_S, sort_s)
    assert worst < bound, (f"SIGINT took {worst * 1000:.0f} ms to land (bound "
                           f"{bound * 1000:.0f} ms; one whole sort: {sort_s * 1000:.0f} ms)")
