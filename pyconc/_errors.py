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
]

_MISSING: Any = object()


class PyconcError(Exception):
    """Base class of every pyconc exception."""


class _CarriesValue:
    """Mixin: the exception carries back the value an operation could not deliver."""

    value: Any

    def __init__(self, message: str = "", value: Any = None) -> None:
        super().__init__(message)  # type: ignore[call-arg]
        self.value = value

    def __reduce__(self) -> Any:
        return (type(self), (str(self), self.value))


class ChannelError(PyconcError):
    """Base class of the channel errors."""


class SendError(_CarriesValue, ChannelError):
    """``send`` on a channel whose every Receiver is gone; ``.value`` is the message."""


class RecvError(ChannelError):
    """``recv`` on a channel that is empty and whose every Sender is gone."""


class Empty(ChannelError):
    """``try_recv`` on an empty channel that still has senders."""


class Full(_CarriesValue, ChannelError):
    """``try_send`` on a full channel that still has receivers; ``.value`` is the message."""


class SendTimeoutError(_CarriesValue, ChannelError, TimeoutError):
    """``send(timeout=...)`` ran out of time; ``.value`` is the message."""


class RecvTimeoutError(ChannelError, TimeoutError):
    """``recv(timeout=...)`` ran out of time."""


class PoisonError(PyconcError):
    """A lock was poisoned: a thread raised while holding it.

    ``into_inner()`` returns what the call would have returned had the lock
    not been poisoned (the guard from ``lock()``, the value from
    ``into_inner()``), so the data can still be recovered (Rust's
    ``PoisonError::into_inner``).
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
    """A ``try_*`` call could not proceed without blocking."""


class DeadlockError(PyconcError, RuntimeError):
    """The call could never return: the current thread already holds the lock."""


class UseAfterDrop(PyconcError, ValueError):
    """The handle was closed, dropped, or consumed and cannot be used any more."""


class AlreadySet(_CarriesValue, PyconcError, ValueError):
    """``OnceLock.set`` on a full cell; ``.value`` is the value that was refused."""


class UnwrapError(PyconcError):
    """``unwrap()`` on the wrong variant, when there is no exception to re-raise."""


class JoinTimeoutError(PyconcError, TimeoutError):
    """``JoinHandle.join(timeout=...)`` ran out of time; the thread keeps running."""


class LockTimeoutError(PyconcError, TimeoutError):
    """``lock(timeout=...)`` / ``read`` / ``write`` ran out of time; nothing was locked."""
