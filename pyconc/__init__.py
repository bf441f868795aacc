"""pyconc: Rust's concurrency toolkit for Python.

Threads with JoinHandle and Result, channels, Mutex/RwLock/Condvar, atomics,
rayon-style join and parallel sort -- in a C core that releases the GIL
whenever it waits or works.  See the README and ``python -m pyconc tour``.
"""
from __future__ import annotations

import os as _os
import sys as _sys


def _find_core() -> None:
    """Make ``pyconc._core`` importable from a source checkout.

    Running from the repository root puts the source folder ``pyconc/``
    first on ``sys.path``; it has no compiled extension.  Look for the
    installed package further down ``sys.path`` and add its folder to this
    package's ``__path__`` so the compiled ``_core`` is found there.
    """
    import importlib.machinery

    here = _os.path.dirname(_os.path.abspath(__file__))
    suffixes = tuple(importlib.machinery.EXTENSION_SUFFIXES)
    for entry in _sys.path:
        cand = _os.path.join(_os.path.abspath(entry or _os.getcwd()), "pyconc")
        if _os.path.abspath(cand) == here or not _os.path.isdir(cand):
            continue
        try:
            names = _os.listdir(cand)
        except OSError:
            continue
        if any(n.startswith("_core.") and n.endswith(suffixes) for n in names):
            __path__.append(cand)
            return
    raise ImportError(
        "pyconc's compiled core (pyconc._core) is not built: run `pip install .` "
        "(or `pip install -e .`) first"
    )


try:
    from . import _core
except ImportError:
    _find_core()
    from . import _core

from ._errors import (  # noqa: E402
    AlreadySet,
    ChannelError,
    DeadlockError,
    Empty,
    Full,
    JoinTimeoutError,
    PoisonError,
    PyconcError,
    RecvError,
    RecvTimeoutError,
    SendError,
    SendTimeoutError,
    UnwrapError,
    UseAfterDrop,
    WouldBlock,
)
from ._result import Err, Ok, Result  # noqa: E402
from ._core import (  # noqa: E402
    JoinHandle,
    Thread,
    available_parallelism,
    current,
    park,
    sleep,
    spawn,
    yield_now,
)
from ._threads import Builder, Scope, scope, set_panic_hook, take_panic_hook  # noqa: E402

# Each area re-exports its public names; its __all__ extends ours.
from . import _aio, _channels, _parallel, _sync  # noqa: E402
from ._channels import *  # noqa: E402,F401,F403
from ._sync import *  # noqa: E402,F401,F403
from ._parallel import *  # noqa: E402,F401,F403
from ._aio import *  # noqa: E402,F401,F403
# coordination (Semaphore, Event, Notify, WaitGroup)
from . import _coord  # noqa: E402
from ._coord import *  # noqa: E402,F401,F403

__version__ = "0.1.0"

__all__ = [
    # Result
    "Ok", "Err", "Result",
    # threads
    "spawn", "JoinHandle", "Thread", "Builder", "scope", "Scope", "current", "park",
    "sleep", "yield_now", "available_parallelism", "set_panic_hook", "take_panic_hook",
    # errors
    "PyconcError", "ChannelError", "SendError", "RecvError", "Empty", "Full",
    "SendTimeoutError", "RecvTimeoutError", "PoisonError", "WouldBlock", "DeadlockError",
    "UseAfterDrop", "AlreadySet", "UnwrapError", "JoinTimeoutError",
]
__all__ += _channels.__all__ + _sync.__all__ + _parallel.__all__ + _aio.__all__
__all__ += _coord.__all__


def _at_exit() -> None:
    # Let threads spawned just before exit take their thread state while the
    # interpreter is still whole (they are then ended by the interpreter's
    # normal finalization, like daemon threads).  Bounded: never hangs exit.
    _core._wait_starting(2.0)


import atexit as _atexit  # noqa: E402

_atexit.register(_at_exit)
