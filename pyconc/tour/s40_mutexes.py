"""Concurrency Patterns: Mutexes and Locks (the ten-thread counter)."""
from __future__ import annotations

from typing import Callable

import pyconc
from pyconc import Arc, Mutex

TITLE = "Concurrency patterns: mutexes and locks"


def example() -> int:
    """Ten threads each lock the Arc<Mutex<i32>> and add one; returns the
    final count (the article prints "Result: 10")."""
    counter = Arc(Mutex(0))
    handles = []
    for _ in range(10):
        c = counter.clone()

        def body(counter: Arc[Mutex[int]] = c) -> None:
            with counter.lock() as val:  # let mut val = counter.lock().unwrap();
                val.value += 1  # *val += 1;

        handles.append(pyconc.spawn(body))
    for handle in handles:
        handle.join().unwrap()
    with counter.lock() as g:  # auto-deref through the Arc (typed Any)
        total: int = g.value
    return total


def run(out: Callable[..., None]) -> None:
    result = example()
    assert result == 10
    out(f"Result: {result}")
