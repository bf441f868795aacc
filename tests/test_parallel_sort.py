"""par_sort / par_sorted: equal to sorted() for every supported type and
shape of input, list.sort's exact semantics for lists, clean errors for bad
buffers, Ctrl-C leaves a permutation."""
from __future__ import annotations

import array
import math
import random
import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pyconc
from pyconc import par_sort, par_sorted

from conftest import assert_prompt, until_interrupted

INT_FORMATS = {"b": 8, "h": 16, "i": 32, "l": 64, "q": 64}
UINT_FORMATS = {"B": 8, "H": 16, "I": 32, "L": 64, "Q": 64}
SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                              HealthCheck.data_too_large])
SHAPES = ["random", "sorted", "reversed", "few_unique", "all_equal"]


def nan_last_key(x):
    """numpy's order: NaN after everything, ±0 equal."""
    return (1, 0.0) if isinstance(x, float) and math.isnan(x) else (0, x)


def shaped(values, shape):
    if shape == "sorted":
        return sorted(values, key=nan_last_key)
    if shape == "reversed":
        return sorted(values, key=nan_last_key, reverse=True)
    if shape == "few_unique":
        return [values[i % min(3, len(values))] for i in range(len(values))] if values else []
    if shape == "all_equal":
        return [values[0]] * len(values) if values else []
    return values


def int_values(fmt, n, rnd):
    bits = INT_FORMATS.get(fmt) or UINT_FORMATS[fmt]
    signed = fmt in INT_FORMATS
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    edge = [lo, hi, 0, lo + 1, hi - 1]
    return [rnd.choice(edge) if rnd.random() < 0.05 else rnd.randint(lo, hi) for _ in range(n)]


def float_values(fmt, n, rnd):
    specials = [math.nan, -math.nan, math.inf, -math.inf, 0.0, -0.0, 5e-324, -5e-324, 1e308]
    vals = [rnd.choice(specials) if rnd.random() < 0.1 else rnd.uniform(-1e6, 1e6) for _ in range(n)]
    if fmt == "f":  # round to float32 the way array('f') stores them
        vals = [struct.unpack("f", struct.pack("f", v))[0] if abs(v) < 3e38 or math.isinf(v) or math.isnan(v)
                else math.inf for v in vals]
    return vals


def same_bits(a, b):
    """Element-wise equality that tells -0.0 from 0.0 and matches NaNs."""
    if len(a) != len(b):
        return False
    for x, y in zip(a, b):
        if isinstance(x, float):
            if math.isnan(x) != math.isnan(y):
                return False
            if not math.isnan(x) and (x != y or math.copysign(1, x) != math.copysign(1, y)):
                return False
        elif x != y:
            return False
    return True


@SETTINGS
@given(fmt=st.sampled_from(sorted(INT_FORMATS) + sorted(UINT_FORMATS) + ["f", "d"]),
       n=st.one_of(st.integers(0, 40), st.integers(0, 5000), st.sampled_from([2048, 2049, 100_000])),
       shape=st.sampled_from(SHAPES), reverse=st.booleans(), seed=st.integers(0, 2**32))
def test_par_sort_array_equals_stable_sorted_for_every_type(fmt, n, shape, reverse, seed):
    rnd = random.Random(seed)
    vals = float_values(fmt, n, rnd) if fmt in "fd" else int_values(fmt, n, rnd)
    a = array.array(fmt, shaped(vals, shape))
    expected = sorted(a.tolist(), key=nan_last_key, reverse=reverse)
    par_sort(a, reverse=reverse)
    assert same_bits(a.tolist(), expected)


@SETTINGS
@given(dtype=st.sampled_from(["int8", "uint8", "int16", "uint16", "int32", "uint32", "int64",
                              "uint64", "float32", "float64"]),
       n=st.integers(0, 30000), shape=st.sampled_from(SHAPES), seed=st.integers(0, 2**32))
def test_par_sort_numpy_equals_numpy_stable_sort(dtype, n, shape, seed):
    rng = np.random.default_rng(seed)
    if dtype.startswith("float"):
        a = rng.standard_normal(n).astype(dtype) * 1e3
        if n:
            idx = rng.integers(0, n, size=max(1, n // 20))
            a[idx] = rng.choice(np.array([np.nan, -np.nan, np.inf, -np.inf, 0.0, -0.0], dtype=dtype),
                                size=idx.size)
    else:
        info = np.iinfo(dtype)
        a = rng.integers(info.min, info.max, size=n, dtype=dtype, endpoint=True)
    if shape != "random":
        a = np.array(shaped(a.tolist(), shape), dtype=dtype)
    expected = np.sort(a, kind="stable")
    par_sort(a)
    assert a.tobytes() == expected.tobytes() or (
        dtype.startswith("float") and np.array_equal(a, expected, equal_nan=True))


@SETTINGS
@given(st.lists(st.integers(-(2**63), 2**63 - 1), max_size=3000), st.booleans())
def test_par_sorted_int_list_equals_sorted(xs, reverse):
    assert par_sorted(xs, reverse=reverse) == sorted(xs, reverse=reverse)


@SETTINGS
@given(st.lists(st.floats(allow_nan=False), max_size=3000), st.booleans())
def test_par_sorted_float_list_equals_sorted_keeping_zero_order(xs, reverse):
    got = par_sorted(xs, reverse=reverse)
    want = sorted(xs, reverse=reverse)
    assert same_bits(got, want)  # -0.0/0.0 keep list.sort's (stable) order


@SETTINGS
@given(st.lists(st.one_of(st.integers(), st.floats(allow_nan=False), st.booleans()), max_size=300),
       st.booleans())
def test_par_sorted_mixed_and_big_ints_equal_sorted(xs, reverse):
    assert par_sorted(xs, reverse=reverse) == sorted(xs, reverse=reverse)


@SETTINGS
@given(st.lists(st.tuples(st.integers(0, 5), st.integers()), max_size=500), st.booleans())
def test_par_sort_with_key_is_stable_like_list_sort(pairs, reverse):
    got = list(pairs)
    par_sort(got, key=lambda p: p[0], reverse=reverse)
    assert got == sorted(pairs, key=lambda p: p[0], reverse=reverse)


def test_par_sort_large_lists_keep_their_objects():
    rnd = random.Random(5)
    xs = [rnd.randrange(-10**12, 10**12) for _ in range(100_000)]
    ids = {id(x) for x in xs}
    ys = list(xs)
    par_sort(ys)
    assert ys == sorted(xs)
    assert {id(y) for y in ys} == ids  # the same objects, not copies
    fs = [rnd.random() for _ in range(100_000)]
    assert par_sorted(fs, reverse=True) == sorted(fs, reverse=True)


def test_par_sort_reverse_keeps_equal_ints_in_input_order():
    a, b = int("1000000000000007"), int("1000000000000007")  # equal, distinct objects
    assert a is not b
    xs = [a, 3, b] * 1000
    par_sort(xs, reverse=True)
    assert xs[0] is a and xs[1] is b  # like list.sort(reverse=True)


@pytest.mark.parametrize("data,kwargs", [
    ([1, "a", 2], {}),
    ([1, 2], {"reverse": "yes"}),  # list.sort rejects it on 3.11, accepts it on 3.13
    ([1, 2], {"key": 5}),
])
def test_par_sort_list_errors_are_list_sorts(data, kwargs):
    expected, ours = list(data), list(data)
    try:
        expected.sort(**kwargs)
        want = None
    except Exception as e:  # noqa: BLE001 - whatever list.sort raises, we must too
        want = e
    if want is None:
        par_sort(ours, **kwargs)
        assert ours == expected
    else:
        with pytest.raises(type(want)) as info:
            par_sort(ours, **kwargs)
        assert str(info.value) == str(want)
        assert ours == expected  # left exactly as list.sort leaves it


def test_par_sort_nan_lists_follow_list_sort():
    xs = [3.0, math.nan, 1.0, 2.0, math.nan, 0.5]
    assert same_bits(par_sorted(xs), sorted(xs))


def test_par_sort_bytearray_and_memoryview_in_place():
    b = bytearray(b"pyconc sorts bytes")
    par_sort(b)
    assert bytes(b) == bytes(sorted(b"pyconc sorts bytes"))
    arr = array.array("i", [5, -1, 3])
    par_sort(memoryview(arr))
    assert arr.tolist() == [-1, 3, 5]


def test_par_sort_numpy_sorts_without_copy():
    a = np.random.default_rng(0).integers(-1000, 1000, 50_000)
    ptr = a.ctypes.data
    par_sort(a)
    assert a.ctypes.data == ptr and bool(np.all(a[:-1] <= a[1:]))


def test_par_sort_rejects_read_only_buffers_before_touching_data():
    data = b"\x03\x01\x02"
    with pytest.raises(TypeError, match="read-only"):
        par_sort(data)
    a = np.array([3, 1, 2])
    a.setflags(write=False)
    with pytest.raises(TypeError, match="read-only"):
        par_sort(a)
    assert a.tolist() == [3, 1, 2]


def test_par_sort_rejects_strided_and_2d_buffers_before_touching_data():
    a = np.arange(10, 0, -1)
    with pytest.raises(ValueError, match="C-contiguous"):
        par_sort(a[::2])
    m = np.array([[3, 2], [1, 0]])
    with pytest.raises(ValueError, match="one-dimensional"):
        par_sort(m)
    assert a.tolist() == list(range(10, 0, -1)) and m.tolist() == [[3, 2], [1, 0]]


def test_par_sort_rejects_unsupported_formats_and_types():
    with pytest.raises(TypeError, match="format"):
        par_sort(np.array([True, False]))
    with pytest.raises(TypeError, match="format"):
        par_sort(np.array([1, 2], dtype=np.float16))
    with pytest.raises(TypeError, match="format"):
        par_sort(np.array([2, 1], dtype=">i4"))
    with pytest.raises(TypeError, match="list or a writable buffer"):
        par_sort((3, 1, 2))
    with pytest.raises(TypeError, match="list or a writable buffer"):
        par_sort("cba")


def test_par_sort_buffer_with_key_sorts_values_by_key():
    a = array.array("i", [-3, 2, -1, 4])
    par_sort(a, key=abs)
    assert a.tolist() == [-1, 2, -3, 4]


def test_par_sorted_accepts_any_iterable():
    assert par_sorted(x for x in (3, 1, 2)) == [1, 2, 3]
    assert par_sorted("bca") == ["a", "b", "c"]


def test_par_sort_uses_the_installed_pool():
    a = np.random.default_rng(1).standard_normal(200_000)
    with pyconc.ThreadPool(1) as pool:
        pool.install(lambda: par_sort(a))
    assert bool(np.all(a[:-1] <= a[1:]))


@pytest.mark.parametrize("algorithm", ["radix", "merge"])
def test_both_kernels_agree_with_numpy(algorithm):
    rng = np.random.default_rng(7)
    for dtype in ("int64", "float64", "int32", "uint16"):
        a = (rng.standard_normal(70_000) * 1e6).astype(dtype)
        want = np.sort(a, kind="stable")
        pyconc._core._par_sort_buffer(a, False, algorithm)
        assert a.tobytes() == want.tobytes()


def test_ctrl_c_during_long_par_sort_is_prompt_and_leaves_a_permutation(interrupt_main):
    n = 4_000_000
    a = np.random.default_rng(3).permutation(n).astype(np.int64)
    checksum = int(a.sum())

    def step(i):
        a[:] = a[::-1]
        pyconc._core._par_sort_buffer(a, False, "merge")

    with interrupt_main(0.05) as irq:
        with pytest.raises(KeyboardInterrupt):
            until_interrupted(step)  # keep sorting until the interrupt lands
    assert_prompt(irq)
    assert int(a.sum()) == checksum
    assert np.array_equal(np.sort(a), np.arange(n))  # nothing lost or duplicated


def test_ctrl_c_during_long_list_par_sort_leaves_the_list_intact(interrupt_main):
    rnd = random.Random(4)
    xs = [rnd.randrange(10**9) for _ in range(1_000_000)]
    before = sorted(xs)

    def step(i):
        xs.reverse()
        par_sort(xs, reverse=bool(i % 2))

    with interrupt_main(0.05) as irq:
        with pytest.raises(KeyboardInterrupt):
            until_interrupted(step)
    assert_prompt(irq)
    assert sorted(xs) == before
