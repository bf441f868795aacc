"""The binding's one argument layer (issue 13): every blocking call that
takes a timeout parses it with the same parser and so fails the same way,
with the same messages, and argument-count errors read as CPython's do."""
from __future__ import annotations

import math
from typing import Any, Callable, Iterator

import pytest

import pyconc


def _calls() -> Iterator[Any]:
    m = pyconc.Mutex(0)
    rw = pyconc.RwLock(0)
    cv = pyconc.Condvar()
    tx, rx = pyconc.sync_channel(1)
    h = pyconc.spawn(lambda: 1)
    h.join()

    def cv_wait_timeout(t: object) -> None:
        g = m.lock()
        try:
            cv.wait_timeout(g, t)
        finally:
            g.unlock()

    yield "park", lambda t: pyconc.park(timeout=t)
    yield "park-positional", lambda t: pyconc.park(t)
    yield "JoinHandle.join", lambda t: h.join(timeout=t)
    yield "Mutex.lock", lambda t: m.lock(timeout=t)
    yield "RwLock.read", lambda t: rw.read(timeout=t)
    yield "RwLock.write", lambda t: rw.write(timeout=t)
    yield "Receiver.recv", lambda t: rx.recv(timeout=t)
    yield "Sender.send", lambda t: tx.send(1, timeout=t)
    yield "select", lambda t: pyconc.select([rx], timeout=t)
    yield "Condvar.wait_timeout", cv_wait_timeout
    # coordination
    sem, ev, n, wg = pyconc.Semaphore(0), pyconc.Event(), pyconc.Notify(), pyconc.WaitGroup()
    yield "Semaphore.acquire", lambda t: sem.acquire(timeout=t)
    yield "Semaphore.acquire-positional", lambda t: sem.acquire(1, t)
    yield "Event.wait", lambda t: ev.wait(timeout=t)
    yield "Notify.wait", lambda t: n.wait(t)
    yield "WaitGroup.wait", lambda t: wg.wait(timeout=t)


CALLS = dict(_calls())


@pytest.mark.parametrize("name", sorted(CALLS))
@pytest.mark.parametrize(
    "bad, exc, message",
    [
        ("1", TypeError, "timeout must be a number of seconds or None, not str"),
        ([1], TypeError, "timeout must be a number of seconds or None, not list"),
        (-1, ValueError, "timeout must be non-negative, got -1"),
        (math.nan, ValueError, "timeout must not be NaN"),
    ],
)
def test_every_timeout_is_parsed_by_one_parser_with_one_set_of_messages(
        name: str, bad: object, exc: type, message: str) -> None:
    call: Callable[[object], object] = CALLS[name]
    with pytest.raises(exc) as info:
        call(bad)
    assert str(info.value) == message


def test_sleep_names_its_own_parameter_in_the_same_messages() -> None:
    with pytest.raises(TypeError, match=r"^seconds must be a number of seconds or None, not str$"):
        pyconc.sleep("1")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^seconds must be non-negative, got -1$"):
        pyconc.sleep(-1)


def test_argument_count_errors_read_as_cpythons() -> None:
    with pytest.raises(TypeError, match=r"^park\(\) takes at most 1 positional argument \(2 given\)$"):
        pyconc.park(1, 2)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match=r"^park\(\) got an unexpected keyword argument 'tmo'$"):
        pyconc.park(tmo=1)  # type: ignore[call-arg]


def test_a_thread_that_cannot_start_raises_the_mapped_error() -> None:
    # the errno map of spawn: a stack size the OS refuses is a ValueError
    with pytest.raises(ValueError):
        pyconc.Builder(stack_size=1).spawn(lambda: 1)
