"""``python -m benchmarks``: run every comparison and write the report.

    python -m benchmarks            full run (several minutes)
    python -m benchmarks --quick    smaller sizes, fewer repeats (under a minute)
    python -m benchmarks threads channels     only these areas

Writes ``benchmarks/results/RESULTS.md`` (every table: ratio against each
standard-library or numpy counterpart, with machine and versions), one
``<area>.md`` per area, and PNG plots ``benchmarks/results/<area>.png``
(ratios per case, log scale, written by each area's own run too; needs
matplotlib from the ``bench`` extra).
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys
import time
from typing import List

from ._harness import RESULTS, machine_line

AREAS = ["threads", "channels", "sync", "parallel", "par_iter", "aio", "freethreaded",
         "coord_chan", "coord"]  # coord_chan: oneshot, broadcast; coord: Semaphore, Event (issue 17)


def _progress(i: int, n: int, label: str, t0: float) -> None:
    width = 30
    done = int(width * i / n)
    bar = "#" * done + "-" * (width - done)
    sys.stderr.write(f"\r[{bar}] {i}/{n} {label:<12s} {time.monotonic() - t0:6.1f}s")
    sys.stderr.flush()
    if i == n:
        sys.stderr.write("\n")


def main(argv: List[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("areas", nargs="*", help=f"areas to run (default: all of {AREAS})")
    p.add_argument("--quick", action="store_true", help="smaller sizes, fewer repeats")
    a = p.parse_args(argv)
    areas = a.areas or AREAS
    for ar in areas:
        if ar not in AREAS:
            p.error(f"unknown area {ar!r}; choose from {AREAS}")
    os.makedirs(RESULTS, exist_ok=True)
    t0 = time.monotonic()
    for i, area in enumerate(areas):
        _progress(i, len(areas), area, t0)
        try:
            mod = importlib.import_module(f"benchmarks.bench_{area}")
        except ImportError as e:
            print(f"\n(skipping {area}: {e})", file=sys.stderr)
            continue
        mod.run(quick=a.quick, write=True)  # writes its table and plot
    _progress(len(areas), len(areas), "done", t0)
    write_report(f"`python -m benchmarks{' --quick' if a.quick else ''}"
                 f"{' ' + ' '.join(a.areas) if a.areas else ''}` took {time.monotonic() - t0:.0f} s")
    return 0


def write_report(how: str) -> None:
    """RESULTS.md: every area's latest table (benchmarks/results/<area>.md,
    whichever run wrote it) with its plot, in the areas' order."""
    lines = ["# pyconc benchmark results", "", machine_line("Written"), "",
             "Each area's table is from its latest run; areas run separately keep "
             f"their own figures. Last run: {how}.", ""]
    for area in AREAS:
        for name in (area, f"{area}_gil_build"):
            md = os.path.join(RESULTS, f"{name}.md")
            if not os.path.exists(md):
                continue
            with open(md) as f:
                lines.append(f.read().replace("# ", "## ", 1))
            png = os.path.join(RESULTS, f"{name}.png")
            if os.path.exists(png):
                lines.append(f"![{name}]({name}.png)\n")
    path = os.path.join(RESULTS, "RESULTS.md")
    with open(path, "w") as f:
        f.write("\n".join(lines))
    print(f"wrote {os.path.relpath(path)}")


if __name__ == "__main__":
    sys.exit(main())
