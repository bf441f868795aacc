"""Thread helpers over the C core: Builder and scoped threads."""
from __future__ import annotations

import threading
from typing import Any, Callable, List, Optional

from . import _core
from ._core import JoinHandle
from ._result import Err

__all__ = ["Builder", "Scope", "scope"]


class Builder:
    """Thread factory with a name and a stack size (Rust's ``thread::Builder``).

    ``name`` must be a str without NUL characters (or None); ``stack_size``
    an int of bytes between 64 KiB and 2**40 (or None for the default).
    Bad values raise ``TypeError``/``ValueError`` when ``spawn`` is called,
    before any thread starts::

        >>> h = pyconc.Builder(name="worker").spawn(lambda: pyconc.current().name)
        >>> h.join()
        Ok('worker')
    """

    __slots__ = ("_name", "_stack_size")

    def __init__(self, name: Optional[str] = None, stack_size: Optional[int] = None) -> None:
        self._name = name
        self._stack_size = stack_size

    def name(self, name: str) -> "Builder":
        """Return a builder with this name (Rust's ``Builder::name``)."""
        return Builder(name, self._stack_size)

    def stack_size(self, size: int) -> "Builder":
        """Return a builder with this stack size (Rust's ``Builder::stack_size``)."""
        return Builder(self._name, size)

    def spawn(self, f: Callable[..., Any], /, *args: Any, **kwargs: Any) -> JoinHandle[Any]:
        """Start ``f(*args, **kwargs)`` on a new thread; return its JoinHandle."""
        return _core._spawn(f, args, kwargs or None, self._name, self._stack_size)

    def __repr__(self) -> str:
        return f"Builder(name={self._name!r}, stack_size={self._stack_size!r})"


def _add_note(exc: BaseException, note: str) -> None:
    add = getattr(exc, "add_note", None)
    if add is not None:
        add(note)
    else:  # Python 3.10
        notes = getattr(exc, "__notes__", None)
        if notes is None:
            notes = []
            setattr(exc, "__notes__", notes)
        notes.append(note)


class _ScopeBase:
    """What every scope shares (threads' and pools'): spawn while open, then
    wait for everything on leaving, reporting the outcomes nobody joined.
    Subclasses provide `_start(f, args, kwargs) -> JoinHandle`, may override
    `_wait(handle)`, and name their work in `_noun`."""

    __slots__ = ("_handles", "_lock", "_open")
    _noun = "thread"

    def __init__(self) -> None:
        self._handles: List[JoinHandle[Any]] = []
        self._lock = threading.Lock()
        self._open = True

    def _start(self, f: Callable[..., Any], args: Any, kwargs: Any) -> JoinHandle[Any]:
        raise NotImplementedError  # pragma: no cover - every subclass defines it

    def _wait(self, h: JoinHandle[Any]) -> None:
        """Hook run before joining each handle (a pool scope helps its pool)."""

    def spawn(self, f: Callable[..., Any], /, *args: Any, **kwargs: Any) -> JoinHandle[Any]:
        """Start ``f(*args, **kwargs)`` as work that the scope will wait for;
        return its JoinHandle (joining it by hand is allowed).  Raises
        ``RuntimeError`` once the with-block has ended."""
        with self._lock:
            if not self._open:
                raise RuntimeError("this scope has ended: spawn inside the with-block")
            h = self._start(f, args, kwargs)
            self._handles.append(h)
        return h

    def _join_all(self) -> List[BaseException]:
        errors: List[BaseException] = []
        joined = 0
        while True:
            with self._lock:
                if joined == len(self._handles):
                    self._open = False
                    break
                batch = self._handles[joined:]
            for h in batch:
                by_hand = h._joined
                self._wait(h)
                r = h.join()
                if not by_hand and isinstance(r, Err):
                    errors.append(r.error)
            joined += len(batch)
        return errors

    def __exit__(self, et: Any, ev: Optional[BaseException], tb: Any) -> None:
        errors = self._join_all()
        if ev is not None:
            for e in errors:
                _add_note(ev, f"a scoped {self._noun} also raised {e!r}")
            return None
        if errors:
            first = errors[0]
            for e in errors[1:]:
                _add_note(first, f"another scoped {self._noun} also raised {e!r}")
            raise first
        return None

    def __repr__(self) -> str:
        with self._lock:
            n = len(self._handles)
            running = sum(1 for h in self._handles if not h.is_finished())
        return f"{type(self).__name__}({self._noun}s={n}, running={running})"


class Scope(_ScopeBase):
    """The ``s`` of ``with pyconc.scope() as s`` (Rust's ``thread::scope``).

    ``s.spawn(f, ...)`` starts a scoped thread; scoped threads may spawn
    more on ``s``.  Leaving the block waits for every one of them.  Threads
    whose handle was joined by hand have reported their outcome; of the
    others, the first exception propagates, with the rest attached as
    notes.  If the block itself raised, that exception propagates and the
    threads' exceptions are attached to it as notes.

        >>> data = [1, 2, 3]
        >>> with pyconc.scope() as s:
        ...     h = s.spawn(sum, data)
        ...     s.spawn(data.append, 4).join()
        Ok(None)
        >>> h.join().unwrap() in (6, 10)
        True
    """

    __slots__ = ()

    def _start(self, f: Callable[..., Any], args: Any, kwargs: Any) -> JoinHandle[Any]:
        return _core.spawn(f, *args, **kwargs)

    def __enter__(self) -> "Scope":
        return self


def scope() -> Scope:
    """Start a scope for threads that must finish before the block ends
    (Rust's ``thread::scope``); see :class:`Scope`.

        >>> results = []
        >>> with pyconc.scope() as s:
        ...     for i in range(3):
        ...         _ = s.spawn(results.append, i)
        >>> sorted(results)   # every scoped thread has finished here
        [0, 1, 2]
    """
    return Scope()
