"""Testing Concurrent Code: the Condvar count_to_10 test."""
from __future__ import annotations

from typing import Callable, List, Tuple

import pyconc
from pyconc import Arc, Condvar, Mutex

TITLE = "Testing concurrent code: three threads take turns with a Condvar"


def count_to_10(shared_data: Arc[Tuple[Mutex[int], Condvar]], thread_num: int, turns: List[int]) -> None:
    """The article's function: count while it is this thread's turn
    (count % 3 == thread_num), otherwise wait on the condvar."""
    mutex, cvar = shared_data.get()  # let &(ref mutex, ref cvar) = &*shared_data;
    with mutex.lock() as count:  # let mut count = mutex.lock().unwrap();
        while count.value < 10:
            if count.value % 3 == thread_num:
                count.value += 1
                turns.append(thread_num)
                cvar.notify_all()
            else:
                count = cvar.wait(count)  # count = cvar.wait(count).unwrap();


def example() -> Tuple[int, List[int]]:
    """test_count_to_10: returns (final count, which thread counted each step)."""
    shared_data = Arc((Mutex(0), Condvar()))
    turns: List[int] = []
    handles = []
    for i in range(3):
        handles.append(pyconc.spawn(count_to_10, shared_data.clone(), i, turns))
    for handle in handles:
        handle.join().unwrap()
    mutex, _ = shared_data.get()
    with mutex.lock() as g:
        return g.value, turns


def run(out: Callable[..., None]) -> None:
    count, turns = example()
    assert count == 10 and turns == [i % 3 for i in range(10)]
    out("running 1 test")
    out(f"test test_count_to_10 ... ok   (count = {count}, turns = {turns})")
