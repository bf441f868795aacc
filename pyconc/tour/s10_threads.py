"""Threads in Rust: Creating and Joining Threads."""
from __future__ import annotations

from typing import Callable

import pyconc
from pyconc import Err, Ok

TITLE = "Threads in Rust: creating and joining threads"


def example() -> tuple[str, object]:
    """The article's first program: spawn a thread, match on handle.join()."""
    handle = pyconc.spawn(lambda: "code executed in the new thread")
    match handle.join():
        case Ok(result):
            return ("ok", result)
        case Err(e):
            return ("err", e)
    raise AssertionError("unreachable: a Result is Ok or Err")


def run(out: Callable[..., None]) -> None:
    out("handle = pyconc.spawn(f); match handle.join(): case Ok(result) / case Err(_)")
    kind, value = example()
    assert kind == "ok"
    out(f"  Ok(result) -> {value!r}")
    failing = pyconc.spawn(lambda: 1 / 0).join()
    assert failing.is_err()
    out(f"  a thread that raises -> {failing!r}")
