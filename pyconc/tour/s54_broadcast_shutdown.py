"""A shutdown signal with a broadcast channel (tokio::sync::broadcast).

Workers take jobs from a shared channel.  To stop them all, the main thread
sends one message on a broadcast channel every worker subscribed to: each
worker's ``select`` waits on its job channel and its shutdown receiver at
once, so it stops at the next step whatever it was waiting for.  A tick
receiver (crossbeam's ``tick``) in the same select gives each worker a
heartbeat while it is idle.
"""
from __future__ import annotations

from typing import Callable, List

import pyconc

TITLE = "Shutdown signal with broadcast (tokio::sync::broadcast)"


def run(print: Callable[..., None] = print) -> None:
    jobs_tx, jobs_rx = pyconc.channel()
    results_tx, results_rx = pyconc.channel()
    shutdown_tx, shutdown_rx = pyconc.broadcast(1)

    def worker(name: str, shutdown: "pyconc.BroadcastReceiver[str]") -> int:
        done = 0
        heartbeat = pyconc.tick(0.05)
        while True:
            i, msg = pyconc.select(jobs_rx, shutdown, heartbeat)
            if i == 0:
                results_tx.send(msg * msg)
                done += 1
            elif i == 1:
                return done  # the shutdown signal
            # i == 2: a heartbeat while idle; keep waiting

    # every worker subscribes before the signal is sent
    receivers: List["pyconc.BroadcastReceiver[str]"] = [shutdown_rx] + [
        shutdown_tx.subscribe() for _ in range(2)]
    workers = [pyconc.spawn(worker, f"w{k}", rx) for k, rx in enumerate(receivers)]
    for n in range(10):
        jobs_tx.send(n)
    total = sum(results_rx.recv(timeout=5) for _ in range(10))
    print("sum of squares 0..9 =", total)
    print("shutdown sent to", shutdown_tx.send("shutdown"), "workers")
    counts = [h.join().unwrap() for h in workers]
    print("jobs done per worker add up to", sum(counts))
    assert total == 285 and sum(counts) == 10
