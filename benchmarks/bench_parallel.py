"""Parallel sort benchmark: pyconc.par_sort / par_sorted against numpy.sort
(default and kind="stable"), sorted()/list.sort, and pyconc on one thread.

    python -m benchmarks.bench_parallel [--quick] [--no-write]

Sizes 1M and 10M (--quick: 1M only); int64, int32, float64; random and
presorted input.  Every case copies its input first (numpy.sort returns a
copy, par_sort sorts in place), so both sides pay the same copy.  Also
prints the 1..N thread scaling curve and the peak extra memory of each
method (in a fresh subprocess: peak RSS, VmHWM, over the RSS before the sort).
"""
from __future__ import annotations

import os
import random
import subprocess
import sys
from typing import Dict, List

import numpy as np

import pyconc

from ._harness import RESULTS, Bench, arg_parser, best_time


def make(dtype: str, n: int, pattern: str) -> np.ndarray:
    rng = np.random.default_rng(12345)
    if dtype == "float64":
        a = rng.standard_normal(n)
    else:
        info = np.iinfo(dtype)
        a = rng.integers(info.min, info.max, size=n, dtype=dtype)
    if pattern == "presorted":
        a.sort()
    return a


PEAK_CODE = r"""
import sys, numpy as np, pyconc
def status(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1]) / 1024  # MiB
n = int(sys.argv[1]); method = sys.argv[2]
if method.startswith("list") or method == "sorted()":
    import random
    random.seed(1)
    xs = [random.randrange(-2**62, 2**62) for _ in range(n)]
else:
    a = np.random.default_rng(1).integers(-2**62, 2**62, size=n)
pyconc.join(lambda: 0, lambda: 0)  # the pool is up before we measure
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # reset the peak-RSS mark (VmHWM) to the current RSS
base = status("VmRSS:")
if method == "par_sort": pyconc.par_sort(a)
elif method == "numpy.sort": a.sort()
elif method == "numpy.sort(stable)": a.sort(kind="stable")
elif method == "list.sort": xs.sort()
elif method == "list par_sort": pyconc.par_sort(xs)
elif method == "sorted()": ys = sorted(xs)
elif method == "list par_sorted": ys = pyconc.par_sorted(xs)
print(status("VmHWM:") - base)
"""


def peak_memory(n: int) -> Dict[str, float]:
    out = {}
    for method in ("par_sort", "numpy.sort", "numpy.sort(stable)", "list.sort", "list par_sort",
                   "sorted()", "list par_sorted"):
        r = subprocess.run([sys.executable, "-c", PEAK_CODE, str(n), method], capture_output=True,
                           text=True, timeout=600)
        out[method] = float(r.stdout.strip() or "nan")
    return out


def run(quick: bool = False, write: bool = True) -> Bench:
    sizes = [1_000_000] if quick else [1_000_000, 10_000_000]
    nthreads = pyconc.current_num_threads()
    b = Bench("parallel", f"Parallel sort: pyconc.par_sort on {nthreads} threads vs numpy and sorted()",
              repeat=3 if quick else 5)
    one = pyconc.ThreadPool(1)
    for n in sizes:
        label = f"{n // 1_000_000}M"
        # small cases are cheap: more repeats filter out a shared machine's noise
        b.repeat = (5 if quick else 9) if n < 10_000_000 else 5
        for dtype in ("int64", "int32", "float64"):
            for pattern in ("random", "presorted"):
                a = make(dtype, n, pattern)

                def ours(a=a) -> None:
                    pyconc.par_sort(a.copy())

                def ours_one(a=a) -> None:
                    c = a.copy()
                    one.install(lambda: pyconc.par_sort(c))

                target = ("numpy.sort", 1.0) if n >= 10_000_000 and dtype in ("int64", "float64") \
                    and pattern == "random" else None
                b.case(f"par_sort {dtype} {pattern} {label}", ours,
                       {"numpy.sort": lambda a=a: np.sort(a),
                        "numpy.sort(stable)": lambda a=a: np.sort(a, kind="stable"),
                        "pyconc 1 thread": ours_one},
                       target=target)
        # lists: par_sorted vs sorted() (slow: fewer repeats)
        rnd = random.Random(7)
        xs: List[int] = [rnd.randrange(-2**62, 2**62) for _ in range(n)]
        saved = b.repeat
        b.repeat = 2 if n >= 10_000_000 else 3
        b.case(f"par_sorted int list random {label}", lambda: pyconc.par_sorted(xs),
               {"sorted()": lambda: sorted(xs)},
               target=("sorted()", 0.1) if n >= 10_000_000 else None)
        fs = [rnd.random() for _ in range(n)]
        b.case(f"par_sorted float list random {label}", lambda: pyconc.par_sorted(fs),
               {"sorted()": lambda: sorted(fs)})
        b.repeat = saved
    one.close()

    # scaling curve: 10M (or 1M) int64/float64 random on 1..N threads
    n = sizes[-1]
    scaling: List[str] = []
    for dtype in ("int64", "float64"):
        a = make(dtype, n, "random")
        times = {}
        for k in range(1, max(2, nthreads) + 1):
            with pyconc.ThreadPool(k) as pool:
                def sort_on(a=a, pool=pool) -> None:
                    c = a.copy()
                    pool.install(lambda: pyconc.par_sort(c))
                times[k] = best_time(sort_on, b.repeat)
        line = f"| {dtype} {n // 1_000_000}M random | " + " | ".join(
            f"{times[k] * 1e3:.1f} ms ({times[1] / times[k]:.2f}x)" for k in sorted(times)) + " |"
        print(line, flush=True)
        scaling.append(line)
    ks = range(1, max(2, nthreads) + 1)
    scaling_md = ["", "## Scaling (par_sort, time and speed-up over 1 thread)", "",
                  "| case | " + " | ".join(f"{k} thread{'s' * (k > 1)}" for k in ks) + " |",
                  "|---|" + "---|" * len(ks)] + scaling

    peak = peak_memory(n)
    peak_md = ["", f"## Peak extra memory, {n // 1_000_000}M int64 (VmHWM growth over the RSS before the sort)", "",
               "| method | MiB |", "|---|---|"] + [f"| {k} | {v:.0f} |" for k, v in peak.items()]
    print("\n".join(peak_md), flush=True)

    if write:
        os.makedirs(RESULTS, exist_ok=True)
        path = os.path.join(RESULTS, "parallel.md")
        with open(path, "w") as f:
            f.write(b.markdown() + "\n".join(scaling_md + peak_md) + "\n")
        print(f"wrote {os.path.relpath(path)}")
    return b


def main() -> None:
    args = arg_parser(__doc__.splitlines()[0]).parse_args()
    run(args.quick, not args.no_write)


if __name__ == "__main__":
    main()
