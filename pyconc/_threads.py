"""Thread helpers over the C core: Builder, scoped threads, and what makes a
pyconc thread a Python thread to the tools that look at threads (its
``threading`` object, the panic hook)."""
from __future__ import annotations

import contextvars
import sys
import threading
from typing import Any, Callable, List, Optional

from . import _core
from ._core import JoinHandle
from ._result import Err

__all__ = ["Builder", "Scope", "scope", "set_panic_hook", "take_panic_hook"]


# ---------------------------------------------------------------------------
# threading's view of pyconc threads (csrc/module/pythread.c registers and
# unregisters these objects in threading._active around each job)
# ---------------------------------------------------------------------------


class _PyconcThread(threading._DummyThread):
    """What ``threading.current_thread()`` returns on a pyconc thread or pool
    worker: named after it (``Builder(name=)``, ``pyconc-<id>`` for an unnamed
    thread, ``pyconc-pool-<n>-<k>`` for a worker), daemonic, listed by
    ``threading.enumerate()`` while a job runs (a worker: while it lives).
    A subclass of threading's ``_DummyThread`` (a thread threading did not
    start), so ``fork()`` from it is handled as threading handles those.
    One object per OS thread, renamed per job; join the JoinHandle, not it.
    """

    def __init__(self, name: str) -> None:  # runs on the thread it stands for
        threading.Thread.__init__(self, name=name, daemon=True)
        me: Any = self  # threading's private fields, as _DummyThread sets them
        me._started.set()
        me._set_ident()
        make_handle = getattr(threading, "_make_thread_handle", None)
        if make_handle is not None:  # 3.13+: a handle for a thread threading did not start
            me._handle = make_handle(me._ident)
        if getattr(threading, "_HAVE_THREAD_NATIVE_ID", False):
            me._set_native_id()

    def is_alive(self) -> bool:
        active: Any = getattr(threading, "_active")
        return active.get(self.ident) is self

    def join(self, timeout: Optional[float] = None) -> None:
        raise RuntimeError("cannot join a pyconc thread through threading: join its JoinHandle")

    def __repr__(self) -> str:
        state = "started" if self.is_alive() else "idle"
        return f"<pyconc thread {self.name!r} ({state} {self.ident})>"


# ---------------------------------------------------------------------------
# The panic hook (Rust's std::panic::set_hook / take_hook)
# ---------------------------------------------------------------------------


def _default_panic_hook(args: Any) -> None:
    """The default panic hook: hand the report to ``threading.excepthook``
    (the one in force when the thread ends), which prints
    ``Exception in thread <name>:`` and the traceback to stderr -- and which
    pytest, IDEs and error trackers already watch for ``threading`` threads."""
    threading.excepthook(args)


_panic_hook: Optional[Callable[[Any], object]] = None
_panic_hook_lock = threading.Lock()


def set_panic_hook(hook: Callable[[Any], object]) -> None:
    """Replace the panic hook (Rust's ``std::panic::set_hook``).

    When an exception escapes a pyconc thread (``spawn``, ``Builder``, a
    scope) or a ``ThreadPool.spawn`` job, ``hook(args)`` is called on that
    thread as it ends, before ``join()`` can return the ``Err``.  ``args`` is
    a ``threading.ExceptHookArgs`` (``exc_type``, ``exc_value``,
    ``exc_traceback``, ``thread`` -- the ``threading`` object, named after
    the thread), so ``threading.excepthook``-style functions fit as they
    are.  ``join()`` still returns the ``Err``.  Once the hook returned, the
    exception counts as reported: its ``Err`` no longer warns when it is
    garbage-collected uninspected.  If the hook raises, that is reported
    through ``sys.unraisablehook`` and the ``Err`` keeps its warning.
    The default hook passes ``args`` to ``threading.excepthook``.

        >>> seen = []
        >>> pyconc.set_panic_hook(lambda a: seen.append((a.thread.name, a.exc_type)))
        >>> pyconc.Builder(name="w").spawn(lambda: 1 / 0).join().is_err()
        True
        >>> seen
        [('w', <class 'ZeroDivisionError'>)]
        >>> _ = pyconc.take_panic_hook()  # back to the default
    """
    if not callable(hook):
        raise TypeError(f"the panic hook must be callable, not {type(hook).__name__}")
    global _panic_hook
    with _panic_hook_lock:
        _panic_hook = hook


def take_panic_hook() -> Callable[[Any], object]:
    """Unregister the current panic hook and return it, restoring the default
    (Rust's ``std::panic::take_hook``); returns the default hook (which
    calls ``threading.excepthook``) when no other was set::

        >>> quiet = lambda args: None
        >>> pyconc.set_panic_hook(quiet)
        >>> pyconc.take_panic_hook() is quiet
        True
        >>> pyconc.take_panic_hook().__name__   # nothing set now: the default
        '_default_panic_hook'

    To add to a hook rather than replace it:
    ``prev = take_panic_hook(); set_panic_hook(lambda a: (log(a), prev(a)))``.
    """
    global _panic_hook
    with _panic_hook_lock:
        hook, _panic_hook = _panic_hook, None
    return hook if hook is not None else _default_panic_hook


def _report_panic(result: "Err[Any]") -> None:
    """Called by the binding on a thread whose job raised, as it ends."""
    exc = result._error
    if not isinstance(exc, BaseException):
        return
    hook = _panic_hook or _default_panic_hook
    hook(threading.ExceptHookArgs(
        [type(exc), exc, exc.__traceback__, threading.current_thread()]))
    result._seen()  # reported: the GC warning would be a second report


_core._register_python_threads(_PyconcThread, _report_panic)


class Builder:
    """Thread factory with a name, a stack size and a context (Rust's
    ``thread::Builder``; ``context`` is CPython 3.14's ``Thread(context=)``).

    ``name`` must be a str without NUL characters (or None); ``stack_size``
    an int of bytes between 64 KiB and 2**40 (or None for the default).
    Bad values raise ``TypeError``/``ValueError`` when ``spawn`` is called,
    before any thread starts.  The name is what ``pyconc.current().name``,
    ``threading.current_thread().name``, logging's ``%(threadName)s``,
    faulthandler and the OS (truncated to 15 bytes) show::

        >>> h = pyconc.Builder(name="worker").spawn(lambda: pyconc.current().name)
        >>> h.join()
        Ok('worker')

    ``contextvars``: a spawned thread runs in a fresh, empty Context (as a
    ``threading.Thread`` does before 3.14); ``context=ctx`` runs it in
    ``ctx`` instead, e.g. ``contextvars.copy_context()`` to see the
    spawner's variables.  A Context can be entered by one thread at a time:
    if ``ctx`` is in use, ``f`` does not run and ``join()`` gives
    ``Err(RuntimeError)``.  (``spawn()`` passes every keyword to ``f``, so
    it has no ``context=``; ``spawn(ctx.run, f, ...)`` does the same.)

        >>> import contextvars
        >>> var = contextvars.ContextVar("var", default="unset")
        >>> _ = var.set("here")
        >>> pyconc.spawn(var.get).join()
        Ok('unset')
        >>> pyconc.Builder(context=contextvars.copy_context()).spawn(var.get).join()
        Ok('here')
    """

    __slots__ = ("_name", "_stack_size", "_context")

    def __init__(self, name: Optional[str] = None, stack_size: Optional[int] = None, *,
                 context: Optional[contextvars.Context] = None) -> None:
        self._name = name
        self._stack_size = stack_size
        self._context = context

    def name(self, name: str) -> "Builder":
        """Return a builder with this name (Rust's ``Builder::name``)."""
        return Builder(name, self._stack_size, context=self._context)

    def stack_size(self, size: int) -> "Builder":
        """Return a builder with this stack size (Rust's ``Builder::stack_size``)."""
        return Builder(self._name, size, context=self._context)

    def spawn(self, f: Callable[..., Any], /, *args: Any, **kwargs: Any) -> JoinHandle[Any]:
        """Start ``f(*args, **kwargs)`` on a new thread; return its JoinHandle."""
        return _core._spawn(f, args, kwargs or None, self._name, self._stack_size, self._context)

    def __repr__(self) -> str:
        ctx = "" if self._context is None else f", context={self._context!r}"
        return f"Builder(name={self._name!r}, stack_size={self._stack_size!r}{ctx})"


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
