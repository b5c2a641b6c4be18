"""Item F1 for list and table answers: item-level and row-level precision / recall / F1.

Answers are lists (``["Paris", "Rome"]``) or tables. A table is a list of dicts (``[{"city": "Paris",
"country": "France"}, …]``) or a markdown table (string); a response may contain either, or a JSON array,
and the last one in the text is used.

- **Lists**: items are the normalised strings, compared as multisets (duplicates must be matched twice).
- **Tables**: predicted rows are paired with gold rows, by the ``key`` columns when given (normalised
  equality) or else by an optimal assignment that maximises the number of agreeing cells
  (``scipy.optimize.linear_sum_assignment``). Only the gold columns are scored (extra predicted columns
  are ignored; column names are normalised). **Item level**: a cell is a true positive when its paired
  gold cell agrees; precision divides by the predicted non-empty cells, recall by the gold non-empty
  cells. **Row level**: a row is a true positive when every gold column agrees.

Both empty → all scores 1 (nothing to find, nothing claimed); one side empty → 0.

Example:
    >>> r = item_f1(["Paris", "rome"], ["paris", "Rome", "Berlin"])
    >>> round(r.item_f1, 3), r.item_precision, round(r.item_recall, 3)
    (0.8, 1.0, 0.667)
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

from ..wire import JudgeResult, Task, Trajectory
from .base import JudgeContext
from .extract import extract_json
from .rules import normalize_answer, parse_number, response_text

__all__ = ["F1Report", "ItemF1", "item_f1", "normalize_cell", "parse_markdown_table", "parse_table"]

MAX_ROWS = 5_000  # beyond this a "table" is an attack or a bug; the assignment is O(n^3)


@dataclass(frozen=True, slots=True)
class F1Report:
    """Precision / recall / F1 at item (cell) and row level, plus the counts behind them."""

    item_precision: float
    item_recall: float
    item_f1: float
    row_precision: float
    row_recall: float
    row_f1: float
    item_tp: float = 0
    item_pred: int = 0
    item_gold: int = 0
    row_tp: int = 0
    row_pred: int = 0
    row_gold: int = 0

    def as_dict(self) -> dict[str, float]:
        return {k: float(v) for k, v in asdict(self).items()}


def normalize_cell(v: Any) -> str:
    """Normalised cell text: numbers canonicalised (``"1,000.0"`` → ``"1000"``), text as in
    :func:`~swarmgym.judges.rules.normalize_answer`."""
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (list, tuple)):
        return ", ".join(normalize_cell(x) for x in v)
    if isinstance(v, Mapping):
        return normalize_answer(json.dumps(v, sort_keys=True))
    n = parse_number(v) if isinstance(v, (int, float, str)) else None
    if n is not None:
        return f"{n:.10g}"
    return normalize_answer(str(v))


def _prf(tp: float, npred: int, ngold: int) -> tuple[float, float, float]:
    if npred == 0 and ngold == 0:
        return 1.0, 1.0, 1.0
    p = tp / npred if npred else 0.0
    r = tp / ngold if ngold else 0.0
    f = 2 * p * r / (p + r) if p + r > 0 else 0.0
    return p, r, f


_SEP_CELL = re.compile(r"^:?-{1,}:?$")


def _split_row(line: str) -> list[str]:
    s = line.strip()
    s = s.removeprefix("|")
    if s.endswith("|") and not s.endswith("\\|"):
        s = s[:-1]
    cells = re.split(r"(?<!\\)\|", s)
    return [c.strip().replace("\\|", "|") for c in cells]


def parse_markdown_table(text: Any) -> list[dict[str, str]] | None:
    """The last markdown table in ``text`` as a list of dicts (header → cell); None when there is none.

    A table is a header row, a separator row (``|---|:--:|``) and body rows, all containing ``|``.
    Short rows are padded with empty cells; extra cells are dropped.
    """
    if not isinstance(text, str):
        return None
    lines = text.splitlines()
    tables: list[list[dict[str, str]]] = []
    i = 0
    while i + 1 < len(lines):
        head, sep = lines[i], lines[i + 1]
        if "|" in head and "|" in sep and all(_SEP_CELL.match(c.replace(" ", "")) for c in _split_row(sep)):
            cols = _split_row(head)
            rows: list[dict[str, str]] = []
            j = i + 2
            while j < len(lines) and "|" in lines[j] and len(rows) < MAX_ROWS:
                cells = _split_row(lines[j])
                cells = (cells + [""] * len(cols))[: len(cols)]
                rows.append(dict(zip(cols, cells)))
                j += 1
            tables.append(rows)
            i = j
        else:
            i += 1
    return tables[-1] if tables else None


def parse_table(value: Any) -> list[dict[str, Any]] | list[Any] | None:
    """A list or table from a Python value or response text.

    Accepts a list (of dicts or scalars), a dict with one list value (``{"rows": [...]}``), a JSON string,
    or text containing a markdown table or a JSON array/object (the last one wins: markdown tables are
    preferred when both are present, since models write tables that way when asked for one), or else a
    bullet / numbered list.
    """
    if value is None:
        return None
    if isinstance(value, Mapping):
        lists = [v for v in value.values() if isinstance(v, list)]
        return lists[0] if len(lists) == 1 else None
    if isinstance(value, (list, tuple)):
        return list(value)[:MAX_ROWS]
    if isinstance(value, str):
        md = parse_markdown_table(value)
        if md is not None:
            return md
        try:
            v = json.loads(value)
        except ValueError:
            v = extract_json(value)
        if isinstance(v, (list, Mapping)):
            return parse_table(v)
        bullets = re.findall(r"^\s*(?:[-*+\u2022]|\d+[.)])\s+(.+?)\s*$", value, flags=re.MULTILINE)
        return bullets[:MAX_ROWS] or None
    return None


def _list_f1(pred: Sequence[Any], gold: Sequence[Any], norm: Callable[[Any], str]) -> F1Report:
    pc = Counter(x for x in (norm(v) for v in pred) if x)
    gc = Counter(x for x in (norm(v) for v in gold) if x)
    tp = sum((pc & gc).values())
    npred, ngold = sum(pc.values()), sum(gc.values())
    p, r, f = _prf(tp, npred, ngold)
    return F1Report(p, r, f, p, r, f, tp, npred, ngold, tp, npred, ngold)


def item_f1(
    pred: Any,
    gold: Any,
    *,
    key: str | Sequence[str] | None = None,
    columns: Sequence[str] | None = None,
    normalize: Callable[[Any], str] = normalize_cell,
) -> F1Report:
    """Item- and row-level P/R/F1 of ``pred`` against ``gold`` (lists or tables; see the module doc).

    Args:
        pred: predicted list/table (any form :func:`parse_table` accepts); unparseable → all zeros.
        gold: gold list/table.
        key: column(s) identifying a row (e.g. the entity name); None pairs rows optimally.
        columns: gold columns to score (default: all columns of the gold table).
        normalize: cell normaliser.

    Returns:
        An :class:`F1Report`.
    """
    g = parse_table(gold)
    if g is None:
        raise ValueError(f"gold answer is not a list or table: {type(gold).__name__}")
    p = parse_table(pred)
    if p is None:
        p = []
    is_table = any(isinstance(r, Mapping) for r in g)
    if not is_table:
        if any(isinstance(r, Mapping) for r in p):  # a table where a list was wanted: use the first column
            p = [next(iter(r.values()), "") if isinstance(r, Mapping) else r for r in p]
        return _list_f1(p, g, normalize)

    colnames: dict[Any, str] = {}  # every row repeats the same headers: normalise each once

    def nrow(row: Any) -> dict[str, str]:
        if not isinstance(row, Mapping):
            return {}
        out = {}
        for k, v in row.items():
            ck = colnames.get(k)
            if ck is None:
                ck = colnames[k] = normalize_answer(str(k))
            out[ck] = normalize(v)
        return out

    grows = [nrow(r) for r in g if isinstance(r, Mapping)]
    prows = [nrow(r) for r in p if isinstance(r, Mapping)]
    cols = [normalize_answer(c) for c in columns] if columns else sorted({c for r in grows for c in r})
    keys = [normalize_answer(k) for k in ([key] if isinstance(key, str) else (key or []))]

    def cells(r: dict[str, str]) -> int:
        return sum(1 for c in cols if r.get(c, ""))

    npred_items = sum(cells(r) for r in prows)
    ngold_items = sum(cells(r) for r in grows)

    def agree(pr: dict[str, str], gr: dict[str, str]) -> int:
        return sum(1 for c in cols if gr.get(c, "") and pr.get(c, "") == gr.get(c, ""))

    pairs: list[tuple[int, int]] = []
    if keys:
        index: dict[tuple[str, ...], list[int]] = {}
        for gi, gr in enumerate(grows):
            index.setdefault(tuple(gr.get(k, "") for k in keys), []).append(gi)
        for pi, pr in enumerate(prows):
            slot = index.get(tuple(pr.get(k, "") for k in keys))
            if slot:
                pairs.append((pi, slot.pop(0)))
        item_tp = sum(agree(prows[a], grows[b]) for a, b in pairs)
    elif prows and grows:
        import numpy as np
        from scipy.optimize import linear_sum_assignment

        # agreement matrix by column: intern each cell to an id so equality is a vectorised compare
        m = np.zeros((len(prows), len(grows)), dtype=float)
        for c in cols:
            ids: dict[str, int] = {"": -1}
            pv = np.array([ids.setdefault(r.get(c, ""), len(ids)) for r in prows])
            gv = np.array([ids.setdefault(r.get(c, ""), len(ids)) for r in grows])
            m += (pv[:, None] == gv[None, :]) & (gv[None, :] >= 0)
        ri, ci = linear_sum_assignment(m, maximize=True)
        pairs = [(int(a), int(b)) for a, b in zip(ri, ci) if m[a, b] > 0]
        item_tp = int(sum(m[a, b] for a, b in pairs))
    else:
        item_tp = 0

    row_tp = sum(
        1 for a, b in pairs if all(prows[a].get(c, "") == grows[b].get(c, "") for c in cols)
    )
    ip, ir, iff = _prf(item_tp, npred_items, ngold_items)
    rp, rr, rf = _prf(row_tp, len(prows), len(grows))
    return F1Report(ip, ir, iff, rp, rr, rf, item_tp, npred_items, ngold_items, row_tp, len(prows), len(grows))


class ItemF1:
    """Judge for list/table answers; reward = item-level F1 (or row-level, ``level="row"``).

    The prediction is parsed from the response (markdown table, JSON array, or a JSON object with one list
    value); ``task.answer`` holds the gold list/table; ``key``/``columns`` may also come from
    ``task.metadata["table_key"]`` / ``["table_columns"]``. Facets report all six scores.
    """

    name = "f1"

    def __init__(self, *, level: Literal["item", "row"] = "item", key: str | Sequence[str] | None = None,
                 columns: Sequence[str] | None = None, name: str | None = None) -> None:
        if level not in ("item", "row"):
            raise ValueError(f"level must be 'item' or 'row', got {level!r}")
        self.level = level
        self.key = key
        self.columns = columns
        if name:
            self.name = name

    async def score(self, task: Task, trajectory: Trajectory, ctx: JudgeContext) -> JudgeResult:
        text = response_text(trajectory)
        key = self.key if self.key is not None else task.metadata.get("table_key")
        cols = self.columns if self.columns is not None else task.metadata.get("table_columns")
        pred = parse_table(text)
        rep = item_f1(pred if pred is not None else [], task.answer, key=key, columns=cols)
        r = rep.item_f1 if self.level == "item" else rep.row_f1
        facets = {k: v for k, v in rep.as_dict().items() if k.endswith(("precision", "recall", "f1"))}
        facets["parsed"] = float(pred is not None)
        return JudgeResult(reward=r, facets=facets, info={"counts": rep.as_dict()})
