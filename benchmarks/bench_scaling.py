"""Scaling: the parallel kernels on 1, 2, 4, ... threads, up to the machine.

    python -m benchmarks.bench_scaling                   threads 1, 2, 4, ... cpu_count
    python -m benchmarks.bench_scaling --threads 1,2,16  these counts
    python -m benchmarks.bench_scaling --big             add 100M int64 (~2.4 GB)
    python -m benchmarks.bench_scaling --out FILE        also write the table there

The other benchmarks compare on 2 threads (the development machine has 2
cores); this one asks how far each kernel goes on a bigger machine, in one
process on the same data:

* ``par_sort`` of 10M random int64 / float64 / int32 / float32 (and 100M
  int64 with ``--big``) on a ``ThreadPool(t)``, against numpy's sort of the
  same array (its faster kind; numpy's version and SIMD dispatch are printed);
* ``par_argsort`` of 10M int64 against ``numpy.argsort(kind="stable")``;
* ``par_map`` of a GIL-releasing function (sha256 of 64 KiB blocks) against
  ``ThreadPoolExecutor(t).map`` and the serial loop;
* ``ThreadPool(t)`` fork-join of native work: ``pyconc.join`` recursion
  down to numpy sums of chunks.

Each row prints the time, the ratio to the baseline and the speed-up over
one thread.  Best of ``--repeat`` runs; nothing is asserted on time.
"""
from __future__ import annotations

import concurrent.futures as cf
import hashlib
import os
import time
from typing import Callable, Dict, List

import numpy as np

import pyconc

from ._harness import arg_parser, best_time, machine_line
from .bench_parallel import faster_numpy, make, numpy_simd


def _sha(b: bytes) -> bytes:
    return hashlib.sha256(b).digest()


def _sort_time(a: np.ndarray, fn: Callable[[np.ndarray], object], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat + 1):  # the first run warms the pool and the scratch buffer
        c = a.copy()
        t0 = time.perf_counter()
        fn(c)
        best = min(best, time.perf_counter() - t0)
    return best


def _row(name: str, t: int, secs: float, base: float, one: float) -> str:
    return (f"| {name} | {t} | {secs * 1e3:.1f} ms | {base * 1e3:.1f} ms | "
            f"{secs / base:.2f} | {one / secs:.2f}x |")


def run(threads: List[int], repeat: int = 3, big: bool = False) -> List[str]:
    simd = numpy_simd()
    lines = ["# Scaling of pyconc's parallel kernels", "", machine_line(), "", simd, "",
             "| case | threads | pyconc | baseline | ratio | speed-up over 1 thread |",
             "|---|---|---|---|---|---|"]
    print("\n".join(lines), flush=True)

    def emit(s: str) -> None:
        lines.append(s)
        print(s, flush=True)

    pools = {t: pyconc.ThreadPool(t) for t in threads}
    sizes = [("int64", 10_000_000), ("float64", 10_000_000), ("int32", 10_000_000),
             ("float32", 10_000_000)] + ([("int64", 100_000_000)] if big else [])
    for dt, n in sizes:
        a = make(dt, n, "random")
        kinds = {"numpy.sort": _sort_time(a, lambda c: c.sort(), repeat)}
        if n <= 10_000_000:
            kinds["numpy stable"] = _sort_time(a, lambda c: c.sort(kind="stable"), 1)
        base = kinds[faster_numpy(kinds)] if len(kinds) > 1 else kinds["numpy.sort"]
        expect = np.sort(a)
        one = 0.0
        for t in threads:
            c = a.copy()
            pools[t].install(lambda c=c: pyconc.par_sort(c))
            assert np.array_equal(c, expect, equal_nan=True), (dt, n, t)
            secs = _sort_time(a, lambda c, p=pools[t]: p.install(lambda: pyconc.par_sort(c)),
                              1 if n > 10_000_000 else repeat)
            one = one or secs
            emit(_row(f"par_sort {n // 1_000_000}M {dt} vs numpy's faster sort", t, secs, base, one))
        del a, expect

    a = make("int64", 10_000_000, "random")
    base = best_time(lambda: np.argsort(a, kind="stable"), 2)
    expect_idx = np.argsort(a, kind="stable")
    one = 0.0
    for t in threads:
        got = pools[t].install(lambda: pyconc.par_argsort(a))
        assert np.array_equal(np.asarray(got), expect_idx), t
        secs = best_time(lambda p=pools[t]: p.install(lambda: pyconc.par_argsort(a)), repeat)
        one = one or secs
        emit(_row("par_argsort 10M int64 vs numpy.argsort(kind='stable')", t, secs, base, one))
    del a, expect_idx

    blocks = [os.urandom(65536) for _ in range(2048)]
    serial = best_time(lambda: list(map(_sha, blocks)), repeat)
    emit(f"| serial sha256 of 2048 x 64 KiB | 1 | {serial * 1e3:.1f} ms | | | |")
    one = 0.0
    for t in threads:
        assert pyconc.par_map(_sha, blocks, pool=pools[t]) == list(map(_sha, blocks))
        secs = best_time(lambda p=pools[t]: pyconc.par_map(_sha, blocks, pool=p), repeat)
        with cf.ThreadPoolExecutor(t) as tpe:
            base = best_time(lambda: list(tpe.map(_sha, blocks)), repeat)
        one = one or secs
        emit(_row("par_map(sha256, 2048 x 64 KiB) vs ThreadPoolExecutor(t).map", t, secs, base, one))

    x = np.random.default_rng(3).standard_normal(32_000_000)
    expect_sum = float(x.sum())

    def tree(lo: int, hi: int) -> float:
        if hi - lo <= 1_000_000:
            return float(x[lo:hi].sum())
        mid = (lo + hi) // 2
        l, r = pyconc.join(lambda: tree(lo, mid), lambda: tree(mid, hi))
        return l + r

    serial = best_time(lambda: float(x.sum()), repeat)
    one = 0.0
    for t in threads:
        got = pools[t].install(lambda: tree(0, len(x)))
        assert abs(got - expect_sum) < 1e-6 * max(1.0, abs(expect_sum)) + 1e-3, (got, expect_sum)
        secs = best_time(lambda p=pools[t]: p.install(lambda: tree(0, len(x))), repeat)
        one = one or secs
        emit(_row("join tree of numpy sums, 32M float64 vs x.sum()", t, secs, serial, one))
    for p in pools.values():
        p.close()
    return lines


def main() -> None:
    p = arg_parser(__doc__ or "")
    p.add_argument("--threads", default="", help="comma-separated thread counts")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--big", action="store_true", help="add 100M int64")
    p.add_argument("--out", default="", help="write the Markdown table to this file too")
    a = p.parse_args()
    if a.threads:
        threads = [int(s) for s in a.threads.split(",")]
    else:
        cpus = os.cpu_count() or 1
        threads = sorted({1, *(2 ** k for k in range(1, cpus.bit_length()) if 2 ** k <= cpus), cpus})
    lines = run(threads, repeat=1 if a.quick else a.repeat, big=a.big)
    if a.out:
        with open(a.out, "w") as f:
            f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
