"""The benchmark harness.

A benchmark is a set of *cases*; each case times pyconc and one or more
baselines on the same work in the same process, interleaved, taking the
best of several repeats (the machine is shared and noisy: the minimum is
the least disturbed run).  Results print as a table with the ratio
``pyconc time / baseline time`` (below 1.0 means pyconc is faster) and can
be written as Markdown to ``benchmarks/results/<name>.md``.

    from benchmarks._harness import Bench
    b = Bench("threads", "spawn + join")
    b.case("spawn+join x200", pyconc=fn_a, baselines={"threading.Thread": fn_b},
           target=("threading.Thread", 1/3))
    b.report()
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Tuple

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def best_time(fn: Callable[[], object], repeat: int, number: int = 1) -> float:
    """Best wall time of `number` calls of fn, over `repeat` tries."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        best = min(best, time.perf_counter() - t0)
    return best / number


@dataclass
class Case:
    name: str
    pyconc: float
    baselines: Dict[str, float]
    target: Optional[Tuple[str, float]] = None  # (baseline, max ratio)
    unit_ops: int = 1
    # baselines that are lower bounds (the benchmark's own code with no
    # primitive), not competitors: their ratio is always >= 1
    floors: Tuple[str, ...] = ()

    def ratio(self, base: str) -> float:
        return self.pyconc / self.baselines[base]


@dataclass
class Bench:
    name: str
    title: str
    repeat: int = 5
    cases: List[Case] = field(default_factory=list)

    def case(self, name: str, pyconc: Callable[[], object], baselines: Dict[str, Callable[[], object]],
             target: Optional[Tuple[str, float]] = None, ops: int = 1, number: int = 1,
             floors: Tuple[str, ...] = ()) -> Case:
        """Time pyconc and each baseline (one untimed warm-up call each, then
        interleaved, best of `repeat`).  `floors` names the baselines that
        are lower bounds rather than competitors (labelled so in the table,
        gray in the plot)."""
        unknown = [f for f in floors if f not in baselines]
        if unknown:
            raise ValueError(f"floors {unknown} are not among the baselines")
        times: Dict[str, float] = {"pyconc": float("inf"), **{k: float("inf") for k in baselines}}
        fns = {"pyconc": pyconc, **baselines}
        for fn in fns.values():  # warm-up, untimed: first-call costs (threads, caches)
            fn()
        for _ in range(self.repeat):
            for k, fn in fns.items():
                times[k] = min(times[k], best_time(fn, 1, number))
        c = Case(name, times.pop("pyconc"), times, target, ops, tuple(floors))
        self.cases.append(c)
        self._print_case(c)
        return c

    @staticmethod
    def _fmt(t: float, ops: int) -> str:
        per = t / ops
        if per < 1e-6:
            return f"{per * 1e9:8.1f} ns"
        if per < 1e-3:
            return f"{per * 1e6:8.2f} us"
        return f"{per * 1e3:8.2f} ms"

    def _print_case(self, c: Case) -> None:
        parts = [f"{c.name:38s} pyconc {self._fmt(c.pyconc, c.unit_ops)}"]
        for b, t in c.baselines.items():
            parts.append(f"{b} {self._fmt(t, c.unit_ops)} (ratio {c.pyconc / t:5.2f})")
        print(" | ".join(parts), flush=True)

    def markdown(self) -> str:
        lines = [f"# {self.title}", "", machine_line(), "",
                 "Ratio = pyconc time / baseline time (below 1.0: pyconc is faster). "
                 "Best of %d interleaved runs." % self.repeat, "",
                 "| case | pyconc (per op) | baseline | baseline (per op) | ratio | target | met |",
                 "|---|---|---|---|---|---|---|"]
        for c in self.cases:
            for b, t in c.baselines.items():
                tgt, met = "", ""
                if c.target and c.target[0] == b:
                    tgt = f"<= {c.target[1]:.2f}"
                    met = "yes" if c.ratio(b) <= c.target[1] else "**no**"
                if b in c.floors:
                    tgt = "floor (a bound)"
                lines.append(f"| {c.name} | {self._fmt(c.pyconc, c.unit_ops).strip()} | {b} | "
                             f"{self._fmt(t, c.unit_ops).strip()} | {c.ratio(b):.3f} | {tgt} | {met} |")
        return "\n".join(lines) + "\n"

    def report(self, write: bool = True) -> None:
        """Write benchmarks/results/<name>.md and its plot (if write)."""
        if write:
            os.makedirs(RESULTS, exist_ok=True)
            path = os.path.join(RESULTS, f"{self.name}.md")
            with open(path, "w") as f:
                f.write(self.markdown())
            print(f"wrote {os.path.relpath(path)}")
            self.plot()

    def plot(self) -> Optional[str]:
        """benchmarks/results/<name>.png: every case's ratio to each baseline
        (log scale).  A bar is green where it meets its target (without a
        target: where pyconc is faster), red where not, gray for a floor.
        Needs matplotlib (the ``bench`` extra); returns None without it."""
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            return None
        rows = [(c, b) for c in self.cases for b in c.baselines]
        if not rows:
            return None

        def color(c: Case, b: str) -> str:
            if b in c.floors:
                return "tab:gray"
            limit = c.target[1] if c.target and c.target[0] == b else 1.0
            return "tab:green" if c.ratio(b) <= limit else "tab:red"

        fig, ax = plt.subplots(figsize=(10, 0.35 * len(rows) + 1.2))
        ys = list(range(len(rows)))[::-1]
        ax.barh(ys, [c.ratio(b) for c, b in rows], color=[color(c, b) for c, b in rows])
        for y, (c, b) in zip(ys, rows):
            if c.target and c.target[0] == b:
                ax.plot([c.target[1]] * 2, [y - 0.4, y + 0.4], color="black", linewidth=2)
        ax.axvline(1.0, color="gray", linestyle="--")
        ax.set_xscale("log")
        ax.set_yticks(ys)
        ax.set_yticklabels([f"{c.name} vs {b}" for c, b in rows], fontsize=7)
        ax.set_xlabel("pyconc time / baseline time (log; < 1 = pyconc faster)\n"
                      "black tick = target; gray = a floor: the loops with no primitive")
        ax.set_title(self.title)
        fig.tight_layout()
        path = os.path.join(RESULTS, f"{self.name}.png")
        fig.savefig(path, dpi=110)
        plt.close(fig)
        print(f"wrote {os.path.relpath(path)}")
        return path


def machine_line(what: str = "Measured") -> str:
    """'<what> <UTC time>. Machine: ...' for the head of a results file."""
    import pyconc

    return (f"{what} {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. "
            f"Machine: {platform.machine()}, {os.cpu_count()} CPUs "
            f"({pyconc.available_parallelism()} usable), {platform.system()} {platform.release()}; "
            f"Python {platform.python_version()} ({sys.implementation.name}); pyconc {pyconc.__version__}")


def arg_parser(desc: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=desc)
    p.add_argument("--quick", action="store_true", help="fewer repeats, smaller sizes")
    p.add_argument("--no-write", action="store_true", help="do not write benchmarks/results")
    return p
