"""The contract every benchmark follows: targets in one place, checked, in the JSON, in the exit code.

A benchmark is a module ``benchmarks/NAME.py`` with ``main(argv) -> int``, run as ``swarmgym bench NAME``
or ``python -m benchmarks.NAME``. Its targets are a module-level ``TARGETS`` list — the only place a goal
is written down; the printed table, the JSON, the exit code and the README tables all come from it::

    TARGETS = [
        Target("import_s", "<=", 0.3),
        Target("ratio_vs_bare", ">=", 0.8, quick=0.5, quick_why="300 calls do not reach steady state"),
    ]

    def main(argv=None):
        bench = Bench("overhead", __doc__, TARGETS)
        bench.parser.add_argument("-n", type=int, default=5000)
        a = bench.parse_args(argv)                 # adds --json FILE, --quick, --no-check
        n = 300 if a.quick else a.n                # --quick: small N, the same code path

        def measure(res):                          # fills ``res``; may run arms
            res["import_s"] = measure_import()
            with bench.arm("bare"):                # an arm that raises is recorded, not fatal
                res.update(run_bare(n))

        return bench.run(measure, title=f"overhead (N={n})")

Rules (``Bench.run`` enforces them):

- Every target becomes ``{"name", "goal", "value", "met"}`` in the JSON's ``targets`` list. A target whose
  value is missing (its arm failed, or it was never measured) is *missed*, never skipped.
- Every ``bench.arm(NAME)`` becomes a target ``arm NAME`` with goal ``runs`` and value ``ok`` or the error:
  an arm that failed is a missed target, and ratios that need it are then missing too.
- Exit code: ``1`` when any target is missed (arms included), ``2`` when the benchmark itself errors
  (an exception outside an arm; bad arguments), ``0`` otherwise. ``--no-check`` (exploration) exits ``0``
  whatever was measured, but still reports each target's ``met`` honestly and still exits ``2`` on its own
  error. The JSON carries the same ``exit_code``, so the file and the process always agree.
- ``--quick`` runs a short mode for CI: small N, the same code path, checks on. A target may relax its
  bound in quick mode only with ``quick=`` and a ``quick_why`` saying why a short run cannot be compared;
  the goal text in the JSON and the table then says so. There is no way to skip a target in quick mode.
- Ratios are taken within one run (the machine may be shared); compare arms measured side by side.

The JSON file (``--json FILE``)::

    {"benchmark": "overhead", "title": "...", "measured_at": "2026-12-07 06:00 UTC", "load_avg": [..],
     "quick": false, "checked": true, "exit_code": 0, "error": null,
     "results": {...every measured figure...}, "targets": [{...}, ...],
     "readme": [{"name": "import_s", "what": "..."}, ...]}

``readme`` lists the rows the README shows: every target (``Target.what``) and the figures passed as
``Bench(..., describe={key: what})``. ``benchmarks/_readme.py`` turns a folder of these files into the
README's benchmark tables, so figures and text cannot drift.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

__all__ = ["Bench", "Target", "check_targets", "exit_code_for", "report"]

_OPS: dict[str, tuple[str, Callable[[Any, Any], bool]]] = {
    "<=": ("≤", lambda v, b: v <= b),
    ">=": ("≥", lambda v, b: v >= b),
    "==": ("=", lambda v, b: v == b),
}
ARM_PREFIX = "arm "


@dataclass(frozen=True)
class Target:
    """One goal on one measured figure.

    Args:
        name: the key of the figure in the benchmark's results.
        op: ``"<="``, ``">="`` or ``"=="``.
        bound: the goal of a full run.
        quick: a relaxed bound for ``--quick`` runs, or None (the same bound in both modes).
        quick_why: why a short run cannot be held to ``bound``; required with ``quick``.
        what: a few words saying what the figure is (shown in the README tables).
    """

    name: str
    op: str
    bound: Any
    quick: Any = None
    quick_why: str = ""
    what: str = ""

    def __post_init__(self) -> None:
        if self.op not in _OPS:
            raise ValueError(f"target {self.name!r}: op must be one of {sorted(_OPS)}, got {self.op!r}")
        if self.quick is not None and not self.quick_why:
            raise ValueError(f"target {self.name!r}: a relaxed quick bound needs quick_why (say why)")

    def bound_for(self, quick: bool) -> Any:
        return self.quick if quick and self.quick is not None else self.bound

    def goal(self, quick: bool) -> str:
        """The goal as text, e.g. ``≥ 0.8`` or ``≥ 0.5 (quick mode; full run ≥ 0.8: <why>)``."""
        sym = _OPS[self.op][0]
        text = f"{sym} {_fmt(self.bound_for(quick))}"
        if quick and self.quick is not None:
            text += f" (quick mode; full run {sym} {_fmt(self.bound)}: {self.quick_why})"
        return text

    def check(self, results: Mapping[str, Any], quick: bool) -> dict[str, Any]:
        """The target's JSON row. A missing or non-comparable value is missed."""
        value = results.get(self.name)
        met = False
        if value is not None and not (isinstance(value, float) and value != value):  # NaN never meets
            try:
                met = bool(_OPS[self.op][1](value, self.bound_for(quick)))
            except TypeError:
                met = False
        return {"name": self.name, "goal": self.goal(quick), "value": value, "met": met}


def check_targets(targets: Sequence[Target], results: Mapping[str, Any], quick: bool) -> list[dict[str, Any]]:
    """Rows ``{"name","goal","value","met"}`` for ``targets`` against ``results``."""
    names = [t.name for t in targets]
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate target names: {names}")
    return [t.check(results, quick) for t in targets]


def exit_code_for(rows: Sequence[Mapping[str, Any]], *, checked: bool = True, error: str | None = None) -> int:
    """2 on the benchmark's own error, else 1 if checked and any row is missed, else 0."""
    if error is not None:
        return 2
    return 1 if checked and not all(r["met"] for r in rows) else 0


class Bench:
    """One benchmark run under the contract (see the module docstring).

    Args:
        name: the benchmark's name (``swarmgym bench NAME``).
        doc: the module docstring; its first line is the ``--help`` description.
        targets: the benchmark's ``TARGETS``.
        describe: figures worth a README row besides the targets: key -> what it is (with its unit).
    """

    def __init__(
        self, name: str, doc: str | None, targets: Sequence[Target], describe: Mapping[str, str] | None = None
    ) -> None:
        self.name = name
        self.targets = list(targets)
        self.describe = dict(describe or {})
        self.parser = argparse.ArgumentParser(
            prog=f"swarmgym bench {name}", description=(doc or name).strip().splitlines()[0]
        )
        self.parser.add_argument("--json", metavar="FILE", help="write results, targets and exit code as JSON here")
        self.parser.add_argument("--quick", action="store_true", help="short mode (small N, same code, checks on)")
        self.parser.add_argument("--no-check", action="store_true", help="exit 0 whatever was measured (exploration)")
        self.args: argparse.Namespace | None = None
        self.arms: dict[str, str] = {}

    def parse_args(self, argv: Sequence[str] | None) -> argparse.Namespace:
        self.args = self.parser.parse_args(None if argv is None else list(argv))
        return self.args

    @property
    def quick(self) -> bool:
        return bool(self.args and self.args.quick)

    @contextmanager
    def arm(self, name: str) -> Iterator[None]:
        """Run one arm: an exception in it is recorded as a failed arm (a missed target), not raised."""
        self.record_arm(name, "did not finish")
        try:
            yield
        except Exception as e:  # recorded, printed with its traceback, and turned into a missed target
            traceback.print_exc(file=sys.stderr)
            self.arms[name] = f"failed: {type(e).__name__}: {str(e).strip()[:300]}"
        else:
            self.arms[name] = "ok"

    def record_arm(self, name: str, error: str | None) -> None:
        """Record an arm that ran elsewhere (e.g. in a subprocess): ``error`` None means it succeeded."""
        if name in self.arms:
            raise ValueError(f"arm {name!r} recorded twice")
        self.arms[name] = "ok" if error is None else f"failed: {error}"

    def rows(self, results: Mapping[str, Any]) -> list[dict[str, Any]]:
        arm_rows = [
            {"name": ARM_PREFIX + k, "goal": "runs", "value": v, "met": v == "ok"} for k, v in self.arms.items()
        ]
        return arm_rows + check_targets(self.targets, results, self.quick)

    def run(
        self,
        measure: Callable[[dict[str, Any]], Any],
        *,
        title: str,
        hide: Sequence[str] = (),
    ) -> int:
        """Call ``measure(results)``, then print, write the JSON and return the exit code.

        Args:
            measure: fills the dict it is given (so figures measured before an error are still reported).
            title: the table title (say N and the setup).
            hide: result keys not shown in the table (still in the JSON).
        """
        if self.args is None:
            self.parse_args(None)
        assert self.args is not None
        results: dict[str, Any] = {}
        error: str | None = None
        try:
            measure(results)
        except Exception as e:  # the benchmark's own error: exit 2, and the JSON says why
            traceback.print_exc(file=sys.stderr)
            error = f"{type(e).__name__}: {str(e).strip()[:500]}"
        rows = self.rows(results)
        checked = not self.args.no_check
        code = exit_code_for(rows, checked=checked, error=error)
        out = {
            "benchmark": self.name,
            "title": title,
            "measured_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "load_avg": _load_avg(),
            "quick": self.quick,
            "checked": checked,
            "exit_code": code,
            "error": error,
            "results": results,
            "targets": rows,
            # what each README row shows, in order: targets first, then the described figures
            "readme": [{"name": t.name, "what": t.what or t.name} for t in self.targets]
            + [{"name": k, "what": v} for k, v in self.describe.items() if k not in {t.name for t in self.targets}],
        }
        _print(title, results, rows, hide=hide)
        missed = [r["name"] for r in rows if not r["met"]]
        if error:
            print(f"{self.name}: error: {error}", file=sys.stderr)
        elif missed:
            print(f"{self.name}: missed: {', '.join(missed)}" + ("" if checked else " (--no-check)"), file=sys.stderr)
        if self.args.json:
            with open(self.args.json, "w") as f:
                json.dump(out, f, indent=2, default=str)
        return code


# ------------------------------------------------------------------------------------------ printing


def _load_avg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def _fmt(v: Any) -> str:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return str(v)
    if isinstance(v, int):
        return f"{v:,}"
    return f"{v:,.4g}" if abs(v) < 1000 else f"{v:,.1f}"


def _print(title: str, results: Mapping[str, Any], rows: Sequence[Mapping[str, Any]], *, hide: Sequence[str]) -> None:
    from rich.console import Console
    from rich.table import Table

    by_name = {r["name"]: r for r in rows}
    t = Table(title=title)
    t.add_column("metric")
    t.add_column("value", justify="right")
    t.add_column("target")
    for k, v in results.items():
        if k in hide:
            continue
        r = by_name.get(k)
        t.add_row(k, _fmt(v), f"{r['goal']} {'✓' if r['met'] else '✗'}" if r else "")
    for r in rows:  # arms, and targets whose figure was never measured
        if r["name"] not in results:
            t.add_row(r["name"], _fmt(r["value"]), f"{r['goal']} {'✓' if r['met'] else '✗'}")
    Console().print(t)


def report(
    title: str,
    results: Mapping[str, Any],
    *,
    json_path: str | None = None,
    targets: Mapping[str, tuple[str, float]] | None = None,
    skip: tuple[str, ...] = (),
) -> None:
    """Old interface (print a table, write flat JSON, check nothing), kept until every benchmark uses
    :class:`Bench`; do not use it in new code."""
    from rich.console import Console
    from rich.table import Table

    targets = targets or {}
    t = Table(title=title)
    t.add_column("metric")
    t.add_column("value", justify="right")
    if targets:
        t.add_column("target")
    for k, v in results.items():
        if k in skip:
            continue
        row = [k, _fmt(v)]
        if targets:
            mark = ""
            if k in targets and isinstance(v, (int, float)):
                op, bound = targets[k]
                ok = v <= bound if op == "≤" else v >= bound
                mark = f"{op} {bound:g} {'✓' if ok else '✗'}"
            row.append(mark)
        t.add_row(*row)
    Console().print(t)
    if json_path:
        with open(json_path, "w") as f:
            json.dump(dict(results), f, indent=2, default=str)
