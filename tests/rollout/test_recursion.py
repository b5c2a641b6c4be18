"""Recursion never deadlocks: a parent waiting on its children lends them its slots."""

from __future__ import annotations

import pytest
from rollout_helpers import CountingSandboxes, ConcurrencyProbe, Spawner, call, exact_judge, recursive_env, tasks

from swarmgym.envs.core import AgentEnv
from swarmgym.policies.base import PolicyRouter
from swarmgym.policies.scripted import ScriptedPolicy
from swarmgym.rollout import MemoryStore, RolloutLimits, RolloutManager


def _deepen(max_depth: int):
    def script(messages, tools, ctx):
        depth = ctx.env.tool_context.depth
        if ctx.turn == 0 and depth < max_depth:
            return call("recurse", {})
        return "42"

    return script


@pytest.mark.anyio
async def test_depth_3_recursion_with_every_limit_set_to_1_finishes() -> None:
    sandboxes = CountingSandboxes()
    env = recursive_env(sandbox=sandboxes)
    limits = RolloutLimits(
        max_episodes=1,
        max_model_calls=1,
        max_model_calls_per_role={"main": 1, "subagent": 1},
        max_sandboxes=1,
        max_children_per_episode=1,
        max_depth=3,
        max_turns_per_episode=3,
    )
    store = MemoryStore()
    probe = ConcurrencyProbe(ScriptedPolicy(_deepen(3)))
    mgr = RolloutManager(PolicyRouter(probe), limits, store=store)
    out = await mgr.run(env)
    assert len(out) == 4 and all(t.status == "ok" and t.reward == 1.0 for t in out)
    assert probe.peak == 1
    assert len(store.trajectories) == 4 * 4
    by_id = {t.id: t for t in store.trajectories}
    for top in out:  # a chain of three children under every top-level episode
        chain = [top]
        while chain[-1].children:
            (cid,) = chain[-1].children
            chain.append(by_id[cid])
        assert len(chain) == 4
        assert [t.role for t in chain] == ["main", "subagent", "subagent", "subagent"]
        assert all(c.parent_id == p.id for p, c in zip(chain, chain[1:]))
        assert chain[-2].messages[2].text == "child ok: 42"
    assert sandboxes.active == 0 and sandboxes.acquired == 16
    assert mgr.metrics.gauges["peak_in_flight"] == 4  # four episodes alive ...
    assert mgr.metrics.gauges["peak_episode_slots"] == 1  # ... on one slot, lent down the chain


@pytest.mark.slow
@pytest.mark.anyio
async def test_10000_parents_each_spawning_8_children_under_a_limit_of_64_finish() -> None:
    child_env = AgentEnv(tasks(1, "c"), judge=exact_judge())

    def script(messages, tools, ctx):
        if ctx.role == "main" and ctx.turn == 0:
            return call("fan_out", {"k": 8})
        return "42"

    env = AgentEnv(tasks(10_000), toolsets=[Spawner(child_env)], judge=exact_judge())
    mgr = RolloutManager(ScriptedPolicy(script), RolloutLimits(max_episodes=64))
    n_ok = 0
    async for t in mgr.stream(env):
        n_ok += t.status == "ok" and len(t.children) == 8 and t.messages[2].text == ",".join(["42"] * 8)
    c = mgr.metrics.counters
    assert n_ok == 10_000
    assert c["children_finished"] == 80_000 and c["child_status_ok"] == 80_000
    assert mgr.metrics.gauges["peak_episode_slots"] == 64  # blocked parents lend theirs to children
    assert mgr.metrics.gauges["in_flight"] == 0
