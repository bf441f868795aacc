"""Free-threaded CPython: real parallel speed-up of pure-Python work.

    python3.13t -X gil=0 -m benchmarks.bench_freethreaded [--quick]
    python -m benchmarks.bench_freethreaded            (the GIL build, for comparison)

CPU-bound pure-Python work run on 2 threads via `spawn`, via `ThreadPool`
and via `join(a, b)`, against the same work run serially (ratio = parallel
time / serial time: 0.5 is a perfect 2x speed-up; the target is <= 0.556,
i.e. >= 1.8x).  And a channel pipeline (producer -> transform -> consumer,
three threads) against the same pipeline over queue.Queue.
"""
from __future__ import annotations

import queue
import sys
import sysconfig
import threading

import pyconc

from ._harness import Bench, arg_parser

STOP = object()


def burn(n: int) -> int:
    s = 0
    for i in range(n):
        s += i * i % 7
    return s


def build_label() -> str:
    ft = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))
    gil = getattr(sys, "_is_gil_enabled", lambda: True)()
    return f"{'free-threaded' if ft else 'GIL'} build, GIL {'enabled' if gil else 'disabled'}"


def run(quick: bool = False, write: bool = True) -> Bench:
    label = build_label()
    ft = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))
    b = Bench("freethreaded" if ft else "freethreaded_gil_build",
              f"Parallel pure-Python work and pipelines ({label})", repeat=3 if quick else 5)
    n = 300_000 if quick else 2_000_000

    def serial() -> None:
        burn(n)
        burn(n)

    def via_spawn() -> None:
        h1, h2 = pyconc.spawn(burn, n), pyconc.spawn(burn, n)
        h1.join().unwrap()
        h2.join().unwrap()

    target = ("serial", 1 / 1.8)
    b.case("2 x burn: spawn vs serial", via_spawn, {"serial": serial}, target=target)
    if hasattr(pyconc, "ThreadPool"):
        pool = pyconc.ThreadPool(2)

        def via_pool() -> None:
            h1, h2 = pool.spawn(burn, n), pool.spawn(burn, n)
            h1.join().unwrap()
            h2.join().unwrap()

        def via_join() -> None:
            pool.join(lambda: burn(n), lambda: burn(n))

        b.case("2 x burn: ThreadPool.spawn vs serial", via_pool, {"serial": serial}, target=target)
        b.case("2 x burn: join(a, b) vs serial", via_join, {"serial": serial}, target=target)

    m = 20_000 if quick else 100_000

    def pyconc_pipeline() -> None:
        tx1, rx1 = pyconc.sync_channel(256)
        tx2, rx2 = pyconc.sync_channel(256)

        def produce() -> None:
            with tx1:
                for i in range(m):
                    tx1.send(i)

        def transform() -> None:
            with tx2:
                for v in rx1:
                    tx2.send(v * 2 + 1)

        hs = [pyconc.spawn(produce), pyconc.spawn(transform)]
        total = sum(rx2)
        for h in hs:
            h.join().unwrap()
        assert total == m * m

    def queue_pipeline() -> None:
        q1: queue.Queue[object] = queue.Queue(256)
        q2: queue.Queue[object] = queue.Queue(256)

        def produce() -> None:
            for i in range(m):
                q1.put(i)
            q1.put(STOP)

        def transform() -> None:
            while (v := q1.get()) is not STOP:
                q2.put(v * 2 + 1)  # type: ignore[operator]
            q2.put(STOP)

        ts = [threading.Thread(target=produce), threading.Thread(target=transform)]
        for t in ts:
            t.start()
        total = 0
        while (v := q2.get()) is not STOP:
            total += v  # type: ignore[operator]
        for t in ts:
            t.join()
        assert total == m * m

    b.case(f"pipeline of 3 threads, {m} msgs (bounded 256)", pyconc_pipeline,
           {"queue.Queue(256)": queue_pipeline}, ops=m)
    b.report(write)
    return b


if __name__ == "__main__":
    a = arg_parser(__doc__ or "").parse_args()
    run(a.quick, not a.no_write)
