"""pyconc: the channels area -- Rust's ``std::sync::mpsc`` with crossbeam's
extras (MPMC clones, select, rendezvous channels).  Its public names are
re-exported by pyconc/__init__.py."""
from __future__ import annotations

from ._core import Receiver, Sender, channel, select, sync_channel

__all__: list[str] = ["channel", "sync_channel", "Sender", "Receiver", "select"]
