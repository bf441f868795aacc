"""Concurrency Patterns: Channels (the deadline worker)."""
from __future__ import annotations

import time
from typing import Callable, List

import pyconc
from pyconc import Receiver, RecvError

TITLE = "Concurrency patterns: channels coordinating tasks with deadlines"


def worker(receiver: Receiver[float], say: Callable[[str], None]) -> None:
    """The article's worker: receives deadlines (monotonic seconds)."""
    while True:
        try:
            deadline = receiver.recv()
        except RecvError:
            break
        now = time.monotonic()
        if now >= deadline:
            say("Worker received a task after the deadline!")
        else:
            remaining = deadline - now
            say(f"Worker received a task. Deadline in {remaining:.6f}s.")
            pyconc.sleep(remaining)
            say("Task completed!")


def example(scale: float = 0.1) -> List[str]:
    """The article's main with its 3, 5, 7, 4 second deadlines multiplied
    by `scale`.  Returns the worker's lines."""
    lines: List[str] = []
    sender, receiver = pyconc.channel()
    worker_handle = pyconc.spawn(worker, receiver, lines.append)
    del receiver  # moved into the worker
    for secs in (3, 5, 7, 4):
        sender.send(time.monotonic() + secs * scale)
    sender.close()  # drop(sender): no more tasks
    worker_handle.join().unwrap()
    return lines


def run(out: Callable[..., None]) -> None:
    out("deadlines 0.3 s, 0.5 s, 0.7 s, 0.4 s (the article's seconds / 10):")
    for line in example(0.1):
        out("  " + line)
