"""The article, section by section: each example as a test asserting what
the article says happens.  Sections follow the article's order; the tour
(``python -m pyconc tour``) runs the same examples live."""
from __future__ import annotations

import pyconc
from pyconc import Err, Ok


# ---------------------------------------------------------------------------
# Threads in Rust: Creating and Joining Threads
# ---------------------------------------------------------------------------


def test_creating_and_joining_threads_match_on_join():
    from pyconc.tour.s10_threads import example

    assert example() == ("ok", "code executed in the new thread")


def test_join_returns_err_when_the_thread_fails():
    handle = pyconc.spawn(lambda: [][0])
    match handle.join():
        case Ok(_):
            raise AssertionError("expected Err")
        case Err(e):
            assert isinstance(e, IndexError)


# ---------------------------------------------------------------------------
# Sharing Data Between Threads: Shared Ownership (Arc)        [sync area]
# ---------------------------------------------------------------------------


# ---------------------------------------------------------------------------
# Sharing Data Between Threads: Message Passing               [channels area]
# ---------------------------------------------------------------------------


# ---------------------------------------------------------------------------
# Concurrency Patterns: Mutexes and Locks                     [sync area]
# ---------------------------------------------------------------------------


# ---------------------------------------------------------------------------
# Concurrency Patterns: Channels (the deadline worker)        [channels area]
# ---------------------------------------------------------------------------


# ---------------------------------------------------------------------------
# Concurrency Patterns: Arc (three files, Arc<Mutex<Vec>>)    [sync area]
# ---------------------------------------------------------------------------


# ---------------------------------------------------------------------------
# Error Handling in Concurrent Code                           [channels area]
# ---------------------------------------------------------------------------


# ---------------------------------------------------------------------------
# Testing Concurrent Code (Condvar count_to_10)               [sync area]
# ---------------------------------------------------------------------------


# ---------------------------------------------------------------------------
# Parallel Programming With Rayon (merge_sort_par)            [parallel area]
# ---------------------------------------------------------------------------


# ---------------------------------------------------------------------------
# Async Programming in Rust (Tokio)                           [async area]
# ---------------------------------------------------------------------------
