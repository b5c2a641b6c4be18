"""Shared output for the benchmark scripts: one metric/value table and the JSON file."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

__all__ = ["report"]


def _fmt(v: Any) -> str:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return str(v)
    if isinstance(v, int):
        return f"{v:,}"
    return f"{v:,.4g}" if abs(v) < 1000 else f"{v:,.1f}"


def report(
    title: str,
    results: Mapping[str, Any],
    *,
    json_path: str | None = None,
    targets: Mapping[str, tuple[str, float]] | None = None,
    skip: tuple[str, ...] = (),
) -> None:
    """Print ``results`` as a rich table (with ✓/✗ against ``targets``: key -> ("≤"|"≥", bound)) and
    write them as JSON to ``json_path`` when given."""
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
