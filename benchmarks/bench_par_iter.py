"""Parallel iterators: par_map / par_iter against ThreadPoolExecutor.map,
joblib.Parallel (threads) and the serial loop; and the pool's per-job cost.

    python -m benchmarks.bench_par_iter [--quick] [--no-write]
    python3.13t -X gil=0 -m benchmarks.bench_par_iter     (free-threaded cases)

Ratio = pyconc time / baseline time (below 1: pyconc faster).  Targets
(issue 16), on 2 threads:
* trivial f over range(1_000_000): <= 0.1x ThreadPoolExecutor(2).map and
  joblib.Parallel(n_jobs=2, prefer="threads"), <= 2x list(map(f, ...));
* GIL-releasing f (sha256 / zlib.compress of 64 KiB blocks): <= 1/1.8 of the
  serial time, below ThreadPoolExecutor(2).map;
* free-threaded, GIL off: par_iter(range(n)).map(f).sum() and par_map of a
  pure-Python f <= 1/1.8 of the serial time;
* ThreadPool.spawn(f).join() <= 0.2x ThreadPoolExecutor.submit(f).result().
joblib is in the ``bench`` extra; without it its rows are left out.
"""
from __future__ import annotations

import concurrent.futures as cf
import hashlib
import os
import random
import sys
import sysconfig
import zlib
from typing import Any, Callable, Dict, List

import pyconc

from ._harness import Bench, arg_parser
from .bench_freethreaded import build_label


def trivial(x: int) -> int:
    return x + 1


def pure(x: int) -> int:
    s = 0
    for i in range(40):
        s += (x ^ i) % 7
    return s


def sha(b: bytes) -> bytes:
    return hashlib.sha256(b).digest()


def compress(b: bytes) -> int:
    return len(zlib.compress(b, 6))


def run(quick: bool = False, write: bool = True) -> Bench:
    threads = 2
    # the free-threaded run writes its own table (par_iter_freethreaded.md)
    ft = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))
    b = Bench("par_iter_freethreaded" if ft else "par_iter",
              f"Parallel iterators on {threads} threads ({build_label()})",
              repeat=3 if quick else 5)
    pool = pyconc.ThreadPool(threads)
    tpe = cf.ThreadPoolExecutor(threads)
    try:
        import joblib  # type: ignore[import-untyped,import-not-found,unused-ignore]

        jl: Any = joblib.Parallel(n_jobs=threads, prefer="threads")
        delayed = joblib.delayed
    except ImportError:
        jl = None
        print("(joblib not installed: its rows are left out; pip install 'pyconc[bench]')")

    # ---- trivial f: pure overhead -------------------------------------------
    n = 100_000 if quick else 1_000_000
    xs = range(n)
    expect = list(map(trivial, xs))

    def par() -> List[int]:
        return pyconc.par_map(trivial, xs, pool=pool)

    assert par() == expect
    b.case(f"par_map(trivial, range({n:,}))", par, {"list(map)": lambda: list(map(trivial, xs))},
           target=("list(map)", 2.0))
    slow: Dict[str, Callable[[], object]] = {
        f"ThreadPoolExecutor({threads}).map": lambda: list(tpe.map(trivial, xs))}
    if jl is not None:
        slow[f"joblib.Parallel({threads}, threads)"] = lambda: jl(delayed(trivial)(x) for x in xs)
    repeat, b.repeat = b.repeat, 1  # the baselines take seconds each
    b.case(f"par_map(trivial, range({n:,})) vs executors", par, slow,
           target=(f"ThreadPoolExecutor({threads}).map", 0.1))
    b.repeat = repeat
    if jl is not None:
        c = b.cases[-1]
        name = f"joblib.Parallel({threads}, threads)"
        print(f"  joblib target <= 0.1: ratio {c.ratio(name):.3f} "
              f"({'met' if c.ratio(name) <= 0.1 else 'NOT met'})")

    # ---- GIL-releasing f -----------------------------------------------------
    rnd = random.Random(1)
    nblocks = 64 if quick else 256
    blocks = [rnd.randbytes(65536) for _ in range(nblocks)]
    text = [(b"pyconc par_iter %d " % i) * 3000 + rnd.randbytes(8192) for i in range(nblocks // 2)]
    for label, f, data in (("sha256", sha, blocks), ("zlib.compress", compress, text)):
        assert pyconc.par_map(f, data, pool=pool) == list(map(f, data))
        b.case(f"par_map({label}, {len(data)} x 64 KiB)",
               lambda f=f, data=data: pyconc.par_map(f, data, pool=pool),  # type: ignore[misc]
               {"serial": lambda f=f, data=data: list(map(f, data)),  # type: ignore[misc]
                f"ThreadPoolExecutor({threads}).map":
                    lambda f=f, data=data: list(tpe.map(f, data))},  # type: ignore[misc]
               target=("serial", 1 / 1.8))

    # ---- pure Python (a speed-up only where the GIL is off) ------------------
    m = 20_000 if quick else 200_000
    ys = range(m)
    assert pyconc.par_iter(ys, pool=pool).map(pure).sum() == sum(map(pure, ys))
    gil_off = not getattr(sys, "_is_gil_enabled", lambda: True)()
    tgt = ("serial", 1 / 1.8) if gil_off else None
    b.case(f"par_iter(range({m:,})).map(pure).sum()",
           lambda: pyconc.par_iter(ys, pool=pool).map(pure).sum(),
           {"serial": lambda: sum(map(pure, ys))}, target=tgt)
    b.case(f"par_map(pure, range({m:,}))", lambda: pyconc.par_map(pure, ys, pool=pool),
           {"serial": lambda: list(map(pure, ys))}, target=tgt)

    # ---- the pool's cost per job ---------------------------------------------
    k = 2000 if quick else 20000

    def spawn_join() -> None:
        for _ in range(k):
            pool.spawn(int).join()

    def submit_result() -> None:
        for _ in range(k):
            tpe.submit(int).result()

    b.case("ThreadPool.spawn(f).join()", spawn_join,
           {"ThreadPoolExecutor.submit(f).result()": submit_result},
           target=("ThreadPoolExecutor.submit(f).result()", 0.2), ops=k)

    tpe.shutdown()
    pool.close()
    b.report(write)
    return b


if __name__ == "__main__":
    a = arg_parser(__doc__ or "").parse_args()
    os.environ.setdefault("PYCONC_NUM_THREADS", "2")
    run(quick=a.quick, write=not a.no_write)
