"""Threads <-> asyncio handoff: pyconc channels vs janus, culsans and
``loop.call_soon_threadsafe`` + ``asyncio.Queue``.

    python -m benchmarks.bench_aio [--quick] [--no-write]

Cases (every contender does the same work in the same process; producer
and consumer threads are ``threading.Thread`` for everyone, so only the
queue differs; each run starts a fresh event loop with ``asyncio.run``):

* ``thread->coro`` throughput: producer thread(s) put n items, one
  coroutine awaits them all (pyconc: ``tx.send`` / ``async for v in rx``;
  janus, culsans: ``sync_q.put`` / ``await async_q.get()``; stdlib:
  ``loop.call_soon_threadsafe(q.put_nowait, v)`` / ``await q.get()``).
* ``coro->thread`` throughput: a coroutine puts n items into a bounded
  queue (``await tx.send_async(v)`` / ``await async_q.put(v)``), a thread
  takes them.
* ``round trip`` latency: a thread sends one item to a coroutine, which
  sends it back on a second queue; the thread waits for it before sending
  the next.  Per op = one full round trip.

The target is pyconc >= 5x janus's throughput (ratio <= 0.2).
"""
from __future__ import annotations

import asyncio
import queue
import threading
from typing import Any, Callable, Dict

import pyconc

from ._harness import Bench, arg_parser

STOP = None

janus: Any
culsans: Any
try:
    import janus
except ImportError:  # benchmark-only dependency (the `bench` extra)
    janus = None
try:
    import culsans
except ImportError:
    culsans = None

Fns = Dict[str, Callable[[], object]]


def _threads(target: Callable[..., Any], args_list) -> list:
    ts = [threading.Thread(target=target, args=a) for a in args_list]
    for t in ts:
        t.start()
    return ts


# ---- thread -> coroutine ------------------------------------------------------


def t2c_pyconc(n: int, producers: int, cap: int) -> Callable[[], None]:
    def produce(tx: Any, k: int) -> None:
        send = tx.send
        for i in range(k):
            send(i)
        tx.close()

    async def main() -> int:
        tx, rx = pyconc.channel() if cap == 0 else pyconc.sync_channel(cap)
        ts = _threads(produce, [(tx.clone(), n // producers) for _ in range(producers)])
        tx.close()
        got = 0
        async for _ in rx:
            got += 1
        for t in ts:
            t.join()
        return got

    return lambda: _check(asyncio.run(main()), n)


def t2c_mixed(lib: Any, n: int, producers: int, cap: int) -> Callable[[], None]:
    """janus / culsans: the same Queue(sync_q, async_q) API."""

    def produce(q: Any, k: int) -> None:
        put = q.put
        for i in range(k):
            put(i)
        put(STOP)

    async def main() -> int:
        q = lib.Queue(cap)
        ts = _threads(produce, [(q.sync_q, n // producers) for _ in range(producers)])
        get = q.async_q.get
        got = stops = 0
        while stops < producers:
            if await get() is STOP:
                stops += 1
            else:
                got += 1
        for t in ts:
            t.join()
        q.close()
        await q.wait_closed()
        return got

    return lambda: _check(asyncio.run(main()), n)


def t2c_stdlib(n: int, producers: int) -> Callable[[], None]:
    def produce(loop: Any, q: Any, k: int) -> None:
        cst, put = loop.call_soon_threadsafe, q.put_nowait
        for i in range(k):
            cst(put, i)
        cst(put, STOP)

    async def main() -> int:
        q: asyncio.Queue = asyncio.Queue()
        loop = asyncio.get_running_loop()
        ts = _threads(produce, [(loop, q, n // producers) for _ in range(producers)])
        get = q.get
        got = stops = 0
        while stops < producers:
            if await get() is STOP:
                stops += 1
            else:
                got += 1
        for t in ts:
            t.join()
        return got

    return lambda: _check(asyncio.run(main()), n)


def _check(got: int, n: int) -> None:
    assert got == n, (got, n)


# ---- coroutine -> thread ------------------------------------------------------


def c2t_pyconc(n: int, cap: int) -> Callable[[], None]:
    async def main() -> int:
        tx, rx = pyconc.sync_channel(cap)
        out: list = []
        t = _threads(lambda: out.append(sum(1 for _ in rx)), [()])[0]
        send = tx.send_async
        for i in range(n):
            await send(i)
        tx.close()
        await asyncio.to_thread(t.join)
        return out[0]

    return lambda: _check(asyncio.run(main()), n)


def c2t_mixed(lib: Any, n: int, cap: int) -> Callable[[], None]:
    async def main() -> int:
        q = lib.Queue(cap)
        out: list = []

        def consume() -> None:
            get, c = q.sync_q.get, 0
            while get() is not STOP:
                c += 1
            out.append(c)

        t = _threads(consume, [()])[0]
        put = q.async_q.put
        for i in range(n):
            await put(i)
        await put(STOP)
        await asyncio.to_thread(t.join)
        q.close()
        await q.wait_closed()
        return out[0]

    return lambda: _check(asyncio.run(main()), n)


# ---- round trip latency ------------------------------------------------------


def rt_pyconc(n: int) -> Callable[[], None]:
    async def main() -> None:
        atx, arx = pyconc.channel()
        btx, brx = pyconc.channel()

        def client() -> None:
            send, recv = atx.send, brx.recv
            for i in range(n):
                send(i)
                recv()
            atx.close()

        t = _threads(client, [()])[0]
        send = btx.send
        async for v in arx:
            send(v)
        t.join()

    return lambda: asyncio.run(main())


def rt_mixed(lib: Any, n: int) -> Callable[[], None]:
    async def main() -> None:
        a, b = lib.Queue(), lib.Queue()

        def client() -> None:
            put, get = a.sync_q.put, b.sync_q.get
            for i in range(n):
                put(i)
                get()
            put(STOP)

        t = _threads(client, [()])[0]
        get, put = a.async_q.get, b.async_q.put_nowait
        while (v := await get()) is not STOP:
            put(v)
        await asyncio.to_thread(t.join)
        for q in (a, b):
            q.close()
            await q.wait_closed()

    return lambda: asyncio.run(main())


def rt_stdlib(n: int) -> Callable[[], None]:
    async def main() -> None:
        a: asyncio.Queue = asyncio.Queue()
        b: queue.SimpleQueue = queue.SimpleQueue()
        loop = asyncio.get_running_loop()

        def client() -> None:
            cst, put, get = loop.call_soon_threadsafe, a.put_nowait, b.get
            for i in range(n):
                cst(put, i)
                get()
            cst(put, STOP)

        t = _threads(client, [()])[0]
        get, put = a.get, b.put
        while (v := await get()) is not STOP:
            put(v)
        await asyncio.to_thread(t.join)

    return lambda: asyncio.run(main())


# ---- driver -------------------------------------------------------------------------


def run(quick: bool = False, write: bool = True) -> Bench:
    scale = 0.2 if quick else 1.0
    b = Bench("aio", "Threads <-> asyncio handoff: pyconc vs janus, culsans, call_soon_threadsafe",
              repeat=3 if quick else 5)
    libs: Dict[str, Any] = {k: v for k, v in (("janus", janus), ("culsans", culsans)) if v is not None}
    target = ("janus", 0.2) if "janus" in libs else None

    n = int(100_000 * scale)
    for producers in (1, 4):
        bases: Fns = {name: t2c_mixed(lib, n, producers, 0) for name, lib in libs.items()}
        bases["call_soon_threadsafe+asyncio.Queue"] = t2c_stdlib(n, producers)
        b.case(f"thread->coro x{producers} unbounded", t2c_pyconc(n, producers, 0), bases,
               target=target, ops=n)
    bases = {name: t2c_mixed(lib, n, 1, 64) for name, lib in libs.items()}
    b.case("thread->coro bounded(64)", t2c_pyconc(n, 1, 64), bases, target=target, ops=n)

    n = int(50_000 * scale)
    bases = {name: c2t_mixed(lib, n, 64) for name, lib in libs.items()}
    b.case("coro->thread bounded(64)", c2t_pyconc(n, 64), bases, target=target, ops=n)

    n = int(5_000 * scale)
    bases = {name: rt_mixed(lib, n) for name, lib in libs.items()}
    bases["call_soon_threadsafe+asyncio.Queue"] = rt_stdlib(n)
    b.case("round trip thread->coro->thread", rt_pyconc(n), bases, ops=n)
    b.report(write=write)
    if write:
        import os

        from ._harness import RESULTS

        with open(os.path.join(RESULTS, "aio.md"), "a") as f:
            f.write(NOTES)
    return b


NOTES = """
Notes.  Why the throughput gap: a coroutine consuming a pyconc channel
receives with a C try_recv while messages are queued (no future, no
StopIteration object: the awaitable's am_send slot returns the value);
only when the channel is empty does it register a notify-only waiter and
yield a future.  A producer's send then links that waiter into the loop's
ready list and writes the loop's eventfd once per batch of wake-ups, not
once per message.  janus and culsans take a threading lock and schedule a
loop callback (call_soon_threadsafe: a self-pipe write) per put.  The round
trip is bounded by two thread<->loop wake-ups (epoll, GIL handoff) for
everybody, hence the smaller gap there.
"""


def main() -> None:
    args = arg_parser(__doc__ or "").parse_args()
    run(quick=args.quick, write=not args.no_write)


if __name__ == "__main__":
    main()
