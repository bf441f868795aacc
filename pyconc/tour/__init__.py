"""The tour: the article's examples, section by section, run live.

Each section is a module ``sNN_<name>.py`` in this package (NN gives the
article's order) with ``TITLE`` and ``run(print)``.  ``run`` prints what the
article prints and returns nothing; it raises if the example misbehaves.
"""
from __future__ import annotations

import importlib
import pkgutil
import sys
import time
from types import ModuleType
from typing import List


def sections() -> List[ModuleType]:
    names = sorted(m.name for m in pkgutil.iter_modules(__path__) if m.name[:1] == "s"
                   and m.name[1:3].isdigit())
    return [importlib.import_module(f"{__name__}.{n}") for n in names]


def _key(mod: ModuleType) -> str:
    return mod.__name__.rsplit(".", 1)[1].split("_", 1)[1]


def main(argv: List[str]) -> int:
    secs = sections()
    if argv and argv[0] == "--list":
        for i, m in enumerate(secs, 1):
            print(f"{i:2d}. {_key(m):22s} {m.TITLE}")
        return 0
    if argv:
        want = argv[0]
        chosen = [m for i, m in enumerate(secs, 1) if want in (str(i), _key(m))]
        if not chosen:
            print(f"no section {want!r}; see `python -m pyconc tour --list`", file=sys.stderr)
            return 2
        secs = chosen
    t0 = time.monotonic()
    for m in secs:
        print(f"\n== {m.TITLE} ==")
        m.run(print)
    print(f"\n(tour finished in {time.monotonic() - t0:.2f} s)")
    return 0
