"""pyconc: the sync area -- Rust's ``std::sync`` (its public names are
re-exported by pyconc/__init__.py).

``Arc``/``Weak`` (shared ownership with atomic counts), ``Mutex`` and
``RwLock`` (locks that own their value, with guards and poisoning),
``Condvar``, ``Barrier``, ``OnceLock`` and the atomics ``AtomicInt`` /
``AtomicBool``.  All are implemented in C (pyconc._core); every blocking
call releases the GIL and is interruptible by Ctrl-C.
"""
from __future__ import annotations

from ._core import (
    Arc,
    AtomicBool,
    AtomicInt,
    Barrier,
    BarrierWaitResult,
    Condvar,
    Mutex,
    MutexGuard,
    OnceLock,
    RwLock,
    RwLockReadGuard,
    RwLockWriteGuard,
    Weak,
)
from ._errors import LockTimeoutError

__all__: list[str] = [
    "Arc", "Weak", "Mutex", "MutexGuard", "RwLock", "RwLockReadGuard", "RwLockWriteGuard",
    "Condvar", "Barrier", "BarrierWaitResult", "OnceLock", "AtomicInt", "AtomicBool",
    "LockTimeoutError",
]
