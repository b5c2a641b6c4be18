"""Rollout metrics: counters, gauges and histograms, an event-loop lag probe, a live rich dashboard and an
optional Prometheus endpoint.

:class:`RolloutMetrics` is plain Python data (picklable, no process-global registry): the manager updates it
on the event-loop thread, the dashboard and the Prometheus collector only read it. Histograms use fixed
log-spaced buckets, so an observation costs one bisect and quantiles are bucket-accurate (~12%).
"""

from __future__ import annotations

import bisect
import math
import time
from collections import Counter, deque
from typing import Any

__all__ = ["Histogram", "RolloutMetrics", "LoopLagMonitor", "LiveDashboard", "serve_prometheus", "summary_rows"]

# 1 µs .. ~1 h, 12% apart
_BOUNDS: tuple[float, ...] = tuple(1e-6 * 1.12**i for i in range(int(math.log(3.6e9) / math.log(1.12)) + 2))


class Histogram:
    """Counts of observations in fixed log-spaced buckets; cheap to update, approximate quantiles."""

    __slots__ = ("counts", "n", "total", "max")

    def __init__(self) -> None:
        self.counts = [0] * (len(_BOUNDS) + 1)
        self.n = 0
        self.total = 0.0
        self.max = 0.0

    def observe(self, v: float) -> None:
        self.counts[bisect.bisect_left(_BOUNDS, v)] += 1
        self.n += 1
        self.total += v
        if v > self.max:
            self.max = v

    @property
    def mean(self) -> float:
        return self.total / self.n if self.n else 0.0

    def quantile(self, q: float) -> float:
        """Upper bound of the bucket holding the ``q`` quantile (0 when empty)."""
        if not self.n:
            return 0.0
        rank = q * self.n
        seen = 0
        for i, c in enumerate(self.counts):
            seen += c
            if seen >= rank and c:
                return min(_BOUNDS[i] if i < len(_BOUNDS) else self.max, self.max)
        return self.max

    def buckets(self) -> list[tuple[float, int]]:
        """Cumulative ``(upper bound, count)`` pairs of the non-empty range (for Prometheus)."""
        out = []
        cum = 0
        for i, c in enumerate(self.counts[:-1]):
            cum += c
            if c:
                out.append((_BOUNDS[i], cum))
        return out


class RolloutMetrics:
    """Counters, gauges and histograms of one or more runs.

    Counters: ``episodes_started``, ``episodes_finished`` (top-level), ``children_finished``, ``model_calls``,
    ``model_retries``, ``tool_calls``, ``restarts``, ``status_<status>`` (top-level), ``child_status_<status>``,
    ``reward_sum``, ``samples_passed``/``samples_in_groups``, ``judge_error``/``judge_timeout`` (top-level
    trajectories whose judge failed; ``child_judge_…`` for children); ``errors`` counts
    failed episodes by error kind. Gauges: ``in_flight`` (episodes alive, children included), ``peak_in_flight``, ``peak_episode_slots``, ``queue_depth``, ``paused``, ``peak_turn_queue`` (most turns waiting for their slice of the loop). Histograms (seconds):
    ``model_latency_s``, ``tool_latency_s`` (mean per call, per episode), ``sandbox_wait_s``,
    ``loop_lag_s``, ``episode_wall_s``, ``turn_wait_s`` (a turn's wait for its slice of the event loop, only
    when it had to wait; see ``RolloutLimits.turns_per_tick``).
    """

    def __init__(self) -> None:
        self.counters: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.gauges: dict[str, float] = {"in_flight": 0.0, "peak_in_flight": 0.0, "queue_depth": 0.0, "paused": 0.0}
        self.hist: dict[str, Histogram] = {
            k: Histogram()
            for k in ("model_latency_s", "tool_latency_s", "sandbox_wait_s", "loop_lag_s", "episode_wall_s", "turn_wait_s")
        }
        self.extra: dict[str, float] = {}
        """Sums of per-trajectory metrics worth a summary (e.g. ``critical_steps``), with ``extra_n``."""
        self.extra_n: Counter[str] = Counter()
        self.groups: Counter[str] = Counter()
        """``done``, ``passed`` (≥ 1 sample passed), ``zero_variance``, ``filtered``."""
        self.started_at = time.monotonic()
        self.finished_at: float | None = None

    def in_flight_up(self) -> None:
        g = self.gauges
        n = g["in_flight"] = g["in_flight"] + 1
        if n > g["peak_in_flight"]:
            g["peak_in_flight"] = n

    def observe(self, name: str, v: float) -> None:
        self.hist[name].observe(v)

    def record_episode(self, traj: Any, top_level: bool) -> None:
        """Account one finished (or cancelled) trajectory."""
        c = self.counters
        c[("status_" if top_level else "child_status_") + traj.status] += 1
        m = traj.metrics
        if top_level:
            c["episodes_finished"] += 1
            c["reward_sum"] += traj.reward
            for k in ("critical_steps",):
                if k in m:
                    self.extra[k] = self.extra.get(k, 0.0) + m[k]
                    self.extra_n[k] += 1
        else:
            c["children_finished"] += 1
        n_tools = m.get("tool_calls", 0.0)
        if n_tools:
            c["tool_calls"] += int(n_tools)
            self.hist["tool_latency_s"].observe(m.get("tool_time_s", 0.0) / n_tools)
        wall = m.get("wall_s")
        if wall is not None:
            self.hist["episode_wall_s"].observe(wall)
        if traj.status == "error":
            self.errors[error_kind(traj.error)] += 1
        j = traj.judge
        if j is not None and j.outcome != "ok":  # a judge failure is counted, never a silent reward 0
            c[("judge_" if top_level else "child_judge_") + j.outcome] += 1

    @property
    def elapsed_s(self) -> float:
        end = self.finished_at if self.finished_at is not None else time.monotonic()
        return max(end - self.started_at, 1e-9)

    @property
    def episodes_per_s(self) -> float:
        return self.counters["episodes_finished"] / self.elapsed_s

    @property
    def mean_reward(self) -> float:
        """Mean reward of the finished top-level episodes, cancelled ones left out (never judged: no verdict)."""
        c = self.counters
        n = c["episodes_finished"] - c["status_cancelled"]
        return c["reward_sum"] / n if n > 0 else 0.0

    def snapshot(self) -> dict[str, Any]:
        """Everything as plain data (JSON-serialisable)."""
        return {
            "elapsed_s": self.elapsed_s,
            "episodes_per_s": self.episodes_per_s,
            "mean_reward": self.mean_reward,
            "counters": dict(self.counters),
            "errors": dict(self.errors),
            "gauges": dict(self.gauges),
            "groups": dict(self.groups),
            "histograms": {
                k: {"n": h.n, "mean": h.mean, "p50": h.quantile(0.5), "p99": h.quantile(0.99), "max": h.max}
                for k, h in self.hist.items()
            },
            "extra": {k: v / self.extra_n[k] for k, v in self.extra.items() if self.extra_n[k]},
        }


def error_kind(error: str | None) -> str:
    """The exception class name an error string starts with (``"PolicyConnectionError: …"``)."""
    if not error:
        return "unknown"
    head = error.split(":", 1)[0].strip()
    return head if head.isidentifier() else "other"


class LoopLagMonitor:
    """Measures event-loop lag: how late a short sleep wakes up (into ``loop_lag_s``).

    Run :meth:`run` as a task; cancel it to stop.
    """

    def __init__(self, metrics: RolloutMetrics, interval_s: float = 0.02) -> None:
        self.metrics = metrics
        self.interval_s = interval_s
        self.last_s = 0.0
        """The latest lag measured (admission backs off while it is high)."""
        self.recent: deque[float] = deque(maxlen=4096)
        """Probes not yet taken by a timeline sample (bounded: nobody may be taking them)."""

    async def run(self) -> None:
        import anyio

        h = self.metrics.hist["loop_lag_s"]
        clock = time.perf_counter
        while True:
            t0 = clock()
            await anyio.sleep(self.interval_s)
            lag = max(clock() - t0 - self.interval_s, 0.0)
            self.last_s = lag
            h.observe(lag)
            self.recent.append(lag)


def summary_rows(metrics: RolloutMetrics, group_size: int = 1) -> list[tuple[str, str]]:
    """(label, value) rows of a run summary: episodes, statuses, reward, pass@k, speed, wall time."""
    c = metrics.counters
    n = c["episodes_finished"]
    rows = [
        ("episodes", f"{n:,}"),
        (
            "ok / truncated / error / cancelled",
            f"{c['status_ok']:,} / {c['status_truncated']:,} / {c['status_error']:,} / {c['status_cancelled']:,}",
        ),
        ("mean reward" + (" (cancelled left out)" if c["status_cancelled"] else ""), f"{metrics.mean_reward:.4f}"),
    ]
    g = metrics.groups
    if g["done"]:
        rows.append((f"pass@{group_size}", f"{g['passed'] / g['done']:.4f}"))
        if group_size > 1:
            rows.append(("pass@1", f"{c['samples_passed'] / max(c['samples_in_groups'], 1):.4f}"))
    if c["children_finished"]:
        rows.append(("child episodes", f"{c['children_finished']:,}"))
    rows.append(("episodes/s", f"{metrics.episodes_per_s:,.1f}"))
    rows.append(("wall time", f"{metrics.elapsed_s:,.2f} s"))
    for k, v in metrics.extra.items():
        if metrics.extra_n[k]:
            rows.append((f"mean {k.replace('_', ' ')}", f"{v / metrics.extra_n[k]:.2f}"))
    if metrics.errors:
        top = ", ".join(f"{k} ×{v}" for k, v in metrics.errors.most_common(3))
        rows.append(("errors by kind", top))
    return rows


class LiveDashboard:
    """A live rich panel (episodes/s, in flight, mean reward, errors, latencies) while a run goes on.

    Use as a context manager around the run; rich refreshes it from its own thread, reading the metrics.
    """

    def __init__(
        self, metrics: RolloutMetrics, total: int | None = None, title: str = "swarmgym run", console: Any = None
    ) -> None:
        self.metrics = metrics
        self.total = total
        self.title = title
        self.console = console
        self._live: Any = None

    def __rich__(self) -> Any:
        from rich.table import Table

        m = self.metrics
        c = m.counters
        t = Table(title=self.title, show_header=False, expand=False)
        t.add_column("metric", style="bold")
        t.add_column("value", justify="right")
        done = c["episodes_finished"]
        t.add_row("episodes", f"{done:,}" + (f" / {self.total:,}" if self.total else ""))
        t.add_row("in flight / queued", f"{int(m.gauges['in_flight']):,} / {int(m.gauges['queue_depth']):,}")
        t.add_row("episodes/s", f"{m.episodes_per_s:,.1f}")
        t.add_row("mean reward", f"{m.mean_reward:.4f}")
        t.add_row("errors", f"{c['status_error']:,}" + (f" ({m.errors.most_common(1)[0][0]})" if m.errors else ""))
        h = m.hist["model_latency_s"]
        t.add_row("model call p50 / p99", f"{h.quantile(0.5) * 1000:,.1f} / {h.quantile(0.99) * 1000:,.1f} ms")
        lag = m.hist["loop_lag_s"]
        t.add_row("loop lag p99", f"{lag.quantile(0.99) * 1000:,.1f} ms")
        if m.gauges["paused"]:
            t.add_row("state", "paused")
        return t

    def __enter__(self) -> LiveDashboard:
        from rich.live import Live

        self._live = Live(self, console=self.console, refresh_per_second=4, transient=True)
        self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.__exit__(None, None, None)
            self._live = None


class _Collector:
    def __init__(self, metrics: RolloutMetrics) -> None:
        self.metrics = metrics

    def collect(self) -> Any:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

        m = self.metrics
        cf = CounterMetricFamily("swarmgym_rollout", "rollout counters", labels=["name"])
        for k, v in m.counters.items():
            cf.add_metric([k], float(v))
        yield cf
        ef = CounterMetricFamily("swarmgym_rollout_errors", "failed episodes by error kind", labels=["kind"])
        for k, v in m.errors.items():
            ef.add_metric([k], float(v))
        yield ef
        gf = GaugeMetricFamily("swarmgym_rollout_gauge", "rollout gauges", labels=["name"])
        for k, v in m.gauges.items():
            gf.add_metric([k], float(v))
        gf.add_metric(["episodes_per_s"], m.episodes_per_s)
        yield gf
        for k, h in m.hist.items():
            hf = HistogramMetricFamily(f"swarmgym_rollout_{k.removesuffix('_s')}_seconds", k)
            buckets = [(repr(b), float(c)) for b, c in h.buckets()] + [("+Inf", float(h.n))]
            hf.add_metric([], buckets, h.total)
            yield hf


def serve_prometheus(metrics: RolloutMetrics, port: int, addr: str = "127.0.0.1") -> Any:
    """Serve ``metrics`` at ``http://addr:port/metrics`` from a background thread; returns an object whose
    ``shutdown()`` stops it. Uses its own registry (no process-global state).

    Raises:
        ConfigError: prometheus-client is not installed, or the port cannot be bound.
    """
    from ..errors import ConfigError

    try:
        from prometheus_client import CollectorRegistry, start_http_server
    except ImportError:
        raise ConfigError("--metrics-port needs prometheus-client: pip install prometheus-client") from None
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector(metrics))  # type: ignore[arg-type]
    try:
        server, _thread = start_http_server(port, addr=addr, registry=registry)
    except OSError as e:
        raise ConfigError(
            f"cannot serve metrics on {addr}:{port}: {e.strerror or e}; choose another --metrics-port"
        ) from None
    return server
