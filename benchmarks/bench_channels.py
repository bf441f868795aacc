"""Channels vs the standard library queues.

    python -m benchmarks.bench_channels [--quick] [--no-write]

Shapes: seq (one thread: send then recv, repeated), spsc (one producer
thread, the main thread consumes), mpsc(4) (four producers, main consumes),
mpmc(4x4) (four producers, four consumers; each consumer stops at a
sentinel).  Flavours: unbounded vs queue.SimpleQueue; bounded(100),
bounded(1) vs queue.Queue(maxsize=same); rendezvous vs queue.Queue(maxsize=1)
(the stdlib has no rendezvous queue; Queue(1) is the closest, and weaker).
Threads are threading.Thread for every contender, methods are bound to
locals for every contender, so the difference is the queue itself.
"""
from __future__ import annotations

import queue
import threading
from typing import Any, Callable, Tuple

import pyconc

from ._harness import Bench, arg_parser

STOP = None


def _pyconc_pair(kind: str, cap: int) -> Tuple[Callable[[Any], None], Callable[[], Any]]:
    tx, rx = pyconc.channel() if kind == "unbounded" else pyconc.sync_channel(cap)
    return tx.send, rx.recv


def _stdlib_pair(kind: str, cap: int) -> Tuple[Callable[[Any], None], Callable[[], Any]]:
    q: Any = queue.SimpleQueue() if kind == "unbounded" else queue.Queue(maxsize=max(cap, 1))
    return q.put, q.get


def seq(make: Callable, kind: str, cap: int, n: int) -> Callable[[], None]:
    def run() -> None:
        put, get = make(kind, cap)
        for i in range(n):
            put(i)
            get()
    return run


def threaded(make: Callable, kind: str, cap: int, n: int, producers: int, consumers: int) -> Callable[[], None]:
    per = n // producers

    def run() -> None:
        put, get = make(kind, cap)

        def produce() -> None:
            for i in range(per):
                put(i)

        def consume() -> None:
            while get() is not STOP:
                pass

        ps = [threading.Thread(target=produce) for _ in range(producers)]
        cs = [threading.Thread(target=consume) for _ in range(consumers - 1)]
        for t in ps + cs:
            t.start()
        if consumers == 1:
            for _ in range(per * producers):
                get()
        for t in ps:
            t.join()
        for _ in cs:
            put(STOP)
        for t in cs:
            t.join()
    return run


def run(quick: bool = False, write: bool = True) -> Bench:
    scale = 0.2 if quick else 1.0
    b = Bench("channels", "Channels: pyconc vs queue.SimpleQueue / queue.Queue",
              repeat=3 if quick else 5)
    flavours = [("unbounded", 0, "SimpleQueue"), ("bounded(100)", 100, "Queue(100)"),
                ("bounded(1)", 1, "Queue(1)"), ("rendezvous", 0, "Queue(1)")]
    for name, cap, base in flavours:
        kind = "unbounded" if name == "unbounded" else "bounded"
        target = ("SimpleQueue", 0.8) if name == "unbounded" else (
            (base, 0.1) if name.startswith("bounded") else None)
        if name != "rendezvous":  # a rendezvous send blocks until another thread receives
            n = int(200_000 * scale)
            b.case(f"{name} seq", seq(_pyconc_pair, kind, cap, n),
                   {base: seq(_stdlib_pair, kind, cap, n)}, target=target, ops=n)
        small = name in ("bounded(1)", "rendezvous")
        for label, p, c in (("spsc", 1, 1), ("mpsc(4)", 4, 1), ("mpmc(4x4)", 4, 4)):
            n = int((20_000 if small else 100_000) * scale)
            t = ("SimpleQueue", 1.0) if name == "unbounded" and label != "mpmc(4x4)" else (
                target if name != "unbounded" else None)
            b.case(f"{name} {label}", threaded(_pyconc_pair, kind, cap, n, p, c),
                   {base: threaded(_stdlib_pair, kind, cap, n, p, c)}, target=t, ops=n)
    b.report(write=write)
    return b


def main() -> None:
    args = arg_parser(__doc__ or "").parse_args()
    run(args.quick, not args.no_write)


if __name__ == "__main__":
    main()
