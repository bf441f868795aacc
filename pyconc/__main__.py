"""``python -m pyconc``: the command line.

    python -m pyconc tour            walk the whole article, running each example live
    python -m pyconc tour --list     list the sections
    python -m pyconc tour SECTION    run one section (by number or name)
"""
from __future__ import annotations

import sys

from .tour import main as tour_main


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 0 if argv else 2
    if argv[0] == "tour":
        return tour_main(argv[1:])
    print(f"unknown command {argv[0]!r}\n\n{__doc__.strip()}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
