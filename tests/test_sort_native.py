"""The native sort paths of issue 14: the adaptive MSD radix kernel at every
size where it changes strategy, floats sorted as bit patterns (and the
fallback when -0.0 or NaN is present), par_argsort, key= sorted natively,
list.sort's argument checks for buffers, and Ctrl-C on each new path."""
from __future__ import annotations

import array
import math
import random

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pyconc
from pyconc import par_argsort, par_sort, par_sorted

from conftest import assert_prompt, until_interrupted

SETTINGS = settings(max_examples=30, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
DTYPES = ["int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64", "float32",
          "float64"]
# every size where the kernels change strategy, and one either side: the
# leaves (4, 24), merge vs radix (128, 512), the float bit path (512), the
# parallel node (65536), plus the usual 0, 1, 2, 63, 64, 65
THRESHOLDS = sorted({m + d for m in (0, 1, 2, 4, 24, 64, 128, 512, 1024, 2048, 4096, 65536)
                     for d in (-1, 0, 1) if m + d >= 0})


def values(dtype: str, n: int, rng: np.random.Generator, shape: str) -> np.ndarray:
    if dtype.startswith("float"):
        a = (rng.standard_normal(n) * 1e3).astype(dtype)
        if shape == "specials" and n:
            idx = rng.integers(0, n, size=max(1, n // 10))
            a[idx] = rng.choice(np.array([np.nan, -np.nan, np.inf, -np.inf, 0.0, -0.0], dtype=dtype),
                                size=idx.size)
    else:
        info = np.iinfo(dtype)
        a = rng.integers(info.min, info.max, size=n, dtype=dtype, endpoint=True)
    if shape == "few":
        a = a[rng.integers(0, 16, size=n) % max(1, min(n, 16))] if n else a
    elif shape == "small_range":
        a = rng.integers(0, 1001, size=n).astype(dtype)
    elif shape == "sorted":
        a = np.sort(a, kind="stable")
    elif shape == "reversed":
        a = np.sort(a, kind="stable")[::-1].copy()
    return a


@pytest.mark.parametrize("dtype", DTYPES)
def test_par_sort_equals_numpy_stable_sort_bit_for_bit_at_every_threshold(dtype):
    rng = np.random.default_rng(11)
    for n in THRESHOLDS:
        for shape in ("random", "few", "small_range", "specials"):
            a = values(dtype, n, rng, shape)
            want = np.sort(a, kind="stable")
            par_sort(a)
            assert a.tobytes() == want.tobytes(), (dtype, n, shape)


@SETTINGS
@given(dtype=st.sampled_from(DTYPES), n=st.sampled_from(THRESHOLDS + [100_000, 300_000]),
       shape=st.sampled_from(["random", "few", "small_range", "specials", "sorted", "reversed"]),
       reverse=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_par_sort_matches_numpy_for_every_dtype_and_shape(dtype, n, shape, reverse, seed):
    a = values(dtype, n, np.random.default_rng(seed), shape)
    # numpy has no stable descending sort: reverse=True is the stable sort of
    # the reversed order, i.e. list.sort(reverse=True) -- equal keys in input order
    want = sorted(a.tolist(), key=lambda x: (1, 0.0) if x != x else (0, x), reverse=reverse)
    par_sort(a, reverse=reverse)
    got = a.tolist()
    assert len(got) == len(want)
    for x, y in zip(got, want):
        assert (x == y or (x != x and y != y)) and math.copysign(1, x) == math.copysign(1, y)


# One thread takes the parallel node too from 65536 elements (its counting
# sort and skewed-digit table; it used to take the sequential MSD steps up
# to a million), and floats from 512 elements take the bit path, whose
# in-cache finish sorts on every bit when exponents differ.
@pytest.mark.parametrize("dtype", ["int64", "uint64", "int32", "uint32", "float64", "float32"])
def test_one_thread_sorts_like_numpy_on_the_parallel_node_and_the_float_finish(dtype):
    rng = np.random.default_rng(31)
    with pyconc.ThreadPool(1) as pool:
        for n in (511, 512, 513, 3000, 16385, 65535, 65536, 65537, 300_001, 1_000_000):
            for shape in ("random", "few", "small_range", "specials", "reversed"):
                a = values(dtype, n, rng, shape)
                want = np.sort(a, kind="stable")
                pool.install(lambda: par_sort(a))
                assert a.tobytes() == want.tobytes(), (dtype, n, shape)


def test_float_bit_path_keeps_signed_zeros_and_nans_in_input_order():
    rng = np.random.default_rng(5)
    for n in (4095, 4096, 200_000):
        a = rng.standard_normal(n)
        a[rng.integers(0, n, 50)] = -0.0
        a[rng.integers(0, n, 50)] = 0.0
        nans = np.array([np.nan, -np.nan], dtype=np.float64)
        a[rng.integers(0, n, 20)] = nans[rng.integers(0, 2, 20)]
        want = np.sort(a, kind="stable")
        par_sort(a)
        assert a.tobytes() == want.tobytes()


def test_sixteen_distinct_values_and_small_ranges_sort_like_numpy():
    rng = np.random.default_rng(9)
    for dtype in ("int64", "float64", "int32", "uint64"):
        a = rng.integers(0, 16, 2_000_000).astype(dtype) * 3
        b = rng.integers(0, 1001, 1_000_000).astype(dtype)
        wa, wb = np.sort(a), np.sort(b)
        par_sort(a)
        par_sort(b)
        assert np.array_equal(a, wa) and np.array_equal(b, wb)


@SETTINGS
@given(dtype=st.sampled_from(DTYPES), n=st.sampled_from(THRESHOLDS + [100_000]),
       shape=st.sampled_from(["random", "few", "specials", "sorted", "reversed"]),
       seed=st.integers(0, 2**32 - 1))
def test_par_argsort_equals_numpy_stable_argsort(dtype, n, shape, seed):
    a = values(dtype, n, np.random.default_rng(seed), shape)
    got = par_argsort(a)
    assert isinstance(got, np.ndarray) and got.dtype == np.int64
    assert np.array_equal(got, np.argsort(a, kind="stable"))


def test_par_argsort_of_array_array_is_an_int64_array_and_accepts_read_only():
    got = par_argsort(array.array("d", [3.0, -0.0, 1.0, 0.0, math.nan, 1.0]))
    assert isinstance(got, array.array) and got.typecode == "q"
    assert got.tolist() == [1, 3, 2, 5, 0, 4]
    assert par_argsort(b"\x03\x01\x02").tolist() == [1, 2, 0]


def test_par_argsort_rejects_what_par_sort_rejects():
    with pytest.raises(ValueError, match="one-dimensional"):
        par_argsort(np.zeros((2, 2)))
    with pytest.raises(ValueError, match="C-contiguous"):
        par_argsort(np.arange(10)[::2])
    with pytest.raises(TypeError, match="format"):
        par_argsort(np.array([1, 2], dtype=np.float16))
    with pytest.raises(TypeError, match="buffer"):
        par_argsort([3, 1, 2])


class Obj:
    __slots__ = ("k",)

    def __init__(self, k):
        self.k = k


@SETTINGS
@given(keys=st.one_of(
    st.lists(st.integers(-2**63, 2**63 - 1), max_size=3000),
    st.lists(st.integers(-5, 5), max_size=3000),
    st.lists(st.floats(allow_nan=False), max_size=3000),
    st.lists(st.sampled_from([0.0, -0.0, 1.5, -1.5, math.inf]), max_size=3000),
    st.lists(st.one_of(st.integers(-3, 3), st.floats(allow_nan=False)), max_size=50),
    st.lists(st.integers(-2**70, 2**70), max_size=50),
    st.lists(st.text(max_size=3), max_size=50)),
    reverse=st.booleans())
def test_key_sorts_like_list_sort_stably_with_one_call_per_item(keys, reverse):
    items = [Obj(k) for k in keys]
    calls = []

    def key(o):
        calls.append(o)
        return o.k

    want = sorted(items, key=lambda o: o.k, reverse=reverse)
    got = par_sorted(items, key=key, reverse=reverse)
    assert [id(o) for o in got] == [id(o) for o in want]  # same objects, same (stable) order
    assert len(calls) == len(items)


def test_key_path_is_native_for_float_and_int_keys():
    items = [Obj(random.Random(1).random()) for _ in range(3)]
    assert pyconc._core._par_sort_list(list(items), False, [o.k for o in items]) is True
    assert pyconc._core._par_sort_list(list(items), False, [str(o.k) for o in items]) is True
    assert pyconc._core._par_sort_list(list(items), False, [(o.k,) for o in items]) is False
    with pytest.raises(ValueError, match="modified"):
        pyconc._core._par_sort_list(list(items), False, [1, 2])


def test_key_errors_are_list_sorts():
    for keyf in (lambda x: 1 / x, lambda x: "a" if x else 1):
        data = [3, 0, 2, 1]
        want_exc = None
        expected = list(data)
        try:
            expected.sort(key=keyf)
        except Exception as e:  # noqa: BLE001
            want_exc = e
        ours = list(data)
        with pytest.raises(type(want_exc)) as info:
            par_sort(ours, key=keyf)
        assert str(info.value) == str(want_exc) and ours == expected


def test_buffers_check_reverse_as_list_sort_does():
    want = None
    try:
        [2, 1].sort(reverse="yes")  # type: ignore[arg-type]
    except Exception as e:  # noqa: BLE001 - list.sort is the reference
        want = e
    a = np.array([2, 1])
    if want is None:
        par_sort(a, reverse="yes")  # type: ignore[arg-type]
        assert a.tolist() == [2, 1]
    else:
        with pytest.raises(type(want), match=str(want)):
            par_sort(a, reverse="yes")  # type: ignore[arg-type]
        assert a.tolist() == [2, 1]  # untouched


def test_zero_dim_buffers_raise_with_and_without_key():
    for kwargs in ({}, {"key": abs}):
        a = np.array(5)
        with pytest.raises(ValueError):
            par_sort(a, **kwargs)
        assert int(a) == 5


def test_ctrl_c_during_float_bit_path_leaves_the_original_floats(interrupt_main):
    n = 4_000_000
    a0 = np.random.default_rng(3).standard_normal(n)
    a = a0.copy()

    def step(i):
        a[:] = a0
        par_sort(a)

    with interrupt_main(0.05) as irq:
        with pytest.raises(KeyboardInterrupt):
            until_interrupted(step)
    assert_prompt(irq)
    assert np.sort(a).tobytes() == np.sort(a0).tobytes()  # the floats, not their keys


def test_ctrl_c_during_par_argsort_is_prompt(interrupt_main):
    a = np.random.default_rng(4).integers(0, 2**40, 3_000_000)
    with interrupt_main(0.05) as irq:
        with pytest.raises(KeyboardInterrupt):
            until_interrupted(lambda i: par_argsort(a))
    assert_prompt(irq)


def test_ctrl_c_during_native_key_sort_leaves_the_list_a_permutation(interrupt_main):
    rnd = random.Random(6)
    items = [Obj(rnd.random()) for _ in range(1_000_000)]
    ids = sorted(map(id, items))

    def step(i):
        items.reverse()
        par_sort(items, key=lambda o: o.k, reverse=bool(i % 2))

    with interrupt_main(0.05) as irq:
        with pytest.raises(KeyboardInterrupt):
            until_interrupted(step)
    assert_prompt(irq)
    assert sorted(map(id, items)) == ids


@pytest.mark.parametrize("dtype", ["int64", "uint64", "int32", "uint32", "float64", "float32"])
def test_in_place_path_for_huge_arrays_sorts_like_numpy(dtype, monkeypatch):
    # the path a 1e9-element array takes (no full-size scratch buffer),
    # switched on from 4096 elements through the core's knob
    monkeypatch.setenv("PYCONC_SORT_INPLACE_MIN", "4096")
    rng = np.random.default_rng(21)
    for n in (4095, 4096, 4097, 300_000):
        for shape in ("random", "few", "small_range"):
            a = values(dtype, n, rng, shape)
            for reverse in (False, True):
                b = a.copy()
                want = np.sort(b, kind="stable")
                par_sort(b, reverse=reverse)
                assert np.array_equal(b, want[::-1] if reverse else want), (dtype, n, shape)


def test_ctrl_c_during_in_place_path_leaves_a_permutation(interrupt_main, monkeypatch):
    monkeypatch.setenv("PYCONC_SORT_INPLACE_MIN", "4096")
    n = 4_000_000
    a0 = np.random.default_rng(8).integers(-2**62, 2**62, n)
    a = a0.copy()

    def step(i):
        a[:] = a0
        par_sort(a)

    with interrupt_main(0.05) as irq:
        with pytest.raises(KeyboardInterrupt):
            until_interrupted(step)
    assert_prompt(irq)
    assert np.array_equal(np.sort(a), np.sort(a0))


@pytest.mark.parametrize("dtype", ["int64", "uint64", "int32", "float64", "float32", "int16"])
def test_reversed_input_is_reversed_in_one_pass_or_left_for_the_sort(dtype):
    # The test and the reversal run together, chunk by chunk from both ends;
    # one pair out of place anywhere (a chunk boundary, the middle, the
    # ends) must undo every chunk's swaps and sort normally.
    rng = np.random.default_rng(17)
    for n in (2, 3, 4, 5, 25, 26, 4097, 2**17 - 1, 2**17, 2**17 + 1, 2**18 + 3):
        base = np.sort(values(dtype, n, rng, "random"), kind="stable")
        base = np.unique(base)[::-1].copy() if dtype != "int16" else base[::-1].copy()
        m = len(base)
        spots = {0, 1, m // 2 - 1, m // 2, m - 2, m // 4, m // 4 - 1, (m + 1) // 4, m // 8}
        for reverse in (False, True):
            for pos in [None] + sorted(p for p in spots if 0 <= p < m - 1):
                a = base.copy()
                if reverse:
                    a = a[::-1].copy()
                if pos is not None:
                    a[pos], a[pos + 1] = a[pos + 1], a[pos]
                want = np.sort(a, kind="stable")
                if reverse:
                    want = want[::-1]
                got = a.copy()
                par_sort(got, reverse=reverse)
                assert got.tobytes() == want.tobytes(), (dtype, n, pos, reverse)


def test_reversed_floats_with_signed_zeros_and_nans_keep_equal_keys_in_order():
    n = 200_000
    a = np.linspace(1000.0, -1000.0, n)  # strictly decreasing...
    a[n // 2] = 0.0
    a[n // 2 + 1] = -0.0  # ...except two equal keys: not strictly reversed
    got = a.copy()
    par_sort(got)
    assert got.tobytes() == np.sort(a, kind="stable").tobytes()
    b = np.linspace(1000.0, -1000.0, n)
    b[-1] = np.nan  # a NaN fails the float test: sorted, NaN last
    got = b.copy()
    par_sort(got)
    assert got.tobytes() == np.sort(b, kind="stable").tobytes()
    c = np.sort(b, kind="stable")  # presorted with a NaN at the end
    got = c.copy()
    par_sort(got)
    assert got.tobytes() == c.tobytes()


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_floats_with_few_bit_patterns_are_counted_exactly_like_numpy(dtype):
    # one sign, bits varying in at most 16 places, no NaN: a counting sort
    # on the floats themselves; everything else falls through to the radix
    rng = np.random.default_rng(23)
    pools = {
        "positive": np.arange(16, dtype=dtype),
        "negative": -np.arange(16, dtype=dtype) - 0.5,
        "negative with -0.0": np.array([-0.0, -1.0, -2.0, -3.0, -np.inf], dtype=dtype),
        "with +inf": np.array([0.0, 1.0, 2.0, np.inf], dtype=dtype),
        "with a NaN": np.array([1.0, 2.0, np.nan, 3.0], dtype=dtype),
        "with NaNs of two payloads": np.array(
            [1.0, np.nan, -np.nan, 2.0], dtype=dtype),
        "mixed signs": np.array([-1.0, 1.0, 0.0, -0.0], dtype=dtype),
        "one value": np.array([7.0], dtype=dtype),
    }
    for name, pool in pools.items():
        for n in (4095, 4096, 2**16 - 1, 2**16, 2**16 + 1, 2**19 + 1, 2**20):
            a = pool[rng.integers(0, len(pool), n)]
            for reverse in (False, True):
                got = a.copy()
                par_sort(got, reverse=reverse)
                want = np.sort(a, kind="stable")
                if reverse:
                    # descending, equal keys (and NaNs) in input order
                    keys = np.where(np.isnan(a), np.inf, a)
                    order = np.argsort(-keys, kind="stable") if not np.isnan(a).any() else None
                    if order is None:
                        nan_first = a[np.isnan(a)]
                        rest = a[~np.isnan(a)]
                        want = np.concatenate([nan_first, rest[np.argsort(-rest, kind="stable")]])
                    else:
                        want = a[order]
                assert got.tobytes() == want.tobytes(), (name, n, reverse)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_presorted_floats_with_nans_where_they_sort_are_left_as_they_are(dtype):
    rng = np.random.default_rng(31)
    for n in (4096, 100_000, 300_001):
        a = np.sort(rng.standard_normal(n)).astype(dtype)
        a[-5:] = [np.nan, -np.nan, np.nan, np.nan, -np.nan]  # NaNs last, any payloads
        got = a.copy()
        par_sort(got)
        assert got.tobytes() == a.tobytes()
        desc = np.concatenate([a[-5:], a[:-5][::-1]])  # NaNs first with reverse=True
        got = desc.copy()
        par_sort(got, reverse=True)
        assert got.tobytes() == desc.tobytes()
        bad = a.copy()
        bad[n // 2] = np.nan  # a NaN in the middle: sorted like numpy
        got = bad.copy()
        par_sort(got)
        assert got.tobytes() == np.sort(bad, kind="stable").tobytes()


# The in-cache finish (a range of 512 elements up to 128 KiB, or 256 KiB
# but for whole float64 arrays): LSD passes on the top ~lg(n)+6 varying
# bits, then an insertion sort with a budget; keys that share long prefixes
# but differ below them (clusters) exceed the budget and fall back to the
# MSD recursion.  Sizes at its edges (65536 is also where the parallel node
# begins).
LSDF_SIZES = [511, 512, 513, 4096, 16383, 16384, 16385, 32767, 32768, 32769,
              65535, 65536, 65537]


@pytest.mark.parametrize("dtype", ["int64", "uint64", "int32", "uint32", "float64", "float32"])
@pytest.mark.parametrize("threads", [1, 2])
def test_in_cache_finish_sorts_clustered_prefixes_like_numpy(dtype, threads):
    rng = np.random.default_rng(5)
    bits = np.dtype(dtype).itemsize * 8
    with pyconc.ThreadPool(threads) as pool:
        for n in LSDF_SIZES:
            for high in (1, 2, 4, 64):  # distinct values of the top part
                top = rng.integers(0, high, size=n).astype(np.uint64) << np.uint64(bits - 8)
                low = rng.integers(0, 1 << (bits // 2 - 4), size=n).astype(np.uint64)
                raw = (top | low).astype(f"uint{bits}")
                a = raw.view(dtype) if dtype.startswith("float") else raw.astype(dtype)
                a = a[~np.isnan(a)] if dtype.startswith("float") else a
                want = np.sort(a, kind="stable")
                got = a.copy()
                pool.install(lambda: par_sort(got))
                assert got.tobytes() == want.tobytes(), (dtype, n, high)


# From 2^19 elements (the core's LUT_MIN) the top level counts first the
# digit below the top bit that varies in a sample (every (n // 16384)-th element) rather than
# the type's top digit: right for keys in a narrow range, and a full recount
# when a key the sample missed varies higher (outliers at indices 1-3).
@pytest.mark.parametrize("dtype", ["int32", "uint32", "int64", "uint64", "float32", "float64"])
@pytest.mark.parametrize("threads", [1, 2])
def test_keys_varying_below_the_top_past_the_table_threshold_sort_like_numpy(dtype, threads):
    rng = np.random.default_rng(23)
    n = (1 << 19) + 3
    info = np.finfo(dtype) if dtype.startswith("float") else np.iinfo(dtype)
    if dtype.startswith("float"):
        narrow = (1.0 + rng.integers(0, 1 << 20, n) / (1 << 20)).astype(dtype)
        far = [info.max, -1.0, 3.0]
    else:
        narrow = rng.integers(0, 1 << 20, n).astype(dtype)
        far = [info.max, info.min if info.min < 0 else 1 << 25, 1 << 21]
    outliers = narrow.copy()
    outliers[1:4] = far
    with pyconc.ThreadPool(threads) as pool:
        for name, a in (("narrow", narrow), ("outliers", outliers)):
            want = np.sort(a, kind="stable")
            pool.install(lambda: par_sort(a))
            assert a.tobytes() == want.tobytes(), name


# Random floats crowd a few exponents, so the first radix digit of 2^19+ of
# them is skewed: the top level buckets them through a table built from a
# sample instead.  Normal and lognormal data, a narrow band, outliers the
# sample misses, and with -0.0/NaN (the keyed-on-the-fly float kernels) on
# 1 and 2 threads.  Normal float32 data gives a table whose every entry is
# its bucket (16-bit entries); normal float64 one whose heavy 16-bit values
# are split further (32-bit entries).
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("threads", [1, 2])
def test_skewed_floats_past_the_table_threshold_sort_like_numpy(dtype, threads):
    rng = np.random.default_rng(17)
    n = (1 << 19) + 1
    cases = {
        "normal": rng.standard_normal(n),
        "lognormal": rng.lognormal(0, 3, n),
        "band": 1.0 + rng.random(n) * 1e-6,
        # keys varying above every sampled key's bits (the sample takes
        # every (n // 65536)-th element): the table is dropped after the count
        "outliers": np.concatenate([[1.0, -5.0, 3.0, -3e38], np.abs(rng.standard_normal(n - 4))]),
        "specials": np.where(rng.random(n) < 0.01,
                             rng.choice([np.nan, -0.0, 0.0, np.inf, -np.inf], n),
                             rng.standard_normal(n)),
    }
    with pyconc.ThreadPool(threads) as pool:
        for name, v in cases.items():
            a = v.astype(dtype)
            want = np.sort(a, kind="stable")
            pool.install(lambda: par_sort(a))
            assert a.tobytes() == want.tobytes(), name
            if name != "specials":
                continue
            b = v.astype(dtype)
            pool.install(lambda: par_sort(b, reverse=True))
            # list.sort(reverse=True)'s order: NaNs first, equal keys in input order
            rev = np.array(sorted(v.astype(dtype).tolist(),
                                  key=lambda x: (1, 0.0) if x != x else (0, x), reverse=True),
                           dtype=dtype)
            assert np.array_equal(b, rev, equal_nan=True), name
            assert np.array_equal(np.signbit(b), np.signbit(rev)), name


# Below 2^19 keys no table is built: floats whose exponents vary take
# the sign and exponent bits as their first digit instead (then the
# mantissas spread evenly); arrays that fit the cache are sorted by the
# in-cache finish on as many top bits as their exponents call for.
# Exponents near and far, one sign or both, subnormals and infinities,
# sizes from a few hundred to either side of the parallel node.
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("threads", [1, 2])
def test_floats_with_varying_exponents_below_the_table_threshold_sort_like_numpy(dtype, threads):
    rng = np.random.default_rng(41)
    tiny = np.finfo(dtype).smallest_subnormal
    with pyconc.ThreadPool(threads) as pool:
        for n in (600, 3_000, 20_000, 65_537, 300_001, (1 << 19) - 1):
            cases = {
                "normal": rng.standard_normal(n),
                "lognormal": rng.lognormal(0, 3, n),
                "uniform01": rng.random(n),
                "negative": -rng.lognormal(0, 1, n),
                "subnormal+inf": np.where(rng.random(n) < 0.05,
                                          rng.choice([np.inf, -np.inf, tiny, -tiny, 3 * tiny], n),
                                          rng.standard_normal(n)),
            }
            for name, v in cases.items():
                a = v.astype(dtype)
                want = np.sort(a, kind="stable")
                pool.install(lambda: par_sort(a))
                assert a.tobytes() == want.tobytes(), (n, name)


# The scratch buffer of the last large sort is kept for the next one (and
# lazily freed meanwhile).  Threads sorting arrays of different sizes at
# once take it, replace it when it is too small and return it; every sort
# stays exact, including an argsort (16-byte records) after int32 sorts,
# and _sort_release_scratch() unmaps what is kept.
@pytest.mark.thread_unsafe(reason="counts the one process-wide kept buffer")
def test_the_kept_scratch_buffer_serves_concurrent_sorts_of_any_size():
    import threading

    from pyconc import _core

    errors = []

    def worker(seed):
        rng = np.random.default_rng(seed)
        try:
            for n, dtype in [((1 << 20) + 9, "int64"), ((3 << 20) + 1, "int32"),
                             ((3 << 19) + 3, "float64"), ((1 << 20) + 5, "float32")]:
                a = rng.standard_normal(n).astype(dtype) if dtype[0] == "f" else \
                    rng.integers(-2**31, 2**31, n).astype(dtype)
                want = np.sort(a, kind="stable")
                par_sort(a)
                if a.tobytes() != want.tobytes():
                    errors.append((seed, n, dtype))
            k = rng.integers(-50, 50, 600_000)
            if not np.array_equal(par_argsort(k), np.argsort(k, kind="stable")):
                errors.append((seed, "argsort"))
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    ts = [threading.Thread(target=worker, args=(s,)) for s in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert errors == []
    assert _core._sort_release_scratch() >= (1 << 23)
    assert _core._sort_release_scratch() == 0
    a = np.random.default_rng(1).integers(0, 1 << 40, 100_000)
    want = np.sort(a)
    par_sort(a)  # small sorts (scratch under 8 MiB) keep nothing
    assert _core._sort_release_scratch() == 0 and np.array_equal(a, want)
