"""pyconc's async bridge: native threads and channels awaited from asyncio.

``await handle`` gives a thread's Result.  The finishing thread hands the
result to the awaiting loop through the loop's own thread-safe mechanism
(``loop.call_soon_threadsafe``): no polling, no helper thread per waiter.
"""
from __future__ import annotations

import asyncio
from typing import Any, Generator

__all__: list = []


def _resolve(fut: "asyncio.Future[Any]", result: Any) -> None:
    if not fut.done():
        fut.set_result(result)


def _await_handle(handle: Any) -> Generator[Any, None, Any]:
    """The iterator behind ``await handle`` (JoinHandle.__await__)."""
    loop = asyncio.get_running_loop()
    fut = loop.create_future()

    def on_done(result: Any) -> None:
        # Runs on the finishing thread.  If the loop is closed meanwhile the
        # Result simply stays in the handle (handle.join() still returns it).
        try:
            loop.call_soon_threadsafe(_resolve, fut, result)
        except RuntimeError:
            pass

    handle._add_done_callback(on_done)
    result = yield from fut.__await__()
    handle._joined = True
    return result
