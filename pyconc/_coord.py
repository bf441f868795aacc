"""pyconc: coordination for threads and coroutines alike -- ``Semaphore``
(tokio's, with ``SemaphorePermit``), ``Event`` (threading's, also awaitable),
``Notify`` (tokio's) and ``WaitGroup`` (crossbeam's); their public names are
re-exported by pyconc/__init__.py.

All are implemented in C (pyconc._core, csrc/core/coord.c): a blocking call
releases the GIL and is interruptible by Ctrl-C; an awaiting coroutine is
woken through its event loop's hub (pyconc/_aio.py), with no polling and no
helper thread.
"""
from __future__ import annotations

from ._core import Event, Notify, Semaphore, SemaphorePermit, WaitGroup
from ._errors import Closed

__all__: list[str] = ["Semaphore", "SemaphorePermit", "Event", "Notify", "WaitGroup", "Closed"]
