"""Benchmarks of the sync area against the standard library (same process,
interleaved; ratio = pyconc time / baseline time, below 1.0 is faster).

    python -m benchmarks.bench_sync [--quick] [--no-write]

Cases (targets from issue 4):
  * uncontended `with m.lock() as g` vs `with threading.Lock()`   (<= 1.2)
  * 4 threads incrementing under Mutex vs under threading.Lock    (<= 1.0)
  * AtomicInt.fetch_add vs a threading.Lock-protected `+=`        (<= 0.5)
  * Condvar 3-thread turns vs threading.Condition                 (<= 1/3)
"""
from __future__ import annotations

import threading

import pyconc
from benchmarks._harness import Bench, arg_parser


def uncontended(n: int):
    m = pyconc.Mutex(0)
    lk = threading.Lock()

    def mutex() -> None:
        for _ in range(n):
            with m.lock() as g:
                pass

    def std() -> None:
        for _ in range(n):
            with lk:
                pass

    return mutex, std


def _in_threads(body, nthreads: int) -> None:
    ts = [threading.Thread(target=body) for _ in range(nthreads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()


def contended(n: int, nthreads: int = 4):
    def mutex() -> None:
        m = pyconc.Mutex(0)

        def body() -> None:
            for _ in range(n):
                with m.lock() as g:
                    g.value += 1

        _in_threads(body, nthreads)
        assert m.into_inner() == n * nthreads

    def std() -> None:
        lk = threading.Lock()
        box = [0]

        def body() -> None:
            for _ in range(n):
                with lk:
                    box[0] += 1

        _in_threads(body, nthreads)
        assert box[0] == n * nthreads

    return mutex, std


def atomic_add(n: int):
    a = pyconc.AtomicInt()
    lk = threading.Lock()
    box = [0]

    def atomic() -> None:
        fa = a.fetch_add
        for _ in range(n):
            fa(1)

    def std() -> None:
        for _ in range(n):
            with lk:
                box[0] += 1

    return atomic, std


def condvar_turns(rounds: int):
    """Three threads count to `rounds`, each on its turn (count % 3), as in
    the article's count_to_10."""

    def pyconc_turns() -> None:
        m, cv = pyconc.Mutex(0), pyconc.Condvar()

        def body(k: int) -> None:
            with m.lock() as g:
                while g.value < rounds:
                    if g.value % 3 == k:
                        g.value += 1
                        cv.notify_all()
                    else:
                        g = cv.wait(g)

        ts = [threading.Thread(target=body, args=(k,)) for k in range(3)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()

    def std_turns() -> None:
        cond = threading.Condition()
        box = [0]

        def body(k: int) -> None:
            with cond:
                while box[0] < rounds:
                    if box[0] % 3 == k:
                        box[0] += 1
                        cond.notify_all()
                    else:
                        cond.wait()

        ts = [threading.Thread(target=body, args=(k,)) for k in range(3)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()

    return pyconc_turns, std_turns


def run(quick: bool = False, write: bool = True) -> Bench:
    q = quick
    b = Bench("sync", "Shared state (Mutex, AtomicInt, Condvar) vs threading", repeat=3 if q else 7)
    n = 50_000 if q else 200_000
    f, g = uncontended(n)
    b.case("uncontended with m.lock() as g", f, {"threading.Lock": g},
           target=("threading.Lock", 1.2), ops=n)
    n = 20_000 if q else 100_000
    f, g = contended(n)
    b.case("4 threads x lock+increment", f, {"threading.Lock": g},
           target=("threading.Lock", 1.0), ops=4 * n)
    n = 50_000 if q else 200_000
    f, g = atomic_add(n)
    b.case("AtomicInt.fetch_add vs Lock + +=", f, {"threading.Lock": g},
           target=("threading.Lock", 0.5), ops=n)
    r = 600 if q else 3000
    f, g = condvar_turns(r)
    b.case("Condvar 3-thread turns", f, {"threading.Condition": g},
           target=("threading.Condition", 1 / 3), ops=r)
    b.report(write=write)
    return b


def main(argv=None) -> None:
    args = arg_parser(__doc__.splitlines()[0]).parse_args(argv)
    run(args.quick, not args.no_write)


if __name__ == "__main__":
    main()
