"""Concurrency patterns: a bounded worker set (tokio's Semaphore).

Ten jobs are spawned at once, but a ``Semaphore(3)`` lets only three run at
a time: each job holds a permit for its duration (``with sem:``), and the
permit goes back when the block ends.  A coroutine can take part in the same
limit with ``async with sem:`` -- one Semaphore serves threads and
coroutines alike.  A ``WaitGroup`` (crossbeam) tells the main thread when
every job has finished.
"""
from __future__ import annotations

import asyncio
from typing import Callable, List, Tuple

import pyconc
from pyconc import Semaphore, WaitGroup

TITLE = "Concurrency patterns: a bounded worker set (Semaphore, WaitGroup)"


def example(jobs: int = 10, limit: int = 3, work: float = 0.02) -> Tuple[int, List[str]]:
    """Run `jobs` jobs, at most `limit` at once (threads and one coroutine
    share the limit).  Returns (the most jobs ever running at once, the log)."""
    sem = Semaphore(limit)
    wg = WaitGroup()
    running = pyconc.AtomicInt(0)
    peak = pyconc.AtomicInt(0)
    log: List[str] = []

    def enter(name: str) -> None:
        now = running.fetch_add(1) + 1
        peak.fetch_max(now)
        log.append(f"{name} starts ({now} running)")

    def job(i: int, member: WaitGroup) -> None:
        with member, sem:  # leave the group when done; hold a permit meanwhile
            enter(f"job {i}")
            pyconc.sleep(work)
            running.fetch_sub(1)

    async def coroutine_job() -> None:
        async with sem:
            enter("coroutine")
            await asyncio.sleep(work)
            running.fetch_sub(1)

    handles = [pyconc.spawn(job, i, wg.clone()) for i in range(jobs)]
    asyncio.run(coroutine_job())
    wg.wait()  # every job has left the group
    for h in handles:
        h.join().unwrap()
    return peak.load(), log


def run(out: Callable[..., None]) -> None:
    peak, log = example()
    for line in log:
        out("  " + line)
    out(f"at most {peak} jobs ran at once (the Semaphore allows 3)")
    if peak > 3:
        raise AssertionError("the Semaphore let more than 3 jobs run at once")
