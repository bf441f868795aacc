"""pyconc: parallel iterators -- rayon's ``par_iter`` and a parallel ``map``.

The per-chunk loop (every adaptor fused, then the terminal) and the adaptive
splitting are C (csrc/module/par_iter.c); this module builds the pipeline and
runs ``par_map(..., executor=...)`` over any ``concurrent.futures.Executor``.
"""
from __future__ import annotations

import concurrent.futures as _cf
import operator as _operator
from typing import (Any, Callable, Generic, Iterable, List, Optional, Tuple, TypeVar,
                    overload)

from . import _core

__all__ = ["ParIter", "par_iter", "par_map"]

T = TypeVar("T")
U = TypeVar("U")

# stage and terminal codes of csrc/module/par_iter.c
_MAP, _FILTER, _FILTER_NOT, _FLAT_MAP, _ENUMERATE, _CHUNKS = range(6)
_COLLECT, _COUNT, _SUM, _MIN, _MAX, _REDUCE, _FOLD, _FIND = range(8)

_Stage = Tuple[int, Any, int]


def _check_callable(f: Any, what: str) -> None:
    if not callable(f):
        raise TypeError(f"{what} needs a callable, not {type(f).__name__}")


def _positive(n: Any, what: str) -> int:
    if isinstance(n, bool):
        raise TypeError(f"{what} must be an int, not bool")
    try:
        v = _operator.index(n)
    except TypeError:
        raise TypeError(f"{what} must be an int, not {type(n).__name__}") from None
    if v < 1:
        raise ValueError(f"{what} must be at least 1, got {v}")
    return v


class ParIter(Generic[T]):
    """A lazy parallel iterator (rayon's ``ParallelIterator``); make one with
    ``par_iter(source)``.

    Adaptors (``map``, ``filter``, ``flat_map``, ``enumerate``, ``chunks``,
    ``with_min_len``) return a new ``ParIter`` and run nothing; a terminal
    (``collect``, ``for_each``, ``reduce``, ``fold``, ``sum``, ``min``,
    ``max``, ``count``, ``any``, ``all``, ``find_any``) runs the whole
    pipeline on the pool, each chunk of the input through every adaptor in
    one pass.  ``enumerate`` and ``chunks`` need item positions, so they
    may only follow ``map``, ``enumerate`` and ``chunks``.

        >>> pyconc.par_iter(range(10)).filter(lambda x: x % 2).map(lambda x: x * x).sum()
        165
    """

    __slots__ = ("_source", "_stages", "_min_len", "_pool", "_indexed")

    def __init__(self, source: Iterable[Any], stages: Tuple[_Stage, ...] = (),
                 min_len: Optional[int] = None, pool: Any = None, indexed: bool = True) -> None:
        self._source = source
        self._stages = stages
        self._min_len = min_len
        self._pool = pool
        self._indexed = indexed

    def _with(self, stage: _Stage, indexed: Optional[bool] = None) -> "ParIter[Any]":
        return ParIter(self._source, self._stages + (stage,), self._min_len, self._pool,
                       self._indexed if indexed is None else indexed)

    def __repr__(self) -> str:
        names = {_MAP: "map", _FILTER: "filter", _FLAT_MAP: "flat_map",
                 _ENUMERATE: "enumerate", _CHUNKS: "chunks"}
        steps = "".join(f".{names[c]}({n if c == _CHUNKS else ''})" for c, _f, n in self._stages)
        return f"par_iter(<{type(self._source).__name__}>){steps}"

    # ---- adaptors ----------------------------------------------------------

    def map(self, f: Callable[[T], U]) -> "ParIter[U]":
        """Apply ``f`` to every item.

            >>> pyconc.par_iter([1, 2, 3]).map(str).collect()
            ['1', '2', '3']
        """
        _check_callable(f, "map()")
        return self._with((_MAP, f, 0))

    def filter(self, pred: Callable[[T], Any]) -> "ParIter[T]":
        """Keep the items for which ``pred(item)`` is true.

            >>> pyconc.par_iter(range(6)).filter(lambda x: x % 3 == 0).collect()
            [0, 3]
        """
        _check_callable(pred, "filter()")
        return self._with((_FILTER, pred, 0), indexed=False)

    def flat_map(self, f: Callable[[T], Iterable[U]]) -> "ParIter[U]":
        """Replace every item with the items of the iterable ``f(item)``.

            >>> pyconc.par_iter([1, 2]).flat_map(lambda x: [x] * x).collect()
            [1, 2, 2]
        """
        _check_callable(f, "flat_map()")
        return self._with((_FLAT_MAP, f, 0), indexed=False)

    def enumerate(self) -> "ParIter[Tuple[int, T]]":
        """Pair every item with its index: ``(i, item)``.

            >>> pyconc.par_iter("ab").enumerate().collect()
            [(0, 'a'), (1, 'b')]
        """
        if not self._indexed:
            raise TypeError("enumerate() needs item positions: use it before filter()/flat_map()")
        return self._with((_ENUMERATE, None, 0))

    def chunks(self, n: int) -> "ParIter[List[T]]":
        """Group consecutive items into lists of ``n`` (the last may be shorter).

            >>> pyconc.par_iter(range(5)).chunks(2).collect()
            [[0, 1], [2, 3], [4]]
        """
        n = _positive(n, "chunks(n)")
        if not self._indexed:
            raise TypeError("chunks() needs item positions: use it before filter()/flat_map()")
        return self._with((_CHUNKS, None, n))

    def with_min_len(self, n: int) -> "ParIter[T]":
        """Never split the input into pieces shorter than ``n`` items (fewer,
        bigger chunks for cheap functions).  For an iterable that is not a
        sequence, ``n`` is the number of items drawn at a time.

            >>> pyconc.par_iter(range(4)).with_min_len(1000).map(abs).sum()
            6
        """
        n = _positive(n, "with_min_len(n)")
        return ParIter(self._source, self._stages, n, self._pool, self._indexed)

    # ---- terminals -----------------------------------------------------------

    def _run(self, stages: Tuple[_Stage, ...], term: int, f1: Any = None, f2: Any = None) -> Any:
        return _core._par_run(self._source, stages, term, f1, f2,
                              self._min_len or 1, self._min_len is not None, self._pool)

    def collect(self) -> List[T]:
        """All items as a list, in input order.

            >>> pyconc.par_iter(range(4)).map(lambda x: -x).collect()
            [0, -1, -2, -3]
        """
        result: List[T] = self._run(self._stages, _COLLECT)
        return result

    def for_each(self, f: Callable[[T], Any]) -> None:
        """Call ``f(item)`` for every item (in no particular order).

            >>> out = []
            >>> pyconc.par_iter([1, 2]).for_each(out.append)
            >>> sorted(out)
            [1, 2]
        """
        _check_callable(f, "for_each()")
        self._run(self._stages + ((_MAP, f, 0),), _COUNT)

    def reduce(self, identity: Callable[[], T], op: Callable[[T, T], T]) -> T:
        """rayon's ``reduce``: every chunk starts from ``identity()`` and folds
        its items with ``op``; the chunks' results are then combined with
        ``op`` in input order.  ``op`` must be associative and
        ``identity()`` its neutral element; then the result equals
        ``functools.reduce(op, items, identity())``.

            >>> pyconc.par_iter(["a", "b", "c"]).reduce(str, lambda a, b: a + b)
            'abc'
        """
        _check_callable(identity, "reduce() identity")
        _check_callable(op, "reduce() op")
        return self._run(self._stages, _REDUCE, identity, op)  # type: ignore[no-any-return]

    def fold(self, identity: Callable[[], U], op: Callable[[U, T], U]) -> List[U]:
        """rayon's ``fold``: every chunk folds its items with ``op`` starting
        from ``identity()``; returns the chunks' accumulators in input order
        (how many there are depends on how the work was split).

            >>> accs = pyconc.par_iter(range(10)).fold(int, lambda a, x: a + x)
            >>> sum(accs)
            45
        """
        _check_callable(identity, "fold() identity")
        _check_callable(op, "fold() op")
        return self._run(self._stages, _FOLD, identity, op)  # type: ignore[no-any-return]

    def sum(self) -> Any:
        """The sum of the items (``0`` for none), as ``sum()``.

            >>> pyconc.par_iter(range(101)).sum()
            5050
        """
        return self._run(self._stages, _SUM)

    def min(self) -> Optional[T]:
        """The smallest item (the first of equal ones), ``None`` if there is none.

            >>> pyconc.par_iter([3, 1, 2]).min()
            1
        """
        return self._run(self._stages, _MIN)  # type: ignore[no-any-return]

    def max(self) -> Optional[T]:
        """The largest item (the first of equal ones), ``None`` if there is none.

            >>> pyconc.par_iter([3, 1, 2]).max()
            3
        """
        return self._run(self._stages, _MAX)  # type: ignore[no-any-return]

    def count(self) -> int:
        """The number of items.

            >>> pyconc.par_iter(range(10)).filter(lambda x: x > 6).count()
            3
        """
        return self._run(self._stages, _COUNT)  # type: ignore[no-any-return]

    def any(self, pred: Callable[[T], Any]) -> bool:
        """True if ``pred`` holds for some item; the other chunks stop as soon
        as one is found.

            >>> pyconc.par_iter(range(10**6)).any(lambda x: x == 10)
            True
        """
        _check_callable(pred, "any()")
        found, _item = self._run(self._stages + ((_FILTER, pred, 0),), _FIND)
        return bool(found)

    def all(self, pred: Callable[[T], Any]) -> bool:
        """True if ``pred`` holds for every item; stops at the first that fails.

            >>> pyconc.par_iter(range(10)).all(lambda x: x < 10)
            True
        """
        _check_callable(pred, "all()")
        found, _item = self._run(self._stages + ((_FILTER_NOT, pred, 0),), _FIND)
        return not found

    def find_any(self, pred: Callable[[T], Any]) -> Optional[T]:
        """Some item for which ``pred`` holds (not necessarily the first), or
        ``None``; the other chunks stop as soon as one is found.

            >>> pyconc.par_iter(range(100)).find_any(lambda x: x * x == 49)
            7
        """
        _check_callable(pred, "find_any()")
        _found, item = self._run(self._stages + ((_FILTER, pred, 0),), _FIND)
        return item  # type: ignore[no-any-return]


def par_iter(source: Iterable[T], *, pool: Any = None) -> ParIter[T]:
    """A parallel iterator over ``source`` (rayon's ``par_iter``).

    A ``range``, list, tuple or buffer (``bytes``, ``array.array``, numpy
    arrays, a 1-d ``memoryview``) is split by index without copying; any
    other iterable (a generator, a set, a dict's keys, a ``deque``) is drawn
    in chunks (under a lock: one thread calls ``next`` at a time).  Work is
    split adaptively: pieces keep splitting while threads of the pool are
    idle.  It runs on ``pool`` (a ``ThreadPool``), else on the pool this
    code runs on (nested use inside a pool job never deadlocks), else on the
    global pool.  If items raise, the exception of the first one by input
    position propagates (what a serial loop raises) once the running chunks
    stopped, the others attached as notes.  Ctrl-C stops every chunk and
    raises ``KeyboardInterrupt``.

        >>> pyconc.par_iter(range(5)).map(lambda x: x * 10).collect()
        [0, 10, 20, 30, 40]
    """
    if pool is not None and not isinstance(pool, _core.ThreadPool):
        raise TypeError(f"pool must be a pyconc.ThreadPool or None, not {type(pool).__name__}")
    iter(source)  # TypeError now for a non-iterable, as iter() words it
    return ParIter(source, pool=pool)


@overload
def par_map(f: Callable[[T], U], iterable: Iterable[T], *, chunksize: Optional[int] = None,
            pool: Any = None, executor: None = None) -> List[U]: ...
@overload
def par_map(f: Callable[[T], U], iterable: Iterable[T], *, chunksize: Optional[int] = None,
            pool: None = None, executor: _cf.Executor) -> List[U]: ...
def par_map(f: Callable[[T], U], iterable: Iterable[T], *, chunksize: Optional[int] = None,
            pool: Any = None, executor: Optional[_cf.Executor] = None) -> List[U]:
    """``list(map(f, iterable))``, computed in parallel.

    On the pool (``pool=``, else the current or global one) as
    ``par_iter(iterable).map(f).collect()``; ``chunksize`` is then the
    smallest piece of work (``with_min_len``).  With ``executor=`` (any
    ``concurrent.futures.Executor``: a ``ThreadPoolExecutor``, a
    ``ProcessPoolExecutor``, a ``dask.distributed`` client's
    ``get_executor()``) the input is cut into chunks of ``chunksize``
    (default: about four per worker) submitted there, so the same call
    scales past one machine; ``f`` must then be something the executor can
    ship (picklable for processes and clusters).  Either way the first
    exception by input position propagates, the others as notes.

        >>> pyconc.par_map(lambda x: x + 1, [1, 2, 3])
        [2, 3, 4]
    """
    _check_callable(f, "par_map()")
    if chunksize is not None:
        chunksize = _positive(chunksize, "chunksize")
    if executor is None:
        it = par_iter(iterable, pool=pool)
        if chunksize is not None:
            it = it.with_min_len(chunksize)
        return it.map(f).collect()
    if pool is not None:
        raise TypeError("par_map takes pool= or executor=, not both")
    if not isinstance(executor, _cf.Executor) and not hasattr(executor, "submit"):
        raise TypeError(f"executor must be a concurrent.futures.Executor, "
                        f"not {type(executor).__name__}")
    return _map_on_executor(f, iterable, chunksize, executor)


def _run_chunk(f: Callable[[Any], Any], items: List[Any]) -> Tuple[List[Any], Optional[Tuple[int, BaseException]]]:
    """One chunk on an executor: (results, None), or (results so far,
    (offset, exception)) -- the exception travels as a value so the caller
    knows its position."""
    out = []
    for k, x in enumerate(items):
        try:
            out.append(f(x))
        except Exception as exc:
            return out, (k, exc)
    return out, None


def _workers(executor: Any) -> int:
    n = getattr(executor, "_max_workers", None)
    if isinstance(n, int) and n > 0:
        return n
    try:  # dask's ClientExecutor
        return max(1, int(sum(executor._client.nthreads().values())))
    except Exception:
        return 4


def _map_on_executor(f: Callable[[Any], Any], iterable: Iterable[Any], chunksize: Optional[int],
                     executor: Any) -> List[Any]:
    items = iterable if isinstance(iterable, (list, tuple, range)) else list(iterable)
    n = len(items)
    if n == 0:
        return []
    if chunksize is None:
        chunksize = max(1, -(-n // (4 * _workers(executor))))
    starts = range(0, n, chunksize)
    futures = [executor.submit(_run_chunk, f, list(items[s:s + chunksize])) for s in starts]
    results: List[Any] = []
    errors: List[Tuple[int, BaseException]] = []
    try:
        for s, fut in zip(starts, futures):
            if errors:
                fut.cancel()
                continue
            try:
                out, err = fut.result()
            except BaseException as exc:  # the executor itself failed the chunk
                errors.append((s, exc))
                continue
            results.extend(out)
            if err is not None:
                errors.append((s + err[0], err[1]))
    except BaseException:
        for fut in futures:
            fut.cancel()
        raise
    if errors:
        # the running chunks finish; later failures are notes of the first
        _cf.wait([fut for fut in futures if not fut.cancelled()])
        for s, fut in zip(starts, futures):
            if fut.cancelled() or not fut.done() or s <= errors[0][0]:
                continue
            try:
                _out, err = fut.result()
            except BaseException as exc:
                errors.append((s, exc))
                continue
            if err is not None:
                errors.append((s + err[0], err[1]))
        errors.sort(key=lambda e: e[0])
        first = errors[0][1]
        for pos, other in errors[1:]:
            first.add_note(f"par_map: the item at position {pos} also raised {other!r}")
        raise first
    return results
