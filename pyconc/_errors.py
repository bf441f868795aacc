"""pyconc's exceptions.

Every pyconc exception derives from :class:`PyconcError`.  An exception
raised by an operation that failed to deliver a value carries that value
back in ``.value``, so nothing is lost.
"""
from __future__ import annotations

from typing import Any

__all__ = [
    "PyconcError", "ChannelError", "SendError", "RecvError", "Empty", "Full",
    "SendTimeoutError", "RecvTimeoutError", "PoisonError", "WouldBlock",
    "DeadlockError", "UseAfterDrop", "AlreadySet", "UnwrapError", "JoinTimeoutError", "LockTimeoutError",
    "Lagged",
    "Closed",
]

_MISSING: Any = object()


class PyconcError(Exception):
    """Base class of every pyconc exception.

        >>> tx, rx = pyconc.channel()
        >>> try:
        ...     rx.try_recv()
        ... except pyconc.PyconcError as e:
        ...     print(type(e).__name__)
        Empty
    """


class _CarriesValue:
    """Mixin: the exception carries back the value an operation could not deliver."""

    value: Any

    def __init__(self, message: str = "", value: Any = None) -> None:
        super().__init__(message)  # type: ignore[call-arg]
        self.value = value

    def __reduce__(self) -> Any:
        return (type(self), (str(self), self.value))


class ChannelError(PyconcError):
    """Base class of the channel errors (``SendError``, ``RecvError``,
    ``Empty``, ``Full``, ``SendTimeoutError``, ``RecvTimeoutError``).

        >>> tx, rx = pyconc.channel(); rx.close()
        >>> try:
        ...     tx.send(1)
        ... except pyconc.ChannelError as e:
        ...     print(repr(e.value))
        1
    """


class SendError(_CarriesValue, ChannelError):
    """``send`` on a channel whose every Receiver is gone; ``.value`` is the message.

        >>> tx, rx = pyconc.channel(); rx.close()
        >>> try:
        ...     tx.send("lost?")
        ... except pyconc.SendError as e:
        ...     print(e.value)
        lost?
    """


class RecvError(ChannelError):
    """``recv`` on a channel that is empty and whose every Sender is gone.

        >>> tx, rx = pyconc.channel(); tx.send(1); tx.close()
        >>> rx.recv()
        1
        >>> rx.recv()
        Traceback (most recent call last):
        pyconc._errors.RecvError: ...
    """


class Empty(ChannelError):
    """``try_recv`` on an empty channel that still has senders (not a
    ``RecvError``: the channel is alive).

        >>> tx, rx = pyconc.channel()
        >>> rx.try_recv()
        Traceback (most recent call last):
        pyconc._errors.Empty: ...
    """


class Full(_CarriesValue, ChannelError):
    """``try_send`` on a full channel that still has receivers; ``.value`` is the message.

        >>> tx, rx = pyconc.sync_channel(1); tx.try_send("a")
        >>> try:
        ...     tx.try_send("b")
        ... except pyconc.Full as e:
        ...     print(e.value)
        b
    """


class SendTimeoutError(_CarriesValue, ChannelError, TimeoutError):
    """``send(timeout=...)`` ran out of time; ``.value`` is the message.
    Also a ``TimeoutError``.

        >>> tx, rx = pyconc.sync_channel(0)   # rendezvous: nobody receives
        >>> try:
        ...     tx.send("x", timeout=0.01)
        ... except TimeoutError as e:
        ...     print(type(e).__name__, e.value)
        SendTimeoutError x
    """


class RecvTimeoutError(ChannelError, TimeoutError):
    """``recv(timeout=...)`` ran out of time.  Also a ``TimeoutError``.

        >>> tx, rx = pyconc.channel()
        >>> try:
        ...     rx.recv(timeout=0.01)
        ... except TimeoutError as e:
        ...     print(type(e).__name__)
        RecvTimeoutError
    """


class PoisonError(PyconcError):
    """A lock was poisoned: a thread raised while holding it.

    ``into_inner()`` returns what the call would have returned had the lock
    not been poisoned (the guard from ``lock()``, the value from
    ``into_inner()``), so the data can still be recovered (Rust's
    ``PoisonError::into_inner``).

        >>> m = pyconc.Mutex(0)
        >>> try:
        ...     with m.lock() as g:
        ...         g.value = 1
        ...         raise RuntimeError("oops")
        ... except RuntimeError:
        ...     pass
        >>> try:
        ...     m.lock()
        ... except pyconc.PoisonError as e:
        ...     guard = e.into_inner()
        >>> guard.value
        1
        >>> guard.unlock()
    """

    def __init__(self, message: str = "", inner: Any = _MISSING) -> None:
        super().__init__(message)
        self._inner = inner

    def into_inner(self) -> Any:
        """What the failed call would have returned."""
        if self._inner is _MISSING:
            raise UnwrapError("this PoisonError carries nothing to recover")
        return self._inner

    def get_ref(self) -> Any:
        """Alias of :meth:`into_inner` (Rust has both)."""
        return self.into_inner()


class WouldBlock(PyconcError):
    """A ``try_*`` call could not proceed without blocking.

        >>> m = pyconc.Mutex(0); g = m.lock()
        >>> m.try_lock()
        Traceback (most recent call last):
        pyconc._errors.WouldBlock: ...
    """


class DeadlockError(PyconcError, RuntimeError):
    """The call could never return: the current thread already holds the lock.

        >>> m = pyconc.Mutex(0); g = m.lock()
        >>> m.lock()
        Traceback (most recent call last):
        pyconc._errors.DeadlockError: ...
    """


class UseAfterDrop(PyconcError, ValueError):
    """The handle was closed, dropped, or consumed and cannot be used any more.

        >>> a = pyconc.Arc([1]); a.drop()
        >>> a.get()
        Traceback (most recent call last):
        pyconc._errors.UseAfterDrop: ...
    """


class AlreadySet(_CarriesValue, PyconcError, ValueError):
    """``OnceLock.set`` on a full cell; ``.value`` is the value that was refused.

        >>> cell = pyconc.OnceLock(); cell.set(1)
        >>> try:
        ...     cell.set(2)
        ... except pyconc.AlreadySet as e:
        ...     print(e.value, cell.get())
        2 1
    """


class UnwrapError(PyconcError):
    """``unwrap()`` on the wrong variant, when there is no exception to re-raise.

        >>> pyconc.Err("not an exception").unwrap()
        Traceback (most recent call last):
        pyconc._errors.UnwrapError: ...
    """


class JoinTimeoutError(PyconcError, TimeoutError):
    """``JoinHandle.join(timeout=...)`` ran out of time; the thread keeps running.

        >>> h = pyconc.spawn(pyconc.sleep, 0.2)
        >>> try:
        ...     h.join(timeout=0.01)
        ... except TimeoutError as e:
        ...     print(type(e).__name__)
        JoinTimeoutError
        >>> h.join()
        Ok(None)
    """


class LockTimeoutError(PyconcError, TimeoutError):
    """``lock(timeout=...)`` / ``read`` / ``write`` ran out of time; nothing was locked.

        >>> m = pyconc.Mutex(0); g = m.lock()
        >>> h = pyconc.spawn(m.lock, timeout=0.01)
        >>> type(h.join().err()).__name__
        'LockTimeoutError'
    """


# ---- coordination channels (issue 17, coordchan) -------------------------------


class Lagged(ChannelError):
    """A broadcast receiver fell more than ``capacity`` messages behind:
    ``n`` messages were overwritten before it read them (tokio's
    ``RecvError::Lagged(n)``).  Raised once; the next receive continues with
    the oldest message still kept.  Not a ``RecvError``: the channel is
    alive, so a ``for``/``except RecvError`` loop can simply go on.

        >>> tx, rx = pyconc.broadcast(1)
        >>> _ = tx.send(1); _ = tx.send(2)
        >>> try:
        ...     rx.recv()
        ... except pyconc.Lagged as e:
        ...     e.n
        1
        >>> rx.recv()
        2
    """

    def __init__(self, n: int) -> None:
        super().__init__(n)
        self.n = n

    def __str__(self) -> str:
        return f"receiver lagged behind by {self.n} message(s)"


class Closed(PyconcError):
    """The primitive was closed (``Semaphore.close()``): its waiters and every
    later acquire raise this.

        >>> sem = pyconc.Semaphore(0); sem.close()
        >>> try:
        ...     sem.acquire()
        ... except pyconc.Closed as e:
        ...     print(e)
        the Semaphore is closed
    """
