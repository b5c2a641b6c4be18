"""Run plots (matplotlib, Agg): reward per env and per group, pass@k, episode and model-call latency,
concurrency and loop lag over time.

Figures come from a :class:`~swarmgym.viewer.index.RunIndex` (its columns), so ``swarmgym plot`` and the
viewer's plot page draw the same thing. Model-call latencies are per completion, read from at most
``MAX_LATENCY_EPISODES`` evenly spaced episodes (the title says when it is a sample). Concurrency and loop
lag over time are not in the store (trajectories carry durations, not start times): they come from the
run's timeline beside it (:mod:`swarmgym.rollout.timeline`, written by ``swarmgym run --out``), when there.

Needs the ``viz`` extra: ``pip install 'swarmgym[viz]'``.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np

from ..rollout.timeline import read_timeline, timeline_path
from .index import F_TOP, RunIndex

__all__ = ["pass_at_k_curves", "render_plots", "save_plots"]

MAX_LATENCY_EPISODES = 5000
MAX_GROUPS_SHOWN = 40


def _plt() -> Any:
    try:
        import matplotlib
    except ImportError:
        from ..errors import ConfigError

        raise ConfigError("plots need matplotlib: pip install 'swarmgym[viz]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    _plt().close(fig)
    return buf.getvalue()


def render_plots(
    index: RunIndex, *, success: float = 1.0, timeline: str | Path | None = None
) -> list[dict[str, Any]]:
    """``[{"name", "title", "png"}]`` for every plot the run's data allows (top-level episodes only).

    Args:
        index: a built index.
        success: reward at or above which an episode counts as solved (pass@k).
        timeline: the run's timeline file (default: the one beside the indexed store, if there).
    """
    plt = _plt()
    top = np.flatnonzero(index.col("flags") & F_TOP)
    reward = index.col("reward")[top]
    env = index.col("env")[top]
    task = index.col("taskh")[top]
    out: list[dict[str, Any]] = []
    if len(top) == 0:
        return out
    names = index.envs.names
    envs = sorted(set(env.tolist()))

    fig, ax = plt.subplots(figsize=(7, 3.5))
    data = [reward[env == e] for e in envs]
    ax.boxplot(data, showmeans=True)
    ax.set_xticks(range(1, len(envs) + 1), [names[e] or "(no env)" for e in envs], rotation=15)
    ax.set_ylabel("reward")
    ax.set_title(f"reward per env ({len(top)} episodes)")
    out.append({"name": "reward_by_env", "title": "reward distribution per env", "png": _png(fig)})

    # groups = the episodes of one task (GRPO groups); show per-group spread for the largest groups
    uniq, inv, counts = np.unique(task, return_inverse=True, return_counts=True)
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.5))
    means = np.bincount(inv, weights=reward) / counts
    a1.hist(means, bins=30)
    a1.set_xlabel("mean reward of a group")
    a1.set_ylabel("groups")
    a1.set_title(f"{len(uniq)} groups")
    shown = np.argsort(-counts, kind="stable")[:MAX_GROUPS_SHOWN]
    a2.boxplot([reward[inv == g] for g in shown])
    a2.set_xticks([])
    a2.set_xlabel(f"the {len(shown)} largest groups")
    a2.set_ylabel("reward")
    out.append({"name": "reward_by_group", "title": "reward per group", "png": _png(fig)})

    fig, ax = plt.subplots(figsize=(6, 3.5))
    for name, curve in pass_at_k_curves(index, success).items():
        ax.plot([k for k, _ in curve], [v for _, v in curve], marker="o", label=name or "(no env)")
    ax.set_xlabel("k")
    ax.set_ylabel(f"pass@k (reward ≥ {success:g})")
    ax.set_ylim(0, 1.02)
    ax.legend(fontsize=8)
    ax.set_title("pass@k per env (mean over groups of at least k samples)")
    out.append({"name": "pass_at_k", "title": "pass@k", "png": _png(fig)})

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.hist(index.col("wall_s")[top], bins=50)
    ax.set_xlabel("episode wall time (s)")
    ax.set_ylabel("episodes")
    ax.set_title("episode latency")
    out.append({"name": "episode_latency", "title": "episode latency histogram", "png": _png(fig)})

    lat, sampled = _call_latencies(index, top)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.hist(lat, bins=50)
    ax.set_xlabel("model call latency (s)")
    ax.set_ylabel("calls")
    ax.set_title(f"model-call latency ({len(lat)} calls" + (f", sampled from {sampled} episodes)" if sampled < len(top)
                                                          else ")"))
    out.append({"name": "model_latency", "title": "model-call latency histogram", "png": _png(fig)})
    out.extend(_timeline_plots(plt, read_timeline(timeline or timeline_path(index.path))))
    return out


def _timeline_plots(plt: Any, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Concurrency and loop lag over time, from a run's timeline samples (none: no plots)."""
    if len(rows) < 2:
        return []
    t0 = rows[0]["t"]
    t = np.array([r["t"] - t0 for r in rows])
    # a resumed run appends after a pause with no process running: break the lines there, do not join them
    dt = np.diff(t)
    gaps = np.flatnonzero(dt > 5 * max(float(np.median(dt)), 1e-3)) + 1 if len(dt) > 1 else np.array([], int)

    def col(key: str) -> np.ndarray:
        return np.insert(np.array([float(r.get(key, 0.0)) for r in rows]), gaps, np.nan)

    t = np.insert(t, gaps, np.nan)

    fig, a1 = plt.subplots(figsize=(8, 3.5))
    a1.plot(t, col("in_flight"), label="episodes in flight (children included)")
    a1.plot(t, col("queue_depth"), label="admitted, waiting for an episode slot")
    a1.set_xlabel("time since the first sample (s)")
    a1.set_ylabel("episodes")
    a2 = a1.twinx()
    a2.plot(t, col("episodes_per_s"), color="tab:green", alpha=0.6, label="finished/s")
    a2.set_ylabel("episodes finished per second")
    lines = a1.get_legend_handles_labels()[0] + a2.get_legend_handles_labels()[0]
    a1.legend(lines, [ln.get_label() for ln in lines], fontsize=8, loc="upper right")
    a1.set_title(f"concurrency over time ({len(rows)} samples)")
    out = [{"name": "concurrency_over_time", "title": "concurrency over time", "png": _png(fig)}]

    fig, ax = plt.subplots(figsize=(8, 3.5))
    ax.plot(t, col("loop_lag_p99_ms"), label="p99 in the interval")
    ax.plot(t, col("loop_lag_max_ms"), alpha=0.6, label="max in the interval")
    ax.set_xlabel("time since the first sample (s)")
    ax.set_ylabel("event-loop lag (ms)")
    ax.legend(fontsize=8)
    ax.set_title("event-loop lag over time")
    out.append({"name": "loop_lag_over_time", "title": "event-loop lag over time", "png": _png(fig)})
    return out


def pass_at_k_curves(index: RunIndex, success: float = 1.0) -> dict[str, list[tuple[int, float]]]:
    """Per env: ``[(k, mean unbiased pass@k over the tasks with at least k top-level samples)]``."""
    from ..rollout.groups import pass_at_k

    top = np.flatnonzero(index.col("flags") & F_TOP)
    env, task = index.col("env")[top], index.col("taskh")[top]
    solved = index.col("reward")[top] >= success
    out: dict[str, list[tuple[int, float]]] = {}
    for e in sorted(set(env.tolist())):
        sel = env == e
        _, inv, n = np.unique(task[sel], return_inverse=True, return_counts=True)
        c = np.bincount(inv, weights=solved[sel].astype(float)).astype(int)
        out[index.envs.names[e]] = [
            (k, float(np.mean([pass_at_k(int(nn), int(cc), k) for nn, cc in zip(n, c) if nn >= k])))
            for k in range(1, int(n.max()) + 1)
        ]
    return out


def _call_latencies(index: RunIndex, top: np.ndarray) -> tuple[list[float], int]:
    rows = top if len(top) <= MAX_LATENCY_EPISODES else top[np.linspace(0, len(top) - 1, MAX_LATENCY_EPISODES).astype(int)]
    lat: list[float] = []
    for r in rows:
        for c in index.read(int(r)).get("completions") or ():
            v = c.get("latency_s") if isinstance(c, dict) else None
            if isinstance(v, (int, float)):
                lat.append(float(v))
    return lat, len(rows)


def save_plots(path: str | Path, out_dir: str | Path, *, success: float = 1.0) -> list[Path]:
    """Index ``path`` (plain or gzip: a gzip store is decompressed to a temporary file first) and write one
    PNG per plot into ``out_dir``; returns the files written."""
    import gzip
    import shutil
    import tempfile

    src = Path(path)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        plain = src
        if src.is_file():
            with open(src, "rb") as f:
                packed = f.read(2) == b"\x1f\x8b"
            if packed:
                plain = Path(tmp) / "run.jsonl"
                with gzip.open(src, "rb") as fin, open(plain, "wb") as fout:
                    shutil.copyfileobj(fin, fout)
        index = RunIndex(plain).build()
        files = []
        for p in render_plots(index, success=success, timeline=timeline_path(src)):
            f = out / f"{p['name']}.png"
            f.write_bytes(p["png"])
            files.append(f)
    return files
