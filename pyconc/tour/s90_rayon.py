"""Parallel Programming With Rayon: merge_sort_par over join."""
from __future__ import annotations

from typing import Callable, List

import pyconc

TITLE = "Parallel programming with Rayon: merge_sort_par over join"


def example() -> List[int]:
    """The article's main(): sort vec![8, 2, 5, 9, 1, 3, 7, 6, 4] with merge_sort_par."""
    arr = [8, 2, 5, 9, 1, 3, 7, 6, 4]
    pyconc.merge_sort(arr)  # join(|| sort(left), || sort(right)), then merge
    return arr


def run(out: Callable[..., None]) -> None:
    out("merge_sort_par: split at mid, pyconc.join(sort left, sort right), merge via temp")
    arr = example()
    out(f"  {arr}")
    assert arr == [1, 2, 3, 4, 5, 6, 7, 8, 9]
    import random

    big = [random.random() for _ in range(1_000_000)]
    pyconc.par_sort(big)
    assert all(big[i] <= big[i + 1] for i in range(0, len(big) - 1, 997))
    out(f"  par_sort: 1,000,000 floats sorted in place on {pyconc.current_num_threads()} threads")
