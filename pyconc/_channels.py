"""pyconc: the channels area -- Rust's ``std::sync::mpsc`` with crossbeam's
extras (MPMC clones, select, rendezvous channels).  Its public names are
re-exported by pyconc/__init__.py."""
from __future__ import annotations

from ._core import Receiver, Sender, channel, select, sync_channel

__all__: list[str] = ["channel", "sync_channel", "Sender", "Receiver", "select"]

# ---- coordination channels (issue 17, coordchan) ---------------------------------
from typing import Any, List, Tuple  # noqa: E402

from ._core import (  # noqa: E402
    BroadcastReceiver,
    BroadcastSender,
    OneshotReceiver,
    OneshotSender,
    WatchReceiver,
    WatchSender,
    _select_async,
    after,
    broadcast,
    never,
    oneshot,
    tick,
    watch,
)
from ._core import select as _select  # noqa: E402
from ._errors import Lagged  # noqa: E402


class Select:
    """A set of channel operations built at run time (crossbeam's ``Select``).

    ``i = sel.recv(rx)`` adds a receive (any receiver ``select`` takes:
    ``Receiver``, ``after``/``tick``/``never``, ``OneshotReceiver``,
    ``BroadcastReceiver``, ``WatchReceiver``); ``j = sel.send(tx, value)``
    adds a send of ``value``.  Each returns the operation's index.
    ``sel.select(timeout=None)`` waits until one operation completes and
    returns ``(index, value)`` (``value`` is ``None`` for a send), exactly as
    ``pyconc.select`` does over the same operations; ``await
    sel.select_async()`` does the same from a coroutine, and cancelling it
    loses nothing.  The set can be used again and changed between calls
    (``remove(index)`` leaves the other indices as they are).

        >>> tx1, rx1 = pyconc.channel(); tx2, rx2 = pyconc.channel()
        >>> sel = pyconc.Select()
        >>> a = sel.recv(rx1); b = sel.recv(rx2); t = sel.recv(pyconc.after(5))
        >>> tx2.send("two")
        >>> sel.select() == (b, "two")
        True
    """

    __slots__ = ("_ops", "__weakref__")

    def __init__(self) -> None:
        self._ops: List[Any] = []

    def recv(self, rx: Any) -> int:
        """Add a receive from ``rx``; returns its index."""
        self._ops.append(rx)
        return len(self._ops) - 1

    def send(self, tx: Sender[Any], value: Any) -> int:
        """Add a send of ``value`` on ``tx``; returns its index."""
        if not isinstance(tx, Sender):
            raise TypeError(f"Select.send() needs a Sender, not {type(tx).__name__}")
        self._ops.append((tx, value))
        return len(self._ops) - 1

    def remove(self, index: int) -> None:
        """Remove operation ``index``; the others keep their indices."""
        if not 0 <= index < len(self._ops) or self._ops[index] is None:
            raise ValueError(f"no operation with index {index}")
        self._ops[index] = None

    def _live(self) -> Tuple[List[Any], List[int]]:
        ops, idx = [], []
        for i, op in enumerate(self._ops):
            if op is not None:
                ops.append(op)
                idx.append(i)
        if not ops:
            raise ValueError("Select has no operations")
        return ops, idx

    def select(self, timeout: "float | None" = None) -> Tuple[int, Any]:
        """Wait for one operation, complete it, return ``(index, value)``.
        Errors as ``pyconc.select`` (``.index`` is this set's index)."""
        ops, idx = self._live()
        try:
            i, v = _select(*ops, timeout=timeout)
        except BaseException as e:
            if isinstance(getattr(e, "index", None), int):
                e.index = idx[e.index]  # type: ignore[attr-defined]
            raise
        return idx[i], v

    def try_select(self) -> Tuple[int, Any]:
        """Complete an operation that is ready now; ``TimeoutError`` if none is."""
        return self.select(timeout=0)

    async def select_async(self) -> Tuple[int, Any]:
        """Awaitable ``select()``; cancelling it sends and receives nothing."""
        ops, idx = self._live()
        try:
            i, v = await _select_async(*ops)
        except BaseException as e:
            if isinstance(getattr(e, "index", None), int):
                e.index = idx[e.index]  # type: ignore[attr-defined]
            raise
        return idx[i], v

    def __len__(self) -> int:
        return sum(op is not None for op in self._ops)

    def __repr__(self) -> str:
        kinds = []
        for i, op in enumerate(self._ops):
            if op is None:
                continue
            kinds.append(f"{i}: send" if isinstance(op, tuple) else f"{i}: recv {op!r}")
        return f"Select<{', '.join(kinds) or 'empty'}>"


__all__ += [
    "oneshot", "OneshotSender", "OneshotReceiver",
    "broadcast", "BroadcastSender", "BroadcastReceiver", "Lagged",
    "watch", "WatchSender", "WatchReceiver",
    "after", "tick", "never", "Select",
]
