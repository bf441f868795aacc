"""pyconc: the sync area (its public names are re-exported by pyconc/__init__.py)."""
from __future__ import annotations

__all__: list = []
