"""par_iter / par_map: results equal the serial map/filter/reduce, exception
positions and notes, short-circuiting, empty inputs, generators, nesting,
Ctrl-C, executors, free-threaded stress."""
import array
import concurrent.futures as cf
import functools
import itertools
import operator
import os
import subprocess
import sys
import textwrap
import threading
import time

import pytest
from hypothesis import given, settings, strategies as st

import pyconc
from pyconc import ParIter, ThreadPool, par_iter, par_map

from conftest import stress_scale

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_py(code: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """Run `code` in a fresh interpreter; a hang fails the test at `timeout`."""
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=timeout, cwd=ROOT)


# ---- random pipelines against the serial builtins ---------------------------

MAPS = [lambda x: x + 1, lambda x: x * 3, lambda x: -x, lambda x: x // 2]
PREDS = [lambda x: x % 2 == 0, lambda x: x % 3 != 0, lambda x: x > 5]
FLATS = [lambda x: [x, x], lambda x: range(x % 3)]


def serial(items, steps):
    it = iter(items)
    for kind, k in steps:
        if kind == "map":
            it = map(MAPS[k], it)
        elif kind == "filter":
            it = filter(PREDS[k], it)
        elif kind == "flat_map":
            it = itertools.chain.from_iterable(map(FLATS[k], it))
        elif kind == "enumerate":
            it = enumerate(it)
            it = map(lambda t: t[0] * 1000 + t[1], it)
        elif kind == "chunks":
            lst = list(it)
            it = iter([sum(lst[i:i + k + 1]) for i in range(0, len(lst), k + 1)])
    return list(it)


def parallel(source, steps, min_len=None):
    p = par_iter(source)
    if min_len:
        p = p.with_min_len(min_len)
    for kind, k in steps:
        if kind == "map":
            p = p.map(MAPS[k])
        elif kind == "filter":
            p = p.filter(PREDS[k])
        elif kind == "flat_map":
            p = p.flat_map(FLATS[k])
        elif kind == "enumerate":
            p = p.enumerate().map(lambda t: t[0] * 1000 + t[1])
        elif kind == "chunks":
            p = p.chunks(k + 1).map(sum)
    return p


def steps_strategy():
    step = st.one_of(
        st.tuples(st.just("map"), st.integers(0, len(MAPS) - 1)),
        st.tuples(st.just("filter"), st.integers(0, len(PREDS) - 1)),
        st.tuples(st.just("flat_map"), st.integers(0, len(FLATS) - 1)),
        st.tuples(st.just("enumerate"), st.just(0)),
        st.tuples(st.just("chunks"), st.integers(0, 4)),
    )
    return st.lists(step, max_size=5).filter(valid_steps)


def valid_steps(steps):
    indexed = True
    for kind, _ in steps:
        if kind in ("filter", "flat_map"):
            indexed = False
        elif kind in ("enumerate", "chunks") and not indexed:
            return False
    return True


SOURCES = ["range", "list", "tuple", "array", "generator"]


def make_source(kind, xs):
    if kind == "range":
        return range(len(xs))
    if kind == "list":
        return list(xs)
    if kind == "tuple":
        return tuple(xs)
    if kind == "array":
        return array.array("q", xs)
    return (x for x in xs)


@settings(max_examples=150, deadline=None)
@given(n=st.integers(0, 300), steps=steps_strategy(), src=st.sampled_from(SOURCES),
       min_len=st.sampled_from([None, 1, 7, 64]))
def test_random_pipelines_equal_serial(n, steps, src, min_len):
    xs = list(range(n))
    data = list(range(n)) if src == "range" else xs
    expect = serial(data, steps)
    assert parallel(make_source(src, xs), steps, min_len).collect() == expect
    assert parallel(make_source(src, xs), steps, min_len).sum() == sum(expect)
    assert parallel(make_source(src, xs), steps, min_len).count() == len(expect)
    assert parallel(make_source(src, xs), steps, min_len).min() == (min(expect) if expect else None)
    assert parallel(make_source(src, xs), steps, min_len).max() == (max(expect) if expect else None)
    assert (parallel(make_source(src, xs), steps, min_len).map(lambda x: [x])
            .reduce(list, operator.add) == functools.reduce(operator.add, [[x] for x in expect], []))
    assert sum(parallel(make_source(src, xs), steps, min_len).fold(int, operator.add)) == sum(expect)
    assert parallel(make_source(src, xs), steps, min_len).any(lambda x: x % 7 == 3) == \
        any(x % 7 == 3 for x in expect)
    assert parallel(make_source(src, xs), steps, min_len).all(lambda x: x % 7 != 3) == \
        all(x % 7 != 3 for x in expect)


@settings(max_examples=50, deadline=None)
@given(words=st.lists(st.text(max_size=3), max_size=200))
def test_reduce_keeps_input_order_for_non_commutative_op(words):
    assert par_iter(words).reduce(str, operator.add) == "".join(words)


def test_par_map_equals_map_for_many_sources():
    f = lambda x: x * 2  # noqa: E731
    for src in (range(1000), list(range(1000)), tuple(range(1000)), iter(range(1000)),
                {i: None for i in range(1000)}, b"abc" * 100, "xyz" * 50):
        assert par_map(f, src) == list(map(f, src if not hasattr(src, "__next__") else range(1000)))


def test_non_buffer_sequences_are_iterated_not_indexed():
    import collections

    class LabelIndexed:
        # item i is a label lookup, not position i (as a pandas Series)
        def __init__(self, d):
            self.d = d

        def __len__(self):
            return len(self.d)

        def __getitem__(self, key):
            return self.d[key]

        def __iter__(self):
            return iter(self.d.values())

    assert par_map(abs, LabelIndexed({10: -1, 20: -2})) == [1, 2]
    assert par_map(abs, collections.deque([-3, -4])) == [3, 4]


def test_par_map_chunksize_and_pool():
    with ThreadPool(3) as pool:
        assert par_map(str, range(100), chunksize=7, pool=pool) == list(map(str, range(100)))


def test_numpy_array_is_split_by_index_and_keeps_numpy_scalars():
    np = pytest.importorskip("numpy")
    a = np.arange(1000, dtype=np.int64)
    assert par_iter(a).map(lambda x: type(x)).collect()[0] is np.int64
    assert par_iter(a).sum() == a.sum()


def test_big_range_values():
    r = range(2**70, 2**70 + 50, 3)
    assert par_iter(r).collect() == list(r)
    r = range(10, -10, -3)
    assert par_iter(r).map(lambda x: x * 2).collect() == [x * 2 for x in r]


# ---- empty inputs ------------------------------------------------------------

@pytest.mark.parametrize("src", [[], (), range(0), iter([]), b"", array.array("d")])
def test_empty_inputs(src):
    assert par_iter(src).collect() == []
    assert par_iter(src).sum() == 0
    assert par_iter(src).count() == 0
    assert par_iter(src).min() is None
    assert par_iter(src).max() is None
    assert par_iter(src).reduce(lambda: "id", operator.add) == "id"
    assert par_iter(src).any(bool) is False
    assert par_iter(src).all(bool) is True
    assert par_iter(src).find_any(bool) is None
    assert par_map(abs, src) == []


# ---- generators ----------------------------------------------------------------

def test_generator_is_drawn_in_chunks_once_each():
    drawn = []

    def gen():
        for i in range(5000):
            drawn.append(i)
            yield i

    assert par_iter(gen()).map(lambda x: x + 1).collect() == list(range(1, 5001))
    assert drawn == list(range(5000))


def test_generator_that_raises_mid_way():
    def gen():
        yield from range(10)
        raise OSError("disk")

    with pytest.raises(OSError, match="disk"):
        par_iter(gen()).collect()


def test_find_any_on_an_infinite_generator_stops():
    assert par_iter(itertools.count()).find_any(lambda x: x == 500) == 500


# ---- exceptions by position --------------------------------------------------

def test_first_exception_by_position_propagates():
    def f(x):
        if x in (300, 7000, 9000):
            raise ValueError(x)
        return x

    for _ in range(20):
        with pytest.raises(ValueError) as ei:
            par_map(f, range(10000))
        assert ei.value.args == (300,)
        for note in getattr(ei.value, "__notes__", []):
            assert "position" in note


def test_other_exceptions_become_notes():
    barrier = threading.Barrier(2, timeout=10)

    def f(x):
        # both halves raise at once: the later one is a note of the first
        barrier.wait()
        raise KeyError(x)

    with ThreadPool(2) as pool:
        with pytest.raises(KeyError) as ei:
            par_iter(range(2), pool=pool).map(f).collect()
    assert ei.value.args == (0,)
    assert ei.value.__notes__ == ["par_iter: the item at position 1 also raised KeyError(1) "
                                  "(its chunk was running)"]


def test_exception_in_filter_reduce_identity_and_flat_map():
    with pytest.raises(ZeroDivisionError):
        par_iter(range(100)).filter(lambda x: 1 // (x - 50)).count()
    with pytest.raises(RuntimeError):
        par_iter(range(10)).reduce(lambda: (_ for _ in ()).throw(RuntimeError()), operator.add)
    with pytest.raises(TypeError):
        par_iter(range(10)).flat_map(lambda x: x).collect()
    with pytest.raises(TypeError):
        par_iter([1, "a", 2]).sum()


def test_find_before_a_later_error_wins():
    def pred(x):
        if x == 900:
            raise ValueError
        return x == 3

    with ThreadPool(1) as pool:
        assert par_iter(range(1000), pool=pool).find_any(pred) == 3


def test_bad_arguments():
    with pytest.raises(TypeError, match="not iterable"):
        par_iter(5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="callable"):
        par_iter([1]).map(3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least 1"):
        par_iter([1]).chunks(0)
    with pytest.raises(TypeError, match="before filter"):
        par_iter([1]).filter(bool).enumerate()
    with pytest.raises(TypeError, match="ThreadPool"):
        par_iter([1], pool="x")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="pool= or executor="):
        with cf.ThreadPoolExecutor(1) as ex:
            par_map(abs, [1], pool=ThreadPool(1), executor=ex)
    pool = ThreadPool(1)
    pool.close()
    with pytest.raises(RuntimeError, match="closed"):
        par_map(abs, [1], pool=pool)


def test_repr_and_generic_alias():
    p = par_iter([1]).map(abs).chunks(2)
    assert repr(p) == "par_iter(<list>).map().chunks(2)"
    assert ParIter[int] is not None


# ---- short-circuit -------------------------------------------------------------

def test_short_circuit_call_counts_are_bounded():
    # The chunk holding the answer stops at once; the others stop at their
    # next item.  Each call gives up the GIL (time.sleep(0)), so the thread
    # holding the answer gets to run however unfair the GIL is to it (with
    # a pure-Python predicate another chunk may keep the GIL for tens of
    # milliseconds first: seen in the full suite, 584K calls).  Without
    # short-circuiting every one of the n items is called.
    n = 1_000_000
    calls = itertools.count()

    def pred(x):
        next(calls)
        time.sleep(0)
        return x == 10

    assert par_iter(range(n)).any(pred) is True
    assert next(calls) < n // 10
    calls = itertools.count()

    def below_5(x):
        next(calls)
        time.sleep(0)
        return x < 5

    assert par_iter(range(n)).all(below_5) is False
    assert next(calls) < n // 10
    calls = itertools.count()

    def counted(x):
        next(calls)
        time.sleep(0)
        return x

    assert par_iter(range(n)).map(counted).find_any(lambda x: x == 5) == 5
    assert next(calls) < n // 10


def test_work_keeps_splitting_while_threads_are_idle():
    # every item waits for three others to be running at the same time: it
    # only passes if the splitter handed pieces to all four threads
    barrier = threading.Barrier(4, timeout=30)
    with ThreadPool(4) as pool:
        ids = par_iter(range(8), pool=pool).map(
            lambda x: (barrier.wait(), threading.get_ident())[1]).collect()
    assert len(set(ids)) == 4


# ---- nesting -------------------------------------------------------------------

def test_nested_use_inside_pool_jobs_runs_on_that_pool():
    with ThreadPool(2) as pool:
        def inner(i):
            assert pyconc.current_num_threads() == 2
            return par_iter(range(i)).map(lambda x: x * 2).sum()

        got = par_iter(range(50), pool=pool).map(inner).collect()
    assert got == [i * (i - 1) for i in range(50)]


def test_nested_in_a_one_thread_pool_does_not_deadlock():
    with ThreadPool(1) as pool:
        got = pool.install(lambda: par_map(lambda i: par_map(abs, range(-i, 0)), range(20)))
    assert got == [list(map(abs, range(-i, 0))) for i in range(20)]


def test_nested_runs_stop_with_a_find_of_the_enclosing_run():
    def inner(i):
        return par_iter(range(2000)).map(lambda x: x + i).sum()

    for _ in range(5):
        assert par_iter(range(64)).map(inner).find_any(lambda s: s >= 0) is not None


def test_a_pool_job_running_par_map_on_another_pool_and_back():
    with ThreadPool(1) as a, ThreadPool(2) as b:
        def on_b(i):
            # b's job runs par_iter on a: a's only thread is waiting for b
            # and runs a's jobs meanwhile
            return par_iter(range(i), pool=a).sum()

        got = a.install(lambda: par_map(on_b, range(30), pool=b))
    assert got == [i * (i - 1) // 2 for i in range(30)]


def test_par_map_inside_join_and_spawn():
    a, b = pyconc.join(lambda: par_map(abs, range(-5, 0)), lambda: par_iter(range(5)).sum())
    assert (a, b) == ([5, 4, 3, 2, 1], 10)
    with ThreadPool(2) as pool:
        assert pool.spawn(par_map, abs, [-1, -2]).join().unwrap() == [1, 2]


# ---- executors -----------------------------------------------------------------

def test_par_map_on_thread_pool_executor_and_pyconc_executor():
    for ex in (cf.ThreadPoolExecutor(2), pyconc.Executor(2)):
        with ex:
            assert par_map(lambda x: x * 2, range(1001), executor=ex) == [x * 2 for x in range(1001)]
            assert par_map(str, iter(range(10)), chunksize=3, executor=ex) == list(map(str, range(10)))
            assert par_map(str, [], executor=ex) == []


def test_par_map_on_a_process_pool_executor():
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")  # fork of a threaded process is unsafe
    with cf.ProcessPoolExecutor(2, mp_context=ctx) as ex:
        assert par_map(abs, range(-100, 0), executor=ex) == list(map(abs, range(-100, 0)))
        with pytest.raises(TypeError):
            par_map(abs, [1, "x", 2], chunksize=1, executor=ex)


def test_par_map_executor_first_exception_by_position_with_notes():
    def f(x):
        if x in (5, 50):
            raise ValueError(x)
        return x

    with cf.ThreadPoolExecutor(2) as ex:
        with pytest.raises(ValueError) as ei:
            par_map(f, range(100), chunksize=10, executor=ex)
    assert ei.value.args == (5,)
    for note in getattr(ei.value, "__notes__", []):
        assert "position 50" in note


# ---- Ctrl-C ----------------------------------------------------------------------

def test_ctrl_c_cancels_promptly():
    r = run_py("""
        import os, signal, threading, time, pyconc
        calls = [0]
        def f(x):
            calls[0] += 1
            time.sleep(0.001)
            return x
        threading.Timer(0.5, lambda: os.kill(os.getpid(), signal.SIGINT)).start()
        t = time.monotonic()
        try:
            pyconc.par_map(f, range(10**6))
        except KeyboardInterrupt:
            took = time.monotonic() - t
            n = calls[0]
            time.sleep(0.3)
            # nothing runs on after the interrupt propagated
            print("interrupted", took < 5, calls[0] == n)
    """)
    assert r.stdout.split() == ["interrupted", "True", "True"], r.stderr


def test_ctrl_c_on_a_generator_source():
    r = run_py("""
        import itertools, os, signal, threading, pyconc
        threading.Timer(0.5, lambda: os.kill(os.getpid(), signal.SIGINT)).start()
        try:
            pyconc.par_iter(itertools.count()).filter(lambda x: x < 0).count()
        except KeyboardInterrupt:
            print("interrupted")
    """)
    assert r.stdout.split() == ["interrupted"], r.stderr


def test_ctrl_c_with_a_builtin_function_that_never_enters_the_eval_loop():
    r = run_py("""
        import os, signal, threading, time, pyconc
        threading.Timer(0.5, lambda: os.kill(os.getpid(), signal.SIGINT)).start()
        t = time.monotonic()
        try:
            pyconc.par_iter(range(10**12)).map(abs).count()
        except KeyboardInterrupt:
            print("interrupted", time.monotonic() - t < 10)
    """)
    assert r.stdout.split() == ["interrupted", "True"], r.stderr


# ---- stress: many threads at once ---------------------------------------------

def test_stress_many_threads_share_the_pool():
    n_threads = 8
    n = stress_scale(20000, 1000)
    errors = []
    results = [None] * n_threads

    def body(t):
        try:
            got = par_iter(range(n)).map(lambda x: x + t).filter(lambda x: x % 2 == 0).collect()
            total = par_iter(list(range(n))).map(lambda x: x * t).sum()
            results[t] = (got == [x + t for x in range(n) if (x + t) % 2 == 0],
                          total == t * n * (n - 1) // 2)
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=body, args=(t,)) for t in range(n_threads)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(120)
    assert not errors
    assert results == [(True, True)] * n_threads


def test_stress_for_each_counts_every_item_once():
    n = stress_scale(100000, 1000)
    seen = bytearray(n)
    lock = threading.Lock()

    def mark(i):
        with lock:
            seen[i] += 1

    par_iter(range(n)).for_each(mark)
    assert seen == bytearray([1]) * n
