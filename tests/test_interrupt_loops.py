"""The tests' own Ctrl-C loops.

On CPython 3.13 the back edge of a ``while cond:`` loop lies outside the
exception table of the ``try``/``with`` around it, so a KeyboardInterrupt
raised there (the signal handler runs at that instruction) escapes the
block: python/cpython#130279.  CI's 3.13.0 run stopped on it in
``test_ctrl_c_during_native_key_sort_leaves_the_list_a_permutation``: the
interrupt the test waited for went past its ``pytest.raises``.  Such loops
go through ``conftest.until_interrupted``, whose loop runs in its own frame.
"""
from __future__ import annotations

import ast
import pathlib
import signal
import threading
import time

import pytest

from conftest import until_interrupted

TESTS = pathlib.Path(__file__).parent


def _expects_interrupt(node: ast.AST) -> bool:
    if isinstance(node, ast.Try):
        return any(h.type is None or any(name in ast.unparse(h.type)
                                         for name in ("KeyboardInterrupt", "BaseException"))
                   for h in node.handlers)
    if isinstance(node, ast.With):
        return any("KeyboardInterrupt" in ast.unparse(item.context_expr) for item in node.items)
    return False


def _guarded_while_loops(tree: ast.AST) -> list[int]:
    """Lines of `while cond:` loops (cond not a constant) run directly, not
    in a nested function, inside a try/with expecting KeyboardInterrupt."""
    found: list[int] = []

    def visit(node: ast.AST, guarded: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
                visit(child, False)  # its own frame: the caller's call is covered
            elif _expects_interrupt(child):
                for stmt in child.body:
                    visit(ast.Module(body=[stmt], type_ignores=[]), True)
                for field in ("handlers", "orelse", "finalbody"):
                    for stmt in getattr(child, field, []):
                        visit(ast.Module(body=[stmt], type_ignores=[]), guarded)
            else:
                if guarded and isinstance(child, ast.While) and not isinstance(child.test, ast.Constant):
                    found.append(child.lineno)
                visit(child, guarded)

    visit(tree, False)
    return found


def test_the_finder_sees_the_loop_that_stopped_ci_and_not_the_safe_forms():
    bad = """
import pytest, time
def test(par_sort, items):
    with pytest.raises(KeyboardInterrupt):
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            par_sort(items)
    try:
        while items:
            items.pop()
    except KeyboardInterrupt:
        pass
"""
    safe = """
import pytest
def test(par_sort, items):
    with pytest.raises(KeyboardInterrupt):
        while True:
            par_sort(items)
    with pytest.raises(KeyboardInterrupt):
        def spin():
            while items:
                par_sort(items)
        spin()
    while items:
        items.pop()
"""
    assert _guarded_while_loops(ast.parse(bad)) == [6, 9]
    assert _guarded_while_loops(ast.parse(safe)) == []


def test_no_test_waits_for_ctrl_c_in_an_inline_while_loop():
    offenders = [f"{path.name}:{line}"
                 for path in sorted(TESTS.glob("*.py"))
                 for line in _guarded_while_loops(ast.parse(path.read_text(), str(path)))]
    assert offenders == [], ("use conftest.until_interrupted (python/cpython#130279)", offenders)


def test_until_interrupted_lets_the_interrupt_reach_the_callers_block():
    # A step in C checks no signal: the handler runs at the loop's back edge,
    # the instruction an inline `while` leaves unguarded on 3.13.
    main_ident = threading.main_thread().ident
    assert main_ident is not None
    timer = threading.Timer(0.05, signal.pthread_kill, (main_ident, signal.SIGINT))
    steps = []
    with pytest.raises(KeyboardInterrupt):
        timer.start()
        until_interrupted(steps.append, seconds=30)
    timer.join()
    assert steps[:3] == [0, 1, 2]


def test_until_interrupted_ends_after_its_time_without_an_interrupt():
    t0 = time.monotonic()
    calls = []
    until_interrupted(calls.append, seconds=0.05)
    assert calls and calls == list(range(len(calls)))
    assert time.monotonic() - t0 >= 0.05
