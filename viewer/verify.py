"""``swarmgym verify RUN.jsonl``: check a trajectory store before anything trains on it.

Every line is checked (framing and CRC-32 as the store writes them, JSON, the ``Trajectory`` schema), then
the file as a whole (duplicate ids, duplicated ``(task_id, sample_index)`` among finished top-level
episodes, children whose parent was never stored). Per trajectory: token data (logprobs aligned with the
sampled ids, logprobs ≤ 0 and finite, each turn's prompt extending the previous turn's ids — what the
training export requires), reward finite and within bounds, judge failures.

Each check is an ``error`` (data a trainer must not take as it is) or a ``warn`` (worth a look). Exit code:
0 nothing failed, 1 an error was found (or a warning with ``strict``), and the CLI's 2 for a file that cannot
be read at all. Memory grows with the number of trajectories (ids and keys are kept), not their size.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import StoreError

__all__ = ["Check", "VerifyReport", "verify_file"]

CHECKS: dict[str, tuple[str, str]] = {  # name -> (severity, what it means)
    "framing": ("error", "line is not a store record, or its CRC-32 does not match (damaged after writing)"),
    "torn_tail": ("warn", "last line incomplete: a crash cut the final write (resume trims it)"),
    "json": ("error", "payload is not valid JSON"),
    "schema": ("error", "record does not match the Trajectory schema"),
    "duplicate_id": ("error", "two trajectories share an id"),
    "duplicate_task_sample": ("error", "(task_id, sample_index) stored twice among finished top-level episodes"),
    "orphan": ("error", "child whose parent was never stored (resume the run to mark them, or drop them)"),
    "orphan_marked": ("warn", "child of a never-stored parent, marked by a resumed run (readers skip it)"),
    "missing_child": ("warn", "a parent lists a child id that is not in the file"),
    "logprob_alignment": ("error", "number of logprobs differs from the number of sampled ids"),
    "logprob_value": ("error", "logprob is positive, NaN or infinite"),
    "token_drift": ("warn", "a turn's prompt ids do not extend the previous turn's ids (export must split)"),
    "token_missing": ("warn", "a trainable trajectory with completions but no token ids (a text-mode policy: oracle, "
                             "scripted, a chat-mode server); it cannot train token-exact"),
    "reward_bounds": ("error", "reward outside the expected range, or not finite"),
    "judge_error": ("warn", "the judge failed or timed out (the reward is not a verdict)"),
    "judge_error_trainable": ("error", "judge failed but the trajectory is still marked trainable"),
}


@dataclass
class Check:
    name: str
    severity: str
    count: int = 0
    examples: list[str] = field(default_factory=list)

    def add(self, where: str) -> None:
        self.count += 1
        if len(self.examples) < 5:
            self.examples.append(where)


@dataclass
class VerifyReport:
    path: str
    lines: int = 0
    trajectories: int = 0
    manifests: int = 0
    checks: dict[str, Check] = field(default_factory=dict)

    def hit(self, name: str, where: str) -> None:
        c = self.checks.get(name)
        if c is None:
            c = self.checks[name] = Check(name, CHECKS[name][0])
        c.add(where)

    @property
    def errors(self) -> int:
        return sum(c.count for c in self.checks.values() if c.severity == "error")

    @property
    def warnings(self) -> int:
        return sum(c.count for c in self.checks.values() if c.severity == "warn")

    def exit_code(self, strict: bool = False) -> int:
        return 1 if self.errors or (strict and self.warnings) else 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": self.path, "lines": self.lines, "trajectories": self.trajectories, "manifests": self.manifests,
            "errors": self.errors, "warnings": self.warnings,
            "checks": [
                {"name": n, "severity": CHECKS[n][0], "what": CHECKS[n][1],
                 "count": self.checks[n].count if n in self.checks else 0,
                 "examples": self.checks[n].examples if n in self.checks else []}
                for n in CHECKS
            ],
        }


def verify_file(
    path: str | os.PathLike[str], *, reward_min: float = 0.0, reward_max: float = 1.0
) -> VerifyReport:
    """Run every check over a store file (plain or ``.gz``).

    Raises:
        StoreError: the file does not exist or a gzip member is corrupt (nothing past it can be read).
    """
    from pydantic import ValidationError

    from ..rollout.store import _decode, _is_compressed, _scan, orphan_ids
    from ..wire import Trajectory

    p = Path(path)
    if not p.is_file():
        raise StoreError(f"no trajectory store at {p}")
    rep = VerifyReport(str(p))
    parents: dict[str, str | None] = {}
    listed: dict[str, tuple[str, int]] = {}  # child id listed by a parent -> (parent id, line)
    lines_of: dict[str, int] = {}
    keys: Counter[tuple[str, int]] = Counter()
    marked: set[str] = set()
    for lineno, _end, line in _scan(p, _is_compressed(p, None)):
        rep.lines = lineno
        where = f"line {lineno}"
        if line is None:
            rep.hit("torn_tail", where)
            break
        try:
            kind, data = _decode(line)
        except ValueError as e:
            rep.hit("json" if "invalid JSON" in str(e) else "framing", f"{where}: {e}")
            continue
        if kind == "manifest":
            rep.manifests += 1
            continue
        if kind == "orphans":
            if isinstance(data, dict):
                marked.update(data.get("ids") or ())
            continue
        if kind != "trajectory":
            rep.hit("schema", f"{where}: unknown record kind {kind!r}")
            continue
        try:
            t = Trajectory.model_validate(data)
        except ValidationError as e:
            first = e.errors()[0]
            rep.hit("schema", f"{where}: {'.'.join(map(str, first['loc']))}: {first['msg']}")
            continue
        rep.trajectories += 1
        where = f"line {lineno} ({t.id})"
        if t.id in parents:
            rep.hit("duplicate_id", f"{where}, first at line {lines_of[t.id]}")
        parents[t.id] = t.parent_id
        lines_of.setdefault(t.id, lineno)
        for c in t.children:
            listed[c] = (t.id, lineno)
        if t.parent_id is None and t.status in ("ok", "truncated", "error"):
            keys[(t.task_id, t.sample_index)] += 1
            if keys[(t.task_id, t.sample_index)] == 2:
                rep.hit("duplicate_task_sample", f"{where}: task {t.task_id!r} sample {t.sample_index}")
        _check_trajectory(rep, t, where, reward_min, reward_max)
    for tid in sorted(orphan_ids(parents), key=lambda i: lines_of.get(i, 0)):
        rep.hit("orphan_marked" if tid in marked else "orphan",
                f"line {lines_of[tid]} ({tid}) parent {parents[tid]}")
    for cid, (pid, lineno) in listed.items():
        if cid not in parents:
            rep.hit("missing_child", f"line {lineno} ({pid}) lists {cid}")
    return rep


def _check_trajectory(rep: VerifyReport, t: Any, where: str, rmin: float, rmax: float) -> None:
    if not math.isfinite(t.reward) or not rmin <= t.reward <= rmax:
        rep.hit("reward_bounds", f"{where}: reward {t.reward} not in [{rmin}, {rmax}]")
    if t.judge is not None and t.judge.outcome != "ok":
        why = str(t.judge.info.get("judge_error", ""))[:120]
        rep.hit("judge_error_trainable" if t.trainable else "judge_error", f"{where}: {t.judge.outcome} {why}")
    prev: list[int] | None = None
    has_ids = False
    for turn, c in enumerate(t.completions):
        if c.completion_ids is None:
            continue
        has_ids = True
        lps = c.logprobs
        if lps is not None:
            if len(lps) != len(c.completion_ids):
                rep.hit("logprob_alignment",
                        f"{where} turn {turn}: {len(lps)} logprobs for {len(c.completion_ids)} ids")
            bad = next((i for i, x in enumerate(lps) if not (math.isfinite(x) and x <= 0.0)), None)
            if bad is not None:
                rep.hit("logprob_value", f"{where} turn {turn} token {bad}: logprob {lps[bad]}")
        pids = c.prompt_ids or []
        if prev is not None and pids[: len(prev)] != prev:
            first = next((i for i, (a, b) in enumerate(zip(pids, prev)) if a != b), min(len(pids), len(prev)))
            rep.hit("token_drift", f"{where} turn {turn}: prompt differs from the previous ids at token {first}")
        prev = list(pids) + list(c.completion_ids)
    if t.trainable and t.completions and not has_ids and t.parent_id is None:
        rep.hit("token_missing", where)


def print_report(rep: VerifyReport, console: Any) -> None:
    """The report as a rich table: one row per check."""
    from rich.table import Table
    from rich.text import Text  # examples quote ids and judge messages: never parse them as markup

    table = Table(title=f"verify {rep.path}: {rep.lines} lines, {rep.trajectories} trajectories, "
                        f"{rep.errors} errors, {rep.warnings} warnings")
    for col in ("check", "result", "count", "what it checks / first examples"):
        table.add_column(col, justify="right" if col == "count" else "left")
    for name, (sev, what) in CHECKS.items():
        c = rep.checks.get(name)
        if c is None:
            table.add_row(name, "[green]ok[/green]", "0", f"[dim]{what}[/dim]")
        else:
            mark = "[red]FAIL[/red]" if sev == "error" else "[yellow]warn[/yellow]"
            table.add_row(name, mark, str(c.count), Text("\n".join([what, *c.examples])))  # what it means, then where
    console.print(table)
