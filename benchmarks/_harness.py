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

    def ratio(self, base: str) -> float:
        return self.pyconc / self.baselines[base]


@dataclass
class Bench:
    name: str
    title: str
    repeat: int = 5
    cases: List[Case] = field(default_factory=list)

    def case(self, name: str, pyconc: Callable[[], object], baselines: Dict[str, Callable[[], object]],
             target: Optional[Tuple[str, float]] = None, ops: int = 1, number: int = 1) -> Case:
        """Time pyconc and each baseline (one untimed warm-up call each, then
        interleaved, best of `repeat`)."""
        times: Dict[str, float] = {"pyconc": float("inf"), **{k: float("inf") for k in baselines}}
        fns = {"pyconc": pyconc, **baselines}
        for fn in fns.values():  # warm-up, untimed: first-call costs (threads, caches)
            fn()
        for _ in range(self.repeat):
            for k, fn in fns.items():
                times[k] = min(times[k], best_time(fn, 1, number))
        c = Case(name, times.pop("pyconc"), times, target, ops)
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
                lines.append(f"| {c.name} | {self._fmt(c.pyconc, c.unit_ops).strip()} | {b} | "
                             f"{self._fmt(t, c.unit_ops).strip()} | {c.ratio(b):.3f} | {tgt} | {met} |")
        return "\n".join(lines) + "\n"

    def report(self, write: bool = True) -> None:
        if write:
            os.makedirs(RESULTS, exist_ok=True)
            path = os.path.join(RESULTS, f"{self.name}.md")
            with open(path, "w") as f:
                f.write(self.markdown())
            print(f"wrote {os.path.relpath(path)}")


def machine_line() -> str:
    import pyconc

    return (f"Machine: {platform.machine()}, {os.cpu_count()} CPUs "
            f"({pyconc.available_parallelism()} usable), {platform.system()} {platform.release()}; "
            f"Python {platform.python_version()} ({sys.implementation.name}); pyconc {pyconc.__version__}")


def arg_parser(desc: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=desc)
    p.add_argument("--quick", action="store_true", help="fewer repeats, smaller sizes")
    p.add_argument("--no-write", action="store_true", help="do not write benchmarks/results")
    return p
