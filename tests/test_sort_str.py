"""Lists of str and of bytes sorted natively (issue 14, item 4): exactly
list.sort's order (code point order across the 1-, 2- and 4-byte kinds,
byte order for bytes), stable, reverse= as list.sort defines it, key=
returning strings, the fallbacks (subclasses with their own comparisons,
mixed types), sizes around every threshold, a list changed while it is
sorted, and Ctrl-C."""
from __future__ import annotations

import random
import threading
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pyconc
from pyconc import par_sort, par_sorted

from conftest import assert_prompt, until_interrupted

SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
# NUL (a key pads with it), the ends of each kind, lone surrogates, astral
SPECIAL_CHARS = ["\x00", "\x01", "a", "b", "\x7f", "\x80", "\xff", "\u0100", "\ud7ff", "\ud800",
                 "\udbff", "\udc00", "\udfff", "\ue000", "\uffff", "\U00010000", "\U0001F600",
                 "\U0010FFFF"]
CHARS = st.one_of(st.sampled_from(SPECIAL_CHARS), st.characters(exclude_categories=()))
TEXTS = st.lists(st.text(alphabet=CHARS, max_size=20), max_size=300)
FEW_TEXTS = st.lists(st.sampled_from(["", "a", "a\x00", "ab", "\x00", "abcdefgh", "abcdefgh\x00",
                                      "abcdefghi", "\U0001F600", "\U0001F600\x00", "\uffff"]),
                     max_size=300)
# around the inline limit (2048), the parallel run split (16384), the short
# run limit (32) and the insertion leaves (16)
SIZES = [0, 1, 2, 3, 15, 16, 17, 31, 32, 33, 63, 64, 65, 2047, 2048, 2049, 16383, 16384, 16385]


def fresh(xs):
    """Equal but distinct objects (where CPython does not cache them), so
    the order of equal items -- stability -- is visible through id()."""
    if xs and isinstance(xs[0], bytes):
        return [bytes(bytearray(x)) for x in xs]
    return [x.encode("utf-8", "surrogatepass").decode("utf-8", "surrogatepass") for x in xs]


def check(xs, reverse=False, key=None):
    items = fresh(xs)
    want = sorted(items, key=key, reverse=reverse)
    got = par_sorted(items, key=key, reverse=reverse)
    assert got == want
    assert [id(x) for x in got] == [id(x) for x in want]  # the same objects, stably
    inplace = list(items)
    par_sort(inplace, key=key, reverse=reverse)
    assert [id(x) for x in inplace] == [id(x) for x in want]


@SETTINGS
@given(xs=st.one_of(TEXTS, FEW_TEXTS), reverse=st.booleans())
def test_str_lists_sort_exactly_like_sorted(xs, reverse):
    check(xs, reverse)


@SETTINGS
@given(xs=st.one_of(st.lists(st.binary(max_size=20), max_size=300),
                    st.lists(st.sampled_from([b"", b"\x00", b"a", b"a\x00", b"\xff", b"\xff\x00",
                                              b"abcdefgh", b"abcdefgh\x00", b"abcdefghi"]),
                             max_size=300)),
       reverse=st.booleans())
def test_bytes_lists_sort_exactly_like_sorted(xs, reverse):
    check(xs, reverse)


@SETTINGS
@given(xs=st.lists(st.tuples(st.integers(0, 50), st.text(alphabet=CHARS, max_size=4)),
                   max_size=300),
       reverse=st.booleans())
def test_str_keys_sort_stably_with_one_call_per_item(xs, reverse):
    calls = []

    def key(pair):
        calls.append(pair)
        return pair[1]

    items = [list(p) for p in xs]  # distinct objects even when equal
    want = sorted(items, key=lambda p: p[1], reverse=reverse)
    got = par_sorted(items, key=key, reverse=reverse)
    assert [id(p) for p in got] == [id(p) for p in want]
    assert len(calls) == len(items)


@pytest.mark.parametrize("alphabet", ["ascii", "latin1", "bmp", "astral", "nul"])
def test_every_size_around_the_thresholds(alphabet):
    pools = {"ascii": "abcxyz", "latin1": "ab\xe9\xff", "bmp": "ab\u0101\ud800\uffff",
             "astral": "a\uffff\U00010000\U0010FFFF", "nul": "\x00a"}
    rnd = random.Random(hash(alphabet) & 0xFFFF)
    chars = pools[alphabet]
    for n in SIZES:
        xs = ["".join(rnd.choices(chars, k=rnd.randint(0, 11))) for _ in range(n)]
        for reverse in (False, True):
            check(xs, reverse)
            check([x.encode("utf-8", "surrogatepass") for x in xs], reverse)


def test_mixed_kinds_compare_by_code_point():
    # one 4-byte string makes every key use 21-bit code points; the order
    # between kinds is the code point order
    base = ["\xff", "\u0100", "\uffff", "\U00010000", "a", "", "\x00", "\ud800", "\udfff"]
    rnd = random.Random(5)
    xs = [rnd.choice(base) + rnd.choice(base) + rnd.choice(base) for _ in range(20000)]
    for reverse in (False, True):
        check(xs, reverse)
    # lists with a wider kind key on 8 bytes of UTF-8: characters of 1-4
    # bytes straddling the 8th byte, after prefixes of every byte length
    parts = ["a", "\x00", "\xe9", "\u0800", "\ud800", "\uffff", "\U0001F600", "\U0010FFFF"]
    ys = ["".join(rnd.choice(parts) for _ in range(rnd.randint(0, 7))) for _ in range(30000)]
    ys += ["abcdef" + y for y in ys[:5000]] + ["abcdefg" + y for y in ys[:5000]]
    for reverse in (False, True):
        check(ys, reverse)


def test_long_common_prefixes_and_deep_ties():
    rnd = random.Random(9)
    urls = [f"https://example.org/path/{rnd.randrange(10**6):06d}/{rnd.choice('ab')}"
            for _ in range(30000)]
    check(urls)
    check(urls, reverse=True)
    # each string a window longer than the next: a run that shrinks by one
    # item per level (past the recursion limit), and long duplicates
    staircase = ["x" * (8 * i) + "y" for i in range(200)] + ["x" * (8 * i) for i in range(200)]
    rnd.shuffle(staircase)
    check(staircase)
    check(staircase, reverse=True)
    dups = ["q" * 5000] * 300 + ["q" * 4999 + "r"] * 300 + ["q" * 5001] * 300
    rnd.shuffle(dups)
    check(dups)
    check([x.encode() for x in dups], reverse=True)
    wide = ["\U0001F600" * 40 + c for c in "cab" * 2000]
    check(wide)


def test_million_random_words_ascii_and_non_ascii():
    rnd = random.Random(13)
    for chars in ("abcdefghijklmnopqrstuvwxyz",
                  "abcdefghijklmnop\xe9\xfc\u0434\u044f\u4e2d\u6587\U0001F600"):
        xs = ["".join(rnd.choices(chars, k=rnd.randint(1, 12))) for _ in range(200_000)]
        assert par_sorted(xs) == sorted(xs)
        assert par_sorted(xs, reverse=True) == sorted(xs, reverse=True)


class Plain(str):
    pass


class Backwards(str):
    def __lt__(self, other):  # type: ignore[override]
        return str.__gt__(self, other)


class BytesBackwards(bytes):
    def __lt__(self, other):  # type: ignore[override]
        return bytes.__gt__(self, other)


def test_subclasses_with_their_own_comparisons_take_list_sort():
    rnd = random.Random(2)
    words = ["".join(rnd.choices("abc", k=3)) for _ in range(3000)]
    for cls in (Backwards,):
        xs = [cls(w) for w in words]
        assert pyconc._core._par_sort_list(list(xs), False) is False
        assert par_sorted(xs) == sorted(xs)  # list.sort calls Backwards.__lt__
        assert [type(x) for x in par_sorted(xs)] == [cls] * len(xs)
    bs = [BytesBackwards(w.encode()) for w in words]
    assert pyconc._core._par_sort_list(list(bs), False) is False
    assert par_sorted(bs) == sorted(bs)
    # one such item among plain strings also sends the list to list.sort
    mixed = words[:-1] + [Backwards(words[-1])]
    assert pyconc._core._par_sort_list(list(mixed), False) is False
    assert [id(x) for x in par_sorted(mixed)] == [id(x) for x in sorted(mixed)]


def test_subclasses_inheriting_str_comparison_sort_natively():
    rnd = random.Random(3)
    xs = [Plain("".join(rnd.choices("abc\u0101", k=4))) if i % 3 else
          "".join(rnd.choices("abc\u0101", k=4)) for i in range(5000)]
    assert pyconc._core._par_sort_list(list(xs), False) is True
    check(xs)
    check(xs, reverse=True)


def test_mixed_types_raise_as_list_sort():
    for xs in (["a", b"a", "b"] * 1000, ["a", 1, "b"] * 1000, [b"a", "a"] * 1000):
        with pytest.raises(TypeError) as want:
            sorted(xs)
        ys = list(xs)
        with pytest.raises(TypeError) as got:
            par_sort(ys)
        assert str(got.value) == str(want.value)
        assert pyconc._core._par_sort_list(list(xs), False) is False


def test_list_changed_by_another_thread_while_sorting():
    # Another thread grows and rewrites the list while it is sorted: either
    # the sort completes (it saw no change) or ValueError as list.sort
    # raises; no crash, and the list holds only the strings put there.
    rnd = random.Random(4)
    base = ["".join(rnd.choices("abcdef\u0101", k=rnd.randint(1, 20))) for _ in range(200_000)]
    stop = threading.Event()
    xs = list(base)
    allowed = set(base) | {"new"}

    def meddle():
        while not stop.is_set():
            try:
                xs.append("new")
                xs[len(xs) // 2] = "new"
                del xs[-1]
            except IndexError:
                pass
            time.sleep(0)

    t = threading.Thread(target=meddle)
    t.start()
    try:
        outcomes = set()
        for _ in range(10):
            try:
                par_sort(xs)
                outcomes.add("sorted")
            except ValueError as e:
                assert "modified" in str(e)
                outcomes.add("modified")
    finally:
        stop.set()
        t.join()
    assert outcomes
    assert all(type(x) is str and x in allowed for x in xs)


def test_ctrl_c_during_string_sort_leaves_a_permutation(interrupt_main):
    rnd = random.Random(6)
    items = ["".join(rnd.choices("abcdefgh\u0101", k=rnd.randint(5, 30))) for _ in range(1_000_000)]
    ids = sorted(map(id, items))

    def step(i):
        items.reverse()
        par_sort(items, reverse=bool(i % 2))

    with interrupt_main(0.05) as irq:
        with pytest.raises(KeyboardInterrupt):
            until_interrupted(step)
    assert_prompt(irq)
    assert sorted(map(id, items)) == ids
