"""Coordination: pyconc's Semaphore and Event vs threading, asyncio and aiologic.

    python -m benchmarks.bench_coord [--quick] [--no-write]

Cases (each pair does the same work in the same process, interleaved, best
of N; ratio = pyconc time / baseline time):

* ``Semaphore with-block, uncontended``: ``with sem: pass`` on one thread
  (pyconc.Semaphore vs threading.Semaphore).  Target <= 0.5.
* ``Event set -> wake, 2 threads``: ping-pong between two threads, each
  waiting on its own Event, clearing it and setting the other's; per op =
  one set-to-wake hand-off.  Target <= 0.5 vs threading.Event.
* ``async Semaphore, one loop``: 8 tasks share Semaphore(2), each entering
  ``async with sem: await asyncio.sleep(0)`` repeatedly (asyncio.Semaphore
  for the baseline).  Target <= 1.0.
* ``thread releases -> waiting coroutine``: a thread releases a permit to a
  coroutine waiting on Semaphore(0), the coroutine answers on a second
  semaphore the thread waits on; per op = one round trip (aiologic's
  Semaphore, which also serves threads and coroutines, for the baseline:
  ``release`` / ``await async_acquire()`` / ``green_acquire()``).  Target
  <= 0.2 vs aiologic.
"""
from __future__ import annotations

import asyncio
import threading
from typing import Any, Callable, Dict

import pyconc

from ._harness import Bench, arg_parser

aiologic: Any
try:
    import aiologic
except ImportError:  # benchmark-only dependency (the `bench` extra)
    aiologic = None


def sem_uncontended(n: int) -> Dict[str, Callable[[], object]]:
    ps, ts = pyconc.Semaphore(1), threading.Semaphore(1)

    def p() -> None:
        for _ in range(n):
            with ps:
                pass

    def t() -> None:
        for _ in range(n):
            with ts:
                pass

    return {"pyconc": p, "threading.Semaphore": t}


def event_ping_pong(make: Callable[[], Any], n: int) -> Callable[[], object]:
    def run() -> None:
        a, b = make(), make()

        def other() -> None:
            for _ in range(n):
                b.wait()
                b.clear()
                a.set()

        t = threading.Thread(target=other)
        t.start()
        for _ in range(n):
            b.set()
            a.wait()
            a.clear()
        t.join()

    return run


def async_sem(make: Callable[[], Any], tasks: int, n: int) -> Callable[[], object]:
    async def worker(sem: Any) -> None:
        for _ in range(n):
            async with sem:
                await asyncio.sleep(0)

    async def main() -> None:
        sem = make()
        await asyncio.gather(*[worker(sem) for _ in range(tasks)])

    return lambda: asyncio.run(main())


def thread_to_coro_pyconc(n: int) -> Callable[[], object]:
    async def main() -> None:
        to_coro, to_thread = pyconc.Semaphore(0), pyconc.Semaphore(0)

        def thread() -> None:
            for _ in range(n):
                to_coro.release()
                to_thread.acquire().forget()

        t = threading.Thread(target=thread)
        t.start()
        for _ in range(n):
            (await to_coro.acquire_async()).forget()
            to_thread.release()
        t.join()

    return lambda: asyncio.run(main())


def thread_to_coro_aiologic(n: int) -> Callable[[], object]:
    async def main() -> None:
        to_coro, to_thread = aiologic.Semaphore(0), aiologic.Semaphore(0)

        def thread() -> None:
            for _ in range(n):
                to_coro.release()
                to_thread.green_acquire()

        t = threading.Thread(target=thread)
        t.start()
        for _ in range(n):
            await to_coro.async_acquire()
            to_thread.release()
        t.join()

    return lambda: asyncio.run(main())


def run(quick: bool = False, write: bool = True) -> Bench:
    q = quick
    b = Bench("coord", "Coordination (Semaphore, Event) vs threading, asyncio, aiologic",
              repeat=3 if q else 7)
    n = 20_000 if q else 100_000
    fns = sem_uncontended(n)
    b.case("Semaphore with-block, uncontended", fns.pop("pyconc"), fns,
           target=("threading.Semaphore", 0.5), ops=n)
    n = 2_000 if q else 10_000
    b.case("Event set -> wake, 2 threads", event_ping_pong(pyconc.Event, n),
           {"threading.Event": event_ping_pong(threading.Event, n)},
           target=("threading.Event", 0.5), ops=2 * n)
    tasks, n = 8, (300 if q else 2_000)
    b.case("async Semaphore(2), 8 tasks, one loop", async_sem(lambda: pyconc.Semaphore(2), tasks, n),
           {"asyncio.Semaphore": async_sem(lambda: asyncio.Semaphore(2), tasks, n)},
           target=("asyncio.Semaphore", 1.0), ops=tasks * n)
    n = 1_000 if q else 5_000
    if aiologic is not None:
        b.case("thread releases -> waiting coroutine", thread_to_coro_pyconc(n),
               {f"aiologic.Semaphore {aiologic.__version__}": thread_to_coro_aiologic(n)},
               target=(f"aiologic.Semaphore {aiologic.__version__}", 0.2), ops=n)
    else:
        print("aiologic is not installed (pip install aiologic): thread->coroutine case skipped")
    b.report(write=write)
    return b


def main(argv=None) -> None:
    args = arg_parser(__doc__.splitlines()[0]).parse_args(argv)
    run(args.quick, not args.no_write)


if __name__ == "__main__":
    main()
