"""Sharing Data Between Threads: Shared Ownership (Arc)."""
from __future__ import annotations

from typing import Callable, Tuple

import pyconc
from pyconc import Arc, Err, Ok

TITLE = "Sharing data between threads: shared ownership with Arc"


def example() -> Tuple[str, object, int]:
    """The article's program: Arc::new(42), a clone moved into a spawned
    thread, then match on handle.join().  Returns (outcome, value the thread
    saw, strong count after the thread dropped its clone)."""
    shared_data = Arc(42)

    def make_thread_body() -> Callable[[], object]:
        shared = shared_data.clone()  # let shared_data = shared_data.clone();

        def body() -> object:
            with shared:  # the clone is dropped when the thread is done with it
                return shared.get()  # use the shared_data value in the new thread

        return body

    handle = pyconc.spawn(make_thread_body())
    # do some work in the main thread...
    match handle.join():
        case Ok(result):
            outcome = "ok"
        case Err(e):
            outcome, result = "err", e
    return outcome, result, Arc.strong_count(shared_data)


def run(out: Callable[..., None]) -> None:
    outcome, value, strong = example()
    assert (outcome, value, strong) == ("ok", 42, 1)
    out("shared_data = Arc(42); the thread gets shared_data.clone()")
    out(f"  handle.join() -> Ok({value!r}); strong count afterwards: {strong}")
