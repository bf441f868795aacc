"""Sharing Data Between Threads: Message Passing."""
from __future__ import annotations

from typing import Callable, List

import pyconc
from pyconc import RecvError, SendError

TITLE = "Sharing data between threads: message passing with a channel"


def example() -> List[str]:
    """The article's program: the main thread sends 42, a spawned thread
    receives it.  Returns what happened, line by line."""
    lines: List[str] = []
    say = lines.append
    sender, receiver = pyconc.channel()

    def body() -> None:
        try:
            data = receiver.recv()  # match receiver.recv() { Ok(data) => ... }
            say(f"spawned thread received {data!r}")
        except RecvError as err:  # Err(err) => handle the error
            say(f"spawned thread: recv failed: {err}")

    handle = pyconc.spawn(body)
    # do some work in the main thread
    data = 42
    try:
        sender.send(data)
        say("main thread sent 42")
    except SendError as err:  # Err(_) => handle error (the value comes back)
        say(f"main thread: send failed, value {err.value!r} came back")
    sender.close()
    handle.join().unwrap()
    return sorted(lines)  # the two threads' lines may come in either order


def run(out: Callable[..., None]) -> None:
    out("sender, receiver = pyconc.channel(); spawn(recv); sender.send(42)")
    for line in example():
        out("  " + line)
