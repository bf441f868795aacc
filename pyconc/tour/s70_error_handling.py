"""Error Handling in Concurrent Code (the channel part)."""
from __future__ import annotations

from typing import Callable

import pyconc
from pyconc import Err, Ok, RecvError, SendError

TITLE = "Error handling in concurrent code: Result from join, errors from send/recv"


def example(receiver_gone: bool = False) -> str:
    """The article's program; with receiver_gone the send fails and the
    error travels back through join() as Err(SendError) with the value."""
    tx, rx = pyconc.channel()
    if receiver_gone:
        rx.close()

    def body() -> None:
        result = 42  # perform some computation...
        tx.send(result)  # raises SendError (with .value) if nobody can receive

    handle = pyconc.spawn(body)
    thread_result = handle.join()
    match thread_result:
        case Ok(_):
            try:
                return f"Result: {rx.recv()}"
            except RecvError as e:
                return f"Error receiving result: {e!r}"
        case Err(SendError() as e):
            return f"Error sending result: {e!r} (value {e.value!r})"
        case Err(e):
            return f"Error in the thread: {e!r}"
    raise AssertionError("unreachable")


def run(out: Callable[..., None]) -> None:
    out("handle = spawn(compute and tx.send); match handle.join(): Ok -> rx.recv() / Err")
    out("  " + example())
    out("  with the receiver dropped first: " + example(receiver_gone=True))
