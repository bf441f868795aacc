"""pyconc's async bridge: native threads and channels awaited from asyncio.

``await handle`` gives a thread's Result.  The finishing thread hands the
result to the awaiting loop through the loop's own thread-safe mechanism
(``loop.call_soon_threadsafe``): no polling, no helper thread per waiter.

``await rx.recv_async()``, ``await tx.send_async(v)`` and ``async for v in
rx`` are C awaitables (csrc/module/aio.c).  A waiting operation is woken
through its loop's *hub*: one eventfd per event loop, watched with
``loop.add_reader``, plus a ready list in C.  This module creates the hub
of each loop on first use, and has the loop look before it blocks
(``_LookingSelector``): a loop that threads woke in the last 10 ms spins
up to 50 us, without the GIL, before its selector sleeps.
"""
from __future__ import annotations

import asyncio
import sysconfig
import threading
import weakref
from time import monotonic as _monotonic
from asyncio.events import _get_running_loop
from typing import Any, Generator, Tuple

from . import _core

__all__: list[str] = []

_hubs: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any]" = weakref.WeakKeyDictionary()
_hubs_lock = threading.Lock()


# The last (weak loop, hub) looked up: a loop awaits many operations in a
# row, and WeakKeyDictionary.get costs about a microsecond per wait.  A weak
# reference, so the cache never keeps a finished loop alive.
_last: Tuple[Any, Any] = (lambda: None, None)


# Free-threaded builds (biased reference counting): an object a loop's
# thread made and another thread dropped waits in the loop thread's queue
# until that thread next runs Python code -- and a loop blocked in its
# selector runs none.  When the object is what the loop waits for (the last
# Sender of a channel it receives from, in a lambda another thread ran),
# the loop waited forever (python/cpython#157838; pyconc's own blocking
# waits handle their queue every slice, csrc/module/wait.c).  So a loop that
# uses pyconc wakes every _SETTLE_S while it runs, which handles the queue.
# With the GIL there is no queue and no timer.
_FREE_THREADED = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))
_SETTLE_S = 0.05


def _settle_tick(loop: asyncio.AbstractEventLoop) -> None:
    # Entering this function handled the queue; come back while the loop
    # lives (close() drops the scheduled handle).
    loop.call_later(_SETTLE_S, _settle_tick, loop)


class _LookingSelector:
    """The loop's own selector, looking before it blocks.

    A coroutine woken by another thread costs the loop a sleep in its
    selector and the cross-CPU wake-up of the hub's fd that ends it: most of
    a thread -> coroutine hand-off (here 58 us of a Semaphore round trip).
    Threads look before they park; this makes the loop do the same: before
    a select() that would block, ``hub._idle_spin`` looks for a wake for up
    to 50 us without the GIL, and a wake in that spell is handed over
    without the fd, the selector or the sleep.  Only a loop that other
    threads woke in the last 10 ms spins (csrc/module/aio.c); an idle loop
    blocks at once.  Everything else is the wrapped selector's, and a
    timeout is honoured to the end (the spell counts against it).  Installed
    on loops that have a ``_selector`` (asyncio's selector loops); others
    (uvloop, proactor) keep the fd wake-up alone."""

    __slots__ = ("_sel", "_hub", "_loop")

    def __init__(self, sel: Any, hub: Any, loop: asyncio.AbstractEventLoop) -> None:
        self._sel, self._hub, self._loop = sel, hub, loop

    def select(self, timeout: "float | None" = None) -> Any:
        if timeout is None or timeout > 0:
            t0 = _monotonic()
            try:
                woken = self._hub._idle_spin(timeout)
            except Exception as e:  # a future's callback failed: as a reader callback's would
                self._loop.call_exception_handler(
                    {"message": "pyconc: resolving woken futures failed", "exception": e})
                woken = True
            if woken:
                timeout = 0
            elif timeout is not None:
                timeout = max(0.0, timeout - (_monotonic() - t0))
        return self._sel.select(timeout)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sel, name)


def _look_before_blocking(loop: asyncio.AbstractEventLoop, hub: Any) -> None:
    sel = getattr(loop, "_selector", None)
    if sel is not None and not isinstance(sel, _LookingSelector) and callable(getattr(sel, "select", None)):
        loop._selector = _LookingSelector(sel, hub, loop)  # type: ignore[attr-defined]


def _running_hub() -> Tuple[asyncio.AbstractEventLoop, Any]:
    """(running loop, its hub); the hub is created and registered with
    ``loop.add_reader`` on first use.  RuntimeError outside a running loop."""
    global _last
    loop = _get_running_loop()
    if loop is None:
        raise RuntimeError("no running event loop: await channel operations inside asyncio")
    last = _last
    if last[0]() is loop:
        return loop, last[1]
    hub = _hubs.get(loop)
    if hub is None:
        with _hubs_lock:
            hub = _hubs.get(loop)
            if hub is None:
                hub = _core._AioHub()
                # Only the loop's own thread calls this (the loop is running
                # here), so add_reader is called from the right thread.
                loop.add_reader(hub.fileno(), hub._process)
                _look_before_blocking(loop, hub)
                _hubs[loop] = hub
                if _FREE_THREADED:
                    loop.call_later(_SETTLE_S, _settle_tick, loop)
    _last = (weakref.ref(loop), hub)
    return loop, hub


_core._aio_register(_running_hub, asyncio.CancelledError)


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
