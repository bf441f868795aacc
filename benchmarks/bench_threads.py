"""spawn + join against threading.Thread start + join and
ThreadPoolExecutor submit + result.

    python -m benchmarks.bench_threads [--quick] [--no-write]
"""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pyconc

from ._harness import Bench, arg_parser


def work() -> int:
    return 1


def run(quick: bool = False, write: bool = True) -> Bench:
    n = 50 if quick else 200
    b = Bench("threads", "Threads: spawn + join", repeat=3 if quick else 7)

    def pyconc_spawn_join() -> None:
        for _ in range(n):
            pyconc.spawn(work).join()

    def threading_start_join() -> None:
        for _ in range(n):
            t = threading.Thread(target=work)
            t.start()
            t.join()

    def pyconc_batch() -> None:
        hs = [pyconc.spawn(work) for _ in range(n)]
        for h in hs:
            h.join()

    def threading_batch() -> None:
        ts = [threading.Thread(target=work) for _ in range(n)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()

    with ThreadPoolExecutor(max_workers=1) as ex:
        def tpe_submit_result() -> None:
            for _ in range(n):
                ex.submit(work).result()

        b.case(f"spawn+join, one at a time (x{n})", pyconc_spawn_join,
               {"threading.Thread": threading_start_join,
                "ThreadPoolExecutor": tpe_submit_result},
               target=("threading.Thread", 1 / 3), ops=n)
    b.case(f"spawn {n}, then join all", pyconc_batch, {"threading.Thread": threading_batch}, ops=n)
    b.report(write)
    return b


if __name__ == "__main__":
    a = arg_parser(__doc__ or "").parse_args()
    run(a.quick, not a.no_write)
