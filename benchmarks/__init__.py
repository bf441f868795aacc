"""pyconc's benchmarks: each compares pyconc with its standard-library (or
numpy) counterpart in the same process and prints ratios."""
import json
import os
import subprocess
import sys

# OpenBLAS's worker threads (numpy's BLAS) spin between calls once started
# and take a core from the 2-thread runs of a 2-core machine; no benchmark
# here uses BLAS (numpy.sort is single-threaded).  Set before any module
# of the package imports numpy; an explicit setting wins.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

# numpy's sort on its fastest dispatch.  numpy picks its AVX-512 kernels
# wherever the CPU has AVX-512, but on AMD Zen 4 x86-simd-sort's AVX-512
# partition (a compress-store to memory on every vector, microcoded there)
# sorts ~5x slower than its AVX2 kernels (numpy/x86-simd-sort#6): 10M int64
# took 707 ms with the default dispatch and 131 ms with AVX-512 turned off,
# on one 2-core Zen 4 here.  A baseline slower than what a user can have is
# a wrong result, so where the CPU has AVX-512 two short child processes
# time numpy's sort with its default dispatch and with the AVX-512 targets
# turned off (NPY_DISABLE_CPU_FEATURES, which a user can set too), and the
# faster one is what numpy, imported after this, runs.  An explicit
# NPY_DISABLE_CPU_FEATURES wins; PYCONC_BENCH_NUMPY_DISPATCH=default skips
# the choice.  NUMPY_DISPATCH says what was measured and chosen.
NUMPY_DISPATCH = ""

_PROBE = r"""
import json, time, numpy as np
m = np._core._multiarray_umath
rng = np.random.default_rng(5)
t = {}
for dt in ("int64", "float64", "int32", "float32"):
    a = rng.standard_normal(1_000_000).astype(dt) if dt[0] == "f" else \
        rng.integers(np.iinfo(dt).min, np.iinfo(dt).max, 1_000_000, dtype=dt)
    best = 1e9
    for _ in range(5):
        b = a.copy(); t0 = time.perf_counter(); b.sort(); best = min(best, time.perf_counter() - t0)
    t[dt] = best
wide = [f for f in m.__cpu_dispatch__ if (f.startswith("AVX512") or f == "X86_V4")
        and m.__cpu_features__.get(f)]
print(json.dumps({"t": t, "wide": wide}))
"""


def _probe(env: dict) -> dict:
    out = subprocess.run([sys.executable, "-c", _PROBE], env=env, capture_output=True,
                         text=True, timeout=120, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def _choose_numpy_dispatch() -> str:
    if "numpy" in sys.modules:
        return "numpy was imported before the benchmarks: its dispatch is as it chose"
    if os.environ.get("NPY_DISABLE_CPU_FEATURES") is not None:
        return f"NPY_DISABLE_CPU_FEATURES={os.environ['NPY_DISABLE_CPU_FEATURES']!r} (set by the caller)"
    if os.environ.get("PYCONC_BENCH_NUMPY_DISPATCH") == "default":
        return "numpy's default dispatch (PYCONC_BENCH_NUMPY_DISPATCH=default)"
    try:
        with open("/proc/cpuinfo") as f:
            if " avx512f" not in f.read():
                return "numpy's default dispatch (no AVX-512 on this CPU: nothing to choose)"
    except OSError:
        return "numpy's default dispatch (no /proc/cpuinfo)"
    try:
        dflt = _probe(dict(os.environ))
        if not dflt["wide"]:
            return "numpy's default dispatch (numpy has no AVX-512 targets)"
        off = " ".join(dflt["wide"])
        narrow = _probe(dict(os.environ, NPY_DISABLE_CPU_FEATURES=off))
    except (OSError, ValueError, KeyError, subprocess.SubprocessError) as e:
        return f"numpy's default dispatch (the dispatch probe failed: {e!r})"
    a, b = sum(dflt["t"].values()), sum(narrow["t"].values())
    per = ", ".join(f"{k} {dflt['t'][k] * 1e3:.1f} vs {narrow['t'][k] * 1e3:.1f} ms"
                    for k in dflt["t"])
    probe = f"1M-element sorts with numpy's AVX-512 targets vs without them: {per}"
    if b < a:
        os.environ["NPY_DISABLE_CPU_FEATURES"] = off
        return (f"NPY_DISABLE_CPU_FEATURES={off!r}: numpy's AVX-512 sort is the slower one on "
                f"this CPU ({probe})")
    return f"numpy's default dispatch, AVX-512 ({probe})"


NUMPY_DISPATCH = _choose_numpy_dispatch()
