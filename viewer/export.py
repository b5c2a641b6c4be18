"""``swarmgym view RUN.jsonl --html out.html``: the viewer as one static, self-contained file.

The page is the live viewer's page with the data embedded (see :mod:`.page`): the first ``limit`` top-level
episodes in file order with their whole trees, token views and the plots as data URIs. Filters and sorting
run in the page over the embedded rows.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Any

import numpy as np

from .index import F_TOP, RunIndex
from .page import render_page
from .views import Tokenizer, token_view, tree_view

__all__ = ["write_html"]


def write_html(
    path: str | os.PathLike[str], out: str | os.PathLike[str], *, limit: int = 1000,
    tokenizer: Tokenizer | None = None, plots: bool = True,
) -> dict[str, Any]:
    """Write the static viewer of ``path`` to ``out``; returns what it holds (episodes, trajectories, bytes)."""
    index = RunIndex(path).build(max_top=limit)  # reads only as far as the episodes it shows
    top = np.flatnonzero(index.col("flags") & F_TOP)[:limit]
    trajs: dict[int, dict[str, Any]] = {}
    trees: dict[int, Any] = {}
    tokens: dict[int, Any] = {}
    rows: list[dict[str, Any]] = []
    for r in (int(x) for x in top):
        tv = tree_view(index, r)
        if len(tv["nodes"]) > 1:
            trees[r] = tv
        for n in tv["nodes"]:
            row = n["row"]
            if row in trajs:
                continue
            d = index.read(row)
            rows.append(index.summary(row, d))
            d["_row"] = row
            d["_parent_row"] = n["parent"]
            trajs[row] = d
            if rows[-1]["tokens"]:
                tokens[row] = token_view(d, tokenizer)
    plot_list: list[dict[str, str]] = []
    note = ""
    if plots:
        from ..errors import ConfigError
        from .plots import render_plots

        try:
            plot_list = [{"name": p["name"], "title": p["title"],
                          "src": "data:image/png;base64," + base64.b64encode(p["png"]).decode()}
                         for p in render_plots(index)]
        except ConfigError as e:  # no matplotlib: the page says so instead of failing the export
            note = str(e)
    meta = index.meta()
    partial = index.end < meta["size"]
    meta["note"] = (f"static export of the first {len(top)} episodes (the file holds more)" if partial
                    else "static export")
    data = {"meta": meta, "rows": rows, "trajs": trajs, "trees": trees, "tokens": tokens,
            "plots": {"plots": plot_list, "note": note}}
    html = render_page(data, title=f"swarmgym view · {Path(path).name}")
    Path(out).write_text(html, encoding="utf-8")
    return {"episodes": len(top), "trajectories": len(trajs), "bytes": len(html.encode())}
