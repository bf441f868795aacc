"""Ok / Err: Rust's Result as a Python value type."""
from __future__ import annotations

import gc
import pickle
import sys
import warnings

import pytest

import pyconc
from pyconc import Err, Ok, UnwrapError


def test_ok_accessors_and_combinators():
    r = Ok(21)
    assert r.is_ok() and not r.is_err()
    assert r.ok() == 21 and r.err() is None
    assert r.unwrap() == 21 and r.expect("x") == 21
    assert r.unwrap_or(0) == 21 and r.unwrap_or_else(lambda e: 0) == 21
    assert r.map(lambda v: v * 2) == Ok(42)
    assert r.map_err(lambda e: 0) is r
    assert r.and_then(lambda v: Err(v)) == Err(21)
    with pytest.raises(UnwrapError):
        r.unwrap_err()


def test_err_accessors_and_combinators():
    r = Err("boom")
    assert r.is_err() and not r.is_ok()
    assert r.ok() is None and r.err() == "boom"
    assert r.unwrap_err() == "boom"
    assert r.unwrap_or(7) == 7 and r.unwrap_or_else(len) == 4
    assert r.map(lambda v: 1) is r
    assert r.map_err(str.upper) == Err("BOOM")
    assert r.and_then(lambda v: Ok(1)) is r


def test_err_unwrap_reraises_the_exception_itself():
    exc = KeyError("k")
    with pytest.raises(KeyError) as info:
        Err(exc).unwrap()
    assert info.value is exc


def test_err_unwrap_of_a_non_exception_raises_unwraperror():
    with pytest.raises(UnwrapError, match="boom"):
        Err("boom").unwrap()
    with pytest.raises(UnwrapError, match="needed it"):
        Err("boom").expect("needed it")


def test_err_expect_chains_the_exception():
    exc = ValueError("v")
    with pytest.raises(UnwrapError, match="ctx") as info:
        Err(exc).expect("ctx")
    assert info.value.__cause__ is exc


def test_match_statement_destructures_both_variants():
    def describe(r):
        match r:
            case Ok(v):
                return f"ok {v}"
            case Err(e):
                return f"err {e}"

    assert describe(Ok(1)) == "ok 1"
    assert describe(Err("x")) == "err x"


def test_equality_hash_repr_and_immutability():
    assert Ok(1) == Ok(1) and Ok(1) != Ok(2) and Ok(1) != Err(1)
    assert hash(Ok(1)) == hash(Ok(1)) and hash(Ok(1)) != hash(Err(1))
    assert {Ok(1), Ok(1), Err(1)} == {Ok(1), Err(1)}
    assert repr(Ok(42)) == "Ok(42)" and repr(Err("e")) == "Err('e')"
    with pytest.raises(AttributeError):
        Ok(1).value = 2  # type: ignore[misc]
    with pytest.raises(AttributeError):
        Err(1).x = 2  # type: ignore[attr-defined]
    with pytest.raises(TypeError):
        bool(Ok(1))


def test_results_pickle():
    assert pickle.loads(pickle.dumps(Ok([1, 2]))) == Ok([1, 2])
    assert pickle.loads(pickle.dumps(Err("e"))) == Err("e")


def test_uninspected_err_from_a_thread_warns_when_collected_if_the_panic_hook_failed(
        monkeypatch):
    # The panic hook is the report of an exception escaping a thread; when it
    # could not report (it raised), the uninspected Err still warns at GC.
    unraisable = []  # the types only: the report's traceback holds the Err
    monkeypatch.setattr(sys, "unraisablehook", lambda u: unraisable.append(u.exc_type))

    def broken_hook(args):
        raise OSError("the log is gone")

    pyconc.set_panic_hook(broken_hook)
    h = pyconc.spawn(lambda: 1 / 0)
    h.join()  # the Err is returned and dropped unseen
    assert unraisable == [OSError]
    with pytest.warns(RuntimeWarning, match="ZeroDivisionError.*lost|never inspected"):
        del h
        gc.collect()


def test_an_err_the_panic_hook_reported_does_not_warn_again_when_collected(panic_reports):
    # one report per lost exception, not two
    gc.collect()
    h = pyconc.spawn(lambda: 1 / 0)
    h.join()  # dropped unseen
    assert [type(a.exc_value) for a in panic_reports] == [ZeroDivisionError]
    panic_reports.clear()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        del h
        gc.collect()


def test_inspected_err_from_a_thread_does_not_warn():
    h = pyconc.spawn(lambda: 1 / 0)
    assert h.join().is_err()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        del h
        gc.collect()


def test_user_made_err_never_warns():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Err(ValueError("mine"))
        gc.collect()
