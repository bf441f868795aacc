"""pyconc: the parallel area -- rayon's ThreadPool/join, par_sort, Executor.

The pool, join and the sort kernels are C (csrc/core/pool.c, sort.c); this
module adds the Python-level pieces: which path par_sort takes, the pool
scope, the article's merge_sort and a concurrent.futures Executor.
"""
from __future__ import annotations

import concurrent.futures as _cf
import operator as _operator
import os as _os
import threading as _threading
from typing import Any, Callable, Iterable, List, Optional, Tuple

from . import _core
from ._core import ThreadPool, current_num_threads, join
from ._threads import _ScopeBase

__all__ = ["ThreadPool", "join", "current_num_threads", "par_sort", "par_sorted",
           "par_argsort", "merge_sort", "Executor"]

# ---- parallel iterators (par_iter.c, _par_iter.py) ----
from ._par_iter import ParIter, par_iter, par_map  # noqa: E402

__all__ += ["ParIter", "par_iter", "par_map"]


def par_sort(data: Any, *, key: Optional[Callable[[Any], Any]] = None, reverse: bool = False,
             stable: bool = True) -> None:
    """Sort ``data`` in place on all threads of the current pool, without the GIL.

    * A writable C-contiguous one-dimensional buffer (``array.array``,
      ``numpy.ndarray``, ``bytearray``, ``memoryview``) of format
      ``b B h H i I l L q Q f d`` is sorted where it lies, no copy.  Floats:
      NaNs sort last (first with ``reverse=True``), ``-0.0`` and ``0.0`` are
      equal and keep their order.  A read-only buffer or an unsupported
      format raises ``TypeError``, a strided or multi-dimensional one
      ``ValueError``, before the data is touched.
    * A ``list`` of ints that fit in 64 bits, of floats (no NaN), of ``str``
      (code point order, any mix of narrow and wide strings) or of
      ``bytes`` (byte order) is sorted natively; any other list (mixed
      types, big ints, objects, NaN, ``str``/``bytes`` subclasses that
      define their own comparisons) goes through ``list.sort``.  Either way
      the order, stability, ``reverse`` semantics and exceptions are exactly
      ``list.sort``'s, and the list keeps its very objects.
    * ``key=`` calls the key once per item, as ``list.sort`` does; when every
      key is an int that fits in 64 bits, or every key a float (no NaN), a
      ``str`` or a ``bytes``, the items are sorted natively by their keys
      (stable; ``reverse=True`` keeps equal keys in input order, as
      ``list.sort``); other keys go through
      ``list.sort`` with the keys already computed.  On a buffer, its values
      are sorted that way and written back.
    * ``reverse`` is checked as ``list.sort`` checks it, for lists and
      buffers alike; a 0-d buffer raises ``ValueError`` (nothing to sort
      along), with or without ``key=``.

    The sort is always stable (``stable=False`` is accepted for rayon's
    ``par_sort_unstable`` spelling and changes nothing).  Ctrl-C raises
    ``KeyboardInterrupt`` within milliseconds and leaves the data a
    permutation of the input.

    Memory: a large sort (a buffer of 1M+ 8-byte or 2M+ 4-byte elements)
    uses one scratch buffer the size of the data (none past 2**27
    elements, where it distributes in place).  The last such buffer is
    kept for the next sort instead of being unmapped, because faulting in
    a fresh one is a tenth of the sort's time; while kept, its memory is
    handed back to the kernel as lazily freed (``MADV_FREE``: reclaimed
    first under memory pressure), and only buffers up to 1 GiB (and 1/16
    of physical memory) are kept.

        >>> xs = [5, 3, 9, 1]
        >>> pyconc.par_sort(xs)
        >>> xs
        [1, 3, 5, 9]
    """
    del stable  # both kernels are stable
    # list.sort's own check of `reverse` (and its message), for every kind of
    # data, so buffers and lists accept and reject the same values
    [].sort(reverse=reverse)
    if isinstance(data, list):
        if key is None:
            if _core._par_sort_list(data, reverse):
                return None
            data.sort(reverse=reverse)
            return None
        # list.sort calls key once per item, in order, before comparing: so do
        # we; the native path takes 64-bit int or float keys, anything else
        # goes to list.sort with the keys already computed (no second call).
        keys = [key(x) for x in data]
        if _core._par_sort_list(data, reverse, keys):
            return None
        it = iter(keys)
        data.sort(key=lambda _item: next(it), reverse=reverse)
        return None
    if key is None:
        _core._par_sort_buffer(data, reverse)
        return None
    # key= on a buffer: validate it as a sortable buffer first, then sort its
    # values in Python and write them back.
    view = memoryview(data)
    if view.readonly:
        raise TypeError(f"par_sort sorts in place: this {type(data).__name__} is read-only")
    if view.ndim != 1 or not view.c_contiguous:
        raise ValueError("par_sort needs a one-dimensional C-contiguous buffer")
    fmt = view.format.lstrip("@=<")
    if fmt not in tuple("bBhHiIlLqQfd"):
        raise TypeError(f"par_sort cannot sort items of format {view.format!r}")
    values = view.tolist()
    par_sort(values, key=key, reverse=reverse)
    view.cast("B").cast(fmt)[:] = _array_of(fmt, values)  # type: ignore[call-overload,unused-ignore]


def par_argsort(data: Any, *, stable: bool = True) -> Any:
    """The indices that sort ``data``, in numpy's ``argsort(kind="stable")``
    order (equal values by index, NaN last, ``-0.0 == 0.0``), computed on all
    threads of the current pool without the GIL.

    ``data`` is a C-contiguous one-dimensional buffer of format
    ``b B h H i I l L q Q f d`` (read-only is fine).  The result is an int64
    ``numpy.ndarray`` when ``data`` is a numpy array, else an
    ``array.array('q')``.  Always stable (``stable=False`` changes nothing).
    Ctrl-C raises ``KeyboardInterrupt`` promptly.

        >>> import array
        >>> pyconc.par_argsort(array.array("d", [3.0, 1.0, 2.0]))
        array('q', [1, 2, 0])
    """
    del stable
    try:
        view = memoryview(data)
    except TypeError:
        raise TypeError("par_argsort needs a buffer (array.array, numpy array, bytearray, "
                        f"memoryview), not {type(data).__name__}") from None
    n = view.nbytes // max(1, view.itemsize)
    if type(data).__module__ == "numpy":
        import numpy

        out: Any = numpy.empty(n, dtype=numpy.int64)
    else:
        import array

        out = array.array("q", bytes(8 * n))
    _core._par_argsort_buffer(data, out)
    return out


def _array_of(fmt: str, values: List[Any]) -> Any:
    import array

    return memoryview(array.array(fmt, values))


def par_sorted(iterable: Iterable[Any], *, key: Optional[Callable[[Any], Any]] = None,
               reverse: bool = False) -> List[Any]:
    """Like ``sorted()``: a new sorted list, built with ``par_sort``.

        >>> pyconc.par_sorted({3, 1, 2})
        [1, 2, 3]
    """
    result = list(iterable)
    par_sort(result, key=key, reverse=reverse)
    return result


# ---------------------------------------------------------------------------
# The article's merge_sort_par, over join.
# ---------------------------------------------------------------------------

_JOIN_DEPTH = 4        # always fork the top levels (the article's structure) ...
_JOIN_MIN_LEN = 4096   # ... and any slice at least this long; below, recurse in place


def merge_sort(arr: List[Any]) -> List[Any]:
    """The article's ``merge_sort_par``: split in half, sort both halves under
    ``join``, merge through a temporary list, copy back.  Sorts ``arr`` in
    place and returns it.  Below the top levels, slices shorter than 4096
    items recurse without forking (a fork costs more than sorting them).
    Kept faithful to the article, including its merge (``<`` takes the
    left item, so equal items may swap); use ``par_sort`` for real work.

        >>> pyconc.merge_sort([8, 2, 5, 9, 1, 3, 7, 6, 4])
        [1, 2, 3, 4, 5, 6, 7, 8, 9]
    """
    _merge_sort_par(arr, 0, len(arr), 0)
    return arr


def _merge_sort_par(arr: List[Any], lo: int, hi: int, depth: int) -> None:
    if hi - lo <= 1:
        return
    mid = lo + (hi - lo) // 2
    if depth < _JOIN_DEPTH or hi - lo >= _JOIN_MIN_LEN:
        join(lambda: _merge_sort_par(arr, lo, mid, depth + 1),
             lambda: _merge_sort_par(arr, mid, hi, depth + 1))
    else:
        _merge_sort_par(arr, lo, mid, depth + 1)
        _merge_sort_par(arr, mid, hi, depth + 1)
    i, j = lo, mid
    temp = []
    while i < mid and j < hi:
        if arr[i] < arr[j]:
            temp.append(arr[i])
            i += 1
        else:
            temp.append(arr[j])
            j += 1
    temp.extend(arr[i:mid])
    temp.extend(arr[j:hi])
    arr[lo:hi] = temp


# ---------------------------------------------------------------------------
# Scopes and the Executor
# ---------------------------------------------------------------------------


class PoolScope(_ScopeBase):
    """The ``s`` of ``with pool.scope() as s`` (rayon's ``scope``).

    ``s.spawn(f, ...)`` queues ``f`` on the pool and returns its JoinHandle;
    jobs may spawn more on ``s``.  Leaving the block waits for all of them.
    Jobs whose handle was joined by hand have reported their outcome; of the
    others, the first exception propagates with the rest attached as notes
    (attached to the block's own exception if it raised).  A scope used on
    one of the pool's own threads helps run the pool's jobs while it waits,
    so it works even on a one-thread pool.
    """

    __slots__ = ("_pool",)
    _noun = "job"

    def __init__(self, pool: ThreadPool) -> None:
        super().__init__()
        self._pool = pool

    def _start(self, f: Callable[..., Any], args: Any, kwargs: Any) -> Any:
        return self._pool.spawn(f, *args, **kwargs)

    def _wait(self, h: Any) -> None:
        # inside the pool, help run its jobs instead of blocking a thread
        self._pool._help_until(h)

    def __enter__(self) -> "PoolScope":
        return self


# The Executor's part in interpreter exit, as concurrent.futures.thread's:
# once threading._shutdown runs the hooks registered with
# threading._register_atexit (before atexit hooks and before the interpreter
# starts finalizing), no Executor accepts new work and the exit waits for
# every future still pending -- also those of an Executor shut down with
# wait=False or dropped without shutdown.
_global_lock = _threading.Lock()
_global_shutdown = False
_all_pending: "set[_cf.Future[Any]]" = set()


def _python_exit() -> None:
    global _global_shutdown
    with _global_lock:
        _global_shutdown = True
        pending = list(_all_pending)
    _cf.wait(pending)


def _after_fork_in_child() -> None:
    # The parent's pool threads do not exist here: its pending futures never
    # finish in this process, so exit must not wait for them (and the lock
    # may have been held by a thread that is gone).
    global _global_lock, _all_pending
    _global_lock = _threading.Lock()
    _all_pending = set()


try:
    _threading._register_atexit(_python_exit)  # type: ignore[attr-defined]
except RuntimeError:  # imported while the interpreter is already shutting down
    _global_shutdown = True
if hasattr(_os, "register_at_fork"):
    _os.register_at_fork(after_in_child=_after_fork_in_child)

_PENDING = "PENDING"  # concurrent.futures._base's state names
_RUNNING = "RUNNING"
_CANCELLED = "CANCELLED"


class _PoolFuture(_cf.Future):  # type: ignore[type-arg]
    """An Executor's Future: its running state is the pool job's.

    A pool thread takes a job natively, before it holds the GIL; from then on
    the future is running (``running()`` is True, ``cancel()`` returns False)
    even if the thread has not yet had the GIL to say so.  A future cancelled
    while its job was still queued never runs, and its waiters
    (``concurrent.futures.wait``/``as_completed``) are told at once, as a
    ThreadPoolExecutor's worker tells them when it reaches the item.
    """

    _job: Any = None

    def _sync_running(self) -> None:
        # under self._condition: a pool thread took the job -> running
        if self._state == _PENDING and self._job is not None and self._job.started():
            self._state = _RUNNING

    def running(self) -> bool:
        with self._condition:
            self._sync_running()
            return bool(self._state == _RUNNING)

    def cancel(self) -> bool:
        with self._condition:
            if self._state != _PENDING:
                return bool(super().cancel())
            if self._job is not None and not self._job.cancel():
                self._state = _RUNNING  # a pool thread has taken it: it runs
                return False
            self._state = _CANCELLED
            self._condition.notify_all()
        # the job will never run: tell the waiters and callbacks here
        super().set_running_or_notify_cancel()
        self._invoke_callbacks()  # type: ignore[attr-defined]
        return True

    def set_running_or_notify_cancel(self) -> bool:
        # One step under the condition (a re-entrant lock): a cancel() or
        # running() between the check and the transition would mark the
        # future RUNNING, and the base class then refuses ("unexpected
        # state") and the future never finishes.
        with self._condition:
            if self._state == _RUNNING:  # cancel()/running() saw the job taken
                return True
            return bool(super().set_running_or_notify_cancel())


def _broken_thread_pool(message: Optional[str]) -> BaseException:
    """``concurrent.futures.thread.BrokenThreadPool(message)``, imported only
    when needed: importing that module registers a threading exit hook, which
    fails once the interpreter is shutting down (pyconc may first be
    imported from an ``atexit`` hook)."""
    import concurrent.futures.thread as cf_thread

    return cf_thread.BrokenThreadPool(message)


class Executor(_cf.Executor):
    """A ``concurrent.futures.Executor`` running on a pyconc ``ThreadPool``.

    ``submit(fn, *args, **kwargs) -> Future``, ``map``, ``shutdown(wait=True,
    *, cancel_futures=False)`` and the context manager behave as for
    ``ThreadPoolExecutor``; so code written against the standard interface
    can move to another executor (a cluster's, e.g. dask's ``Client``)
    unchanged.  ``max_workers`` (any integer, ``numpy.int64`` included)
    defaults like ``ThreadPool``'s size.

    As with ``ThreadPoolExecutor``, the interpreter does not exit before
    every submitted call has finished, even after ``shutdown(wait=False)``
    or when the Executor was dropped; ``submit`` from an ``atexit`` hook
    raises ``RuntimeError``.  A future is running -- no longer cancellable --
    from the moment a pool thread takes its job.

    ``thread_name_prefix``, ``initializer`` and ``initargs`` are
    ``ThreadPoolExecutor``'s: workers are named ``<prefix>_<k>`` (else
    ``pyconc-pool-<n>-<k>``); each worker runs ``initializer(*initargs)``
    once, before its first job; if it raises, the Executor is broken: that
    job's and every later job's future fails with
    ``concurrent.futures.thread.BrokenThreadPool``, and ``submit`` raises it.

        >>> with pyconc.Executor(2) as ex:
        ...     list(ex.map(abs, [-1, -2]))
        [1, 2]
    """

    def __init__(self, max_workers: Optional[int] = None, thread_name_prefix: str = "",
                 initializer: Optional[Callable[..., object]] = None,
                 initargs: Tuple[Any, ...] = ()) -> None:
        if max_workers is not None:
            if isinstance(max_workers, bool):
                raise TypeError("max_workers must be an int or None, not bool")
            try:
                max_workers = _operator.index(max_workers)
            except TypeError:
                raise TypeError("max_workers must be an int or None, "
                                f"not {type(max_workers).__name__}") from None
            if max_workers <= 0:
                raise ValueError("max_workers must be greater than 0")
        if initializer is not None and not callable(initializer):
            raise TypeError("initializer must be a callable")
        self._pool = ThreadPool(max_workers, thread_name_prefix=thread_name_prefix or None)
        self._lock = _threading.Lock()
        self._shutdown = False
        self._pending: "set[_cf.Future[Any]]" = set()
        self._initializer = initializer
        self._initargs = tuple(initargs)
        self._initialized = _threading.local()  # per worker: initializer done
        self._broken: Optional[str] = None

    def _initialize_worker(self) -> bool:
        """Run the initializer once on this worker; False once it failed
        (here or on another worker): the Executor is broken."""
        if self._initializer is None or getattr(self._initialized, "done", False):
            return self._broken is None
        self._initialized.done = True
        try:
            self._initializer(*self._initargs)
        except BaseException:
            _cf._base.LOGGER.critical("Exception in initializer:", exc_info=True)
            with self._lock:
                self._broken = ("A thread initializer failed, the thread pool is not "
                                "usable anymore")
            return False
        return self._broken is None

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> "_cf.Future[Any]":
        """Schedule ``fn(*args, **kwargs)`` on the pool; return its ``Future``.
        Raises ``RuntimeError`` after ``shutdown()`` or once the interpreter
        is shutting down."""
        fut: "_cf.Future[Any]" = _PoolFuture()
        pending, lock = self._pending, self._lock

        def forget(f: "_cf.Future[Any]") -> None:
            with lock:
                pending.discard(f)
            with _global_lock:
                _all_pending.discard(f)

        def run() -> None:
            if not fut.set_running_or_notify_cancel():
                return
            if not self._initialize_worker():
                fut.set_exception(_broken_thread_pool(self._broken))
                return
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:
                fut.set_exception(exc)
            else:
                fut.set_result(result)

        with self._lock, _global_lock:
            if self._broken is not None:
                raise _broken_thread_pool(self._broken)
            if self._shutdown:
                raise RuntimeError("cannot schedule new futures after shutdown")
            if _global_shutdown:
                raise RuntimeError("cannot schedule new futures after interpreter shutdown")
            fut._job = self._pool._submit(run)  # type: ignore[attr-defined]
            self._pending.add(fut)
            _all_pending.add(fut)
        fut.add_done_callback(forget)
        return fut

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Refuse new work and close the pool; with ``wait`` block until the
        queued work is done.  ``cancel_futures`` cancels what no pool thread
        has taken: idle threads take their next queued job first (a few
        microseconds, at most 100 ms), as ThreadPoolExecutor's newly started
        threads take their first items."""
        with self._lock:
            self._shutdown = True
            pending = list(self._pending) if cancel_futures else []
        if pending:
            self._pool._settle()
        for fut in pending:
            fut.cancel()
        self._pool.close(wait=wait)

    @property
    def _max_workers(self) -> int:
        return self._pool.num_threads

    def __repr__(self) -> str:
        with self._lock:
            pending = len(self._pending)
        return f"Executor(max_workers={self._pool.num_threads}, pending={pending}, shutdown={self._shutdown})"
