"""The run timeline: concurrency, throughput and loop lag sampled while a real run goes on, written beside the
store by ``swarmgym run``, drawn by ``swarmgym plot``; a timeline that cannot be written never stops a run."""

from __future__ import annotations

import time
from pathlib import Path
import anyio
import pytest
from rollout_helpers import exact_judge, tasks

from swarmgym.envs.core import AgentEnv
from swarmgym.policies.scripted import ScriptedPolicy
from swarmgym.rollout import MemoryStore, RolloutLimits, RolloutManager
from swarmgym.rollout.timeline import read_timeline, timeline_path


def test_timeline_path_sits_beside_the_store() -> None:
    assert timeline_path("runs/a.jsonl") == Path("runs/a.timeline.jsonl")
    assert timeline_path("runs/a.jsonl.gz") == Path("runs/a.timeline.jsonl")
    assert timeline_path("b.out") == Path("b.out.timeline.jsonl")


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_a_run_samples_concurrency_until_its_end(tmp_path: Path, backend: str) -> None:
    if backend == "trio":
        pytest.importorskip("trio")
    path = tmp_path / "t.jsonl"
    env = AgentEnv(tasks(40), judge=exact_judge())
    mgr = RolloutManager(ScriptedPolicy(["42"], latency=0.05), RolloutLimits(max_episodes=8),
                         timeline=path, timeline_interval_s=0.05)  # fmt: skip
    out = anyio.run(mgr.run, env, backend=backend)
    assert len(out) == 40
    rows = read_timeline(path)
    assert len(rows) >= 4  # 40 episodes of >= 50 ms, 8 at a time: >= 0.25 s at one sample per 50 ms
    assert [r["t"] for r in rows] == sorted(r["t"] for r in rows)
    peak = max(r["in_flight"] for r in rows)
    assert 2 <= peak <= 8  # episodes overlapped, never above the cap
    assert rows[-1]["episodes_finished"] == 40 and rows[-1]["in_flight"] == 0  # the end state is sampled
    assert rows[0]["episodes_finished"] == 0
    assert any(r["episodes_per_s"] > 0 for r in rows) and sum(r["lag_probes"] for r in rows) > 0


def test_a_blocked_loop_shows_as_a_lag_spike(tmp_path: Path) -> None:
    path = tmp_path / "lag.jsonl"
    calls = [0]

    async def answer(messages, tools, ctx):  # type: ignore[no-untyped-def]
        calls[0] += 1
        if calls[0] == 6:
            time.sleep(0.4)  # blocks the event loop (the bug --profile and the timeline are there to show)
        await anyio.sleep(0.03)
        return "42"

    env = AgentEnv(tasks(30), judge=exact_judge())
    mgr = RolloutManager(ScriptedPolicy(answer), RolloutLimits(max_episodes=4), timeline=path,
                         timeline_interval_s=0.05)  # fmt: skip
    anyio.run(mgr.run, env)
    worst = max(r["loop_lag_max_ms"] for r in read_timeline(path))
    assert worst >= 300


def test_an_unwritable_timeline_warns_and_the_run_goes_on(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a folder")
    store = MemoryStore()
    env = AgentEnv(tasks(10), judge=exact_judge())
    mgr = RolloutManager(ScriptedPolicy(["42"]), store=store, timeline=tmp_path / "file" / "t.jsonl")
    with pytest.warns(RuntimeWarning, match="timeline .* stopped"):
        anyio.run(mgr.run, env)
    assert len(store.trajectories) == 10 and all(t.reward == 1.0 for t in store.trajectories)
