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


def test_rayon_merge_sort_par_sorts_the_articles_array():
    from pyconc.tour.s90_rayon import example

    assert example() == [1, 2, 3, 4, 5, 6, 7, 8, 9]
    assert pyconc.merge_sort([8, 2, 5, 9, 1, 3, 7, 6, 4]) == [1, 2, 3, 4, 5, 6, 7, 8, 9]


def test_rayon_join_runs_both_closures_and_returns_both_results():
    left, right = [5, 1], [4, 2]
    assert pyconc.join(lambda: sorted(left), lambda: sorted(right)) == ([1, 5], [2, 4])


# ---------------------------------------------------------------------------
# Async Programming in Rust (Tokio)                           [async area]
# ---------------------------------------------------------------------------
