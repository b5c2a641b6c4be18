"""A run's timeline: concurrency, throughput and event-loop lag sampled over time, one JSON line per sample.

The store holds what each episode did, not what the run looked like while it went on; the timeline holds
that (how many episodes were in flight, how many waited, how late the loop woke up), so ``swarmgym plot`` and
the viewer can draw concurrency and loop lag over time after the process is gone. ``swarmgym run --out
RUN.jsonl`` writes ``RUN.timeline.jsonl`` beside it (:func:`timeline_path`); a resumed run appends to it.
Samples are denser in the first seconds of a run (so a short run still has a shape), then one per interval.

Each line: ``t`` (Unix time), ``elapsed_s`` (since the run started), ``in_flight`` (episodes alive, children
included), ``queue_depth``, ``episodes_finished``/``children_finished`` (cumulative), ``episodes_per_s``
(over the interval), ``loop_lag_p99_ms``/``loop_lag_max_ms`` (probes in the interval), ``lag_probes``.

This module reads and writes plain JSON lines only (the viewer imports it; it never loads the manager).
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

__all__ = ["TimelineWriter", "read_timeline", "timeline_path"]


def timeline_path(store_path: str | Path) -> Path:
    """``RUN.timeline.jsonl`` for a store at ``RUN.jsonl`` / ``RUN.jsonl.gz`` (any other name: name + suffix)."""
    p = Path(store_path)
    name = p.name
    for ext in (".jsonl.gz", ".jsonl", ".gz"):
        if name.endswith(ext):
            name = name[: -len(ext)]
            break
    return p.with_name(name + ".timeline.jsonl")


def read_timeline(path: str | Path) -> list[dict[str, Any]]:
    """The samples of a timeline file, oldest first; a damaged line (a run killed mid-write) is skipped."""
    out: list[dict[str, Any]] = []
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        return out
    with f:
        for line in f:
            try:
                row = json.loads(line)
            except ValueError:
                continue
            if isinstance(row, dict) and isinstance(row.get("t"), (int, float)):
                out.append(row)
    return out


def _p99(values: list[float]) -> float:
    if not values:
        return 0.0
    s = sorted(values)
    return s[min(len(s) - 1, math.ceil(0.99 * len(s)) - 1)]


class TimelineWriter:
    """Appends samples of a run's metrics and loop-lag probes to a file (the manager calls :meth:`sample`
    about every ``interval_s``, more often in a run's first seconds).

    Args:
        path: the timeline file (appended to; created with its folder if missing).
        metrics: the run's :class:`~swarmgym.rollout.metrics.RolloutMetrics`.
        lag: the run's :class:`~swarmgym.rollout.metrics.LoopLagMonitor` (its ``recent`` probes are taken).
        interval_s: time between samples.
    """

    def __init__(self, path: str | Path, metrics: Any, lag: Any, interval_s: float = 1.0) -> None:
        self.path = Path(path)
        self.metrics = metrics
        self.lag = lag
        self.interval_s = interval_s
        self._last_t = time.monotonic()
        self._last_done = metrics.counters["episodes_finished"]

    def sample(self) -> dict[str, Any]:
        """Take one sample (the lag probes since the previous one) and append it to the file."""
        m = self.metrics
        now = time.monotonic()
        lags = list(self.lag.recent)
        self.lag.recent.clear()
        done = m.counters["episodes_finished"]
        row = {
            "t": round(time.time(), 3),
            "elapsed_s": round(m.elapsed_s, 3),
            "in_flight": int(m.gauges["in_flight"]),
            "queue_depth": int(m.gauges["queue_depth"]),
            "episodes_finished": int(done),
            "children_finished": int(m.counters["children_finished"]),
            "episodes_per_s": round((done - self._last_done) / max(now - self._last_t, 1e-9), 3),
            "loop_lag_p99_ms": round(_p99(lags) * 1000, 3),
            "loop_lag_max_ms": round(max(lags, default=0.0) * 1000, 3),
            "lag_probes": len(lags),
        }
        self._last_t, self._last_done = now, done
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as f:  # a line per second: open/append/close is cheap
            f.write(json.dumps(row) + "\n")
        return row
