"""pyconc: the parallel area -- rayon's ThreadPool/join, par_sort, Executor.

The pool, join and the sort kernels are C (csrc/core/pool.c, sort.c); this
module adds the Python-level pieces: which path par_sort takes, the pool
scope, the article's merge_sort and a concurrent.futures Executor.
"""
from __future__ import annotations

import concurrent.futures as _cf
import threading as _threading
from typing import Any, Callable, Iterable, List, Optional

from . import _core
from ._core import ThreadPool, current_num_threads, join
from ._threads import _ScopeBase

__all__ = ["ThreadPool", "join", "current_num_threads", "par_sort", "par_sorted",
           "par_argsort", "merge_sort", "Executor"]


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
    * A ``list`` of ints that fit in 64 bits, or of floats (no NaN), is
      sorted natively; any other list (mixed types, big ints, ``key=``,
      objects, NaN) goes through ``list.sort``.  Either way the order,
      stability, ``reverse`` semantics and exceptions are exactly
      ``list.sort``'s, and the list keeps its very objects.
    * ``key=`` calls the key once per item, as ``list.sort`` does; when every
      key is an int that fits in 64 bits, or every key a float (no NaN), the
      items are sorted natively by their keys (stable; ``reverse=True`` keeps
      equal keys in input order, as ``list.sort``); other keys go through
      ``list.sort`` with the keys already computed.  On a buffer, its values
      are sorted that way and written back.
    * ``reverse`` is checked as ``list.sort`` checks it, for lists and
      buffers alike; a 0-d buffer raises ``ValueError`` (nothing to sort
      along), with or without ``key=``.

    The sort is always stable (``stable=False`` is accepted for rayon's
    ``par_sort_unstable`` spelling and changes nothing).  Ctrl-C raises
    ``KeyboardInterrupt`` within milliseconds and leaves the data a
    permutation of the input.

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


class Executor(_cf.Executor):
    """A ``concurrent.futures.Executor`` running on a pyconc ``ThreadPool``.

    ``submit(fn, *args, **kwargs) -> Future``, ``map``, ``shutdown(wait=True,
    *, cancel_futures=False)`` and the context manager behave as for
    ``ThreadPoolExecutor``; so code written against the standard interface
    can move to another executor (a cluster's, e.g. dask's ``Client``)
    unchanged.  ``max_workers`` defaults like ``ThreadPool``'s size.

        >>> with pyconc.Executor(2) as ex:
        ...     list(ex.map(abs, [-1, -2]))
        [1, 2]
    """

    def __init__(self, max_workers: Optional[int] = None) -> None:
        if max_workers is not None and (not isinstance(max_workers, int)
                                        or isinstance(max_workers, bool)):
            raise TypeError(f"max_workers must be an int or None, not {type(max_workers).__name__}")
        if max_workers is not None and max_workers <= 0:
            raise ValueError("max_workers must be greater than 0")
        self._pool = ThreadPool(max_workers)
        self._lock = _threading.Lock()
        self._shutdown = False
        self._pending: "set[_cf.Future[Any]]" = set()

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> "_cf.Future[Any]":
        """Schedule ``fn(*args, **kwargs)`` on the pool; return its ``Future``.
        Raises ``RuntimeError`` after ``shutdown()``."""
        with self._lock:
            if self._shutdown:
                raise RuntimeError("cannot schedule new futures after shutdown")
            fut: "_cf.Future[Any]" = _cf.Future()
            self._pending.add(fut)

            def run() -> None:
                try:
                    if not fut.set_running_or_notify_cancel():
                        return
                    try:
                        result = fn(*args, **kwargs)
                    except BaseException as exc:
                        fut.set_exception(exc)
                    else:
                        fut.set_result(result)
                finally:
                    with self._lock:
                        self._pending.discard(fut)

            self._pool.spawn(run)
            return fut

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Refuse new work and close the pool; with ``wait`` block until the
        queued work is done; ``cancel_futures`` cancels what has not started."""
        with self._lock:
            self._shutdown = True
            if cancel_futures:
                for fut in list(self._pending):
                    fut.cancel()
        self._pool.close(wait=wait)

    @property
    def _max_workers(self) -> int:
        return self._pool.num_threads

    def __repr__(self) -> str:
        with self._lock:
            pending = len(self._pending)
        return f"Executor(max_workers={self._pool.num_threads}, pending={pending}, shutdown={self._shutdown})"
