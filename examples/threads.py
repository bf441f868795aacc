"""The article's "Creating and Joining Threads", in pyconc.

    python examples/threads.py
"""
import pyconc
from pyconc import Err, Ok


def main() -> None:
    handle = pyconc.spawn(lambda: "code executed in the new thread")
    match handle.join():
        case Ok(result):
            print(f"Ok: {result}")
        case Err(e):
            print(f"Err: {e!r}")


if __name__ == "__main__":
    main()
