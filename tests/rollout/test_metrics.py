"""Metrics: histograms, the live dashboard renders, the Prometheus endpoint serves real HTTP."""

from __future__ import annotations

import urllib.request

import anyio
import pytest
from rich.console import Console

from swarmgym.envs.core import AgentEnv
from swarmgym.policies.scripted import ScriptedPolicy
from swarmgym.rollout import LiveDashboard, RolloutManager, RolloutMetrics, serve_prometheus
from swarmgym.rollout.metrics import Histogram, error_kind, summary_rows
from swarmgym.wire import Task


def test_histogram_quantiles_are_bucket_accurate() -> None:
    h = Histogram()
    for i in range(1, 1001):
        h.observe(i / 1000)
    assert h.n == 1000 and abs(h.mean - 0.5005) < 1e-9
    assert 0.45 <= h.quantile(0.5) <= 0.57
    assert 0.98 <= h.quantile(0.99) <= 1.0
    assert Histogram().quantile(0.5) == 0.0


def test_error_kind() -> None:
    assert error_kind("PolicyConnectionError: refused") == "PolicyConnectionError"
    assert error_kind(None) == "unknown"
    assert error_kind("something odd happened: x") == "other"


@pytest.mark.anyio
async def test_a_run_fills_the_metrics_and_the_dashboard_renders() -> None:
    env = AgentEnv([Task(id=f"t{i}", prompt="q", answer="42") for i in range(10)])
    mgr = RolloutManager(ScriptedPolicy(["42"], latency=0.03))
    await mgr.run(env, group_size=2)
    m = mgr.metrics
    snap = m.snapshot()
    assert snap["counters"]["episodes_finished"] == 20 and snap["counters"]["model_calls"] == 20
    assert snap["histograms"]["model_latency_s"]["n"] == 20
    assert snap["histograms"]["loop_lag_s"]["n"] >= 1
    assert m.episodes_per_s > 0
    rows = dict(summary_rows(m, 2))
    assert rows["episodes"] == "20" and rows["ok / truncated / error / cancelled"] == "20 / 0 / 0 / 0"
    console = Console(record=True, width=100)
    console.print(LiveDashboard(m, total=20))
    text = console.export_text()
    assert "episodes/s" in text and "20 / 20" in text


@pytest.mark.anyio
async def test_prometheus_endpoint_serves_the_metrics() -> None:
    m = RolloutMetrics()
    m.counters["episodes_finished"] = 7
    m.errors["PolicyError"] = 2
    m.observe("model_latency_s", 0.25)
    server = serve_prometheus(m, 0)
    try:
        port = server.server_port
        body = await anyio.to_thread.run_sync(
            lambda: urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read()
        )
    finally:
        server.shutdown()
        server.server_close()
    text = body.decode()
    assert 'swarmgym_rollout_total{name="episodes_finished"} 7.0' in text
    assert 'swarmgym_rollout_errors_total{kind="PolicyError"} 2.0' in text
    assert "swarmgym_rollout_model_latency_seconds_count 1.0" in text


def test_metrics_pickle() -> None:
    import pickle

    m = RolloutMetrics()
    m.observe("loop_lag_s", 0.001)
    assert pickle.loads(pickle.dumps(m)).hist["loop_lag_s"].n == 1


def test_mean_reward_leaves_cancelled_episodes_out() -> None:
    from rollout_helpers import exact_judge, tasks

    async def slow_after_two(messages, tools, ctx):  # type: ignore[no-untyped-def]
        if int(ctx.task.id[1:]) >= 2:
            await anyio.sleep(30)  # cut short by the cancellation below
        return "42"

    mgr = RolloutManager(ScriptedPolicy(slow_after_two))

    async def main() -> None:
        with anyio.move_on_after(2):
            await mgr.run(AgentEnv(tasks(4), judge=exact_judge()))

    anyio.run(main)
    c = mgr.metrics.counters
    assert c["status_ok"] == 2 and c["status_cancelled"] == 2
    assert mgr.metrics.mean_reward == 1.0  # not 0.5: a cancelled episode's reward 0 is no verdict
    assert ("mean reward (cancelled left out)", "1.0000") in summary_rows(mgr.metrics)
