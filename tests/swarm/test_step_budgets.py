"""Step and critical-step budgets: tool invocations count, the episode tree is bounded, PARL sees it."""

from __future__ import annotations

import pytest
from swarmgym.envs.core import AgentEnv, EpisodeLimits
from swarmgym.envs.widesearch import make_swarm_env
from swarmgym.judges.parl import PARLReward, PARLStagedReward
from swarmgym.loop import run_episode
from swarmgym.policies.base import PolicyRouter
from swarmgym.policies.scripted import OraclePolicy, ScriptedPolicy
from swarmgym.rollout.manager import RolloutManager
from swarmgym.rollout.store import MemoryStore
from swarmgym.toolsets.base import FunctionToolset
from swarmgym.toolsets.swarm import StepLimits
from swarmgym.toolsets.swarm_metrics import tree_steps, trajectory_steps
from swarmgym.wire import Task

pytestmark = pytest.mark.anyio


def ping() -> str:
    """Ping."""
    return "pong"


def fan_out(k: int):
    """Every turn asks for k pings at once."""
    return ScriptedPolicy(lambda m, t, c: {"role": "assistant", "content": None, "tool_calls": [
        {"id": f"c{c.turn}_{i}", "name": "ping", "arguments": {}} for i in range(k)]})


async def test_tool_invocations_are_steps_and_the_budget_stops_calls_cleanly():
    env = AgentEnv([Task(id="t", prompt="go")], toolsets=[FunctionToolset([ping])],
                   limits=EpisodeLimits(max_turns=50, max_steps=5))
    traj = await run_episode(env, fan_out(3))
    assert traj.status == "truncated" and "step budget of 5" in traj.error
    assert traj.info["budget"] == {"kind": "steps", "limit": 5, "used": 5}
    assert traj.metrics["turns"] == 2 and traj.metrics["steps"] == 5 and traj.metrics["tool_calls"] == 5
    tools = [m.text for m in traj.messages if m.role == "tool"]
    assert tools.count("pong") == 5 and "not run: the step budget is used up" in tools[-1]
    # without a budget the same agent's turns would count one step each only if it made one call a turn
    free = await run_episode(AgentEnv([Task(id="t", prompt="go")], toolsets=[FunctionToolset([ping])],
                                      limits=EpisodeLimits(max_turns=2)), fan_out(3))
    assert free.metrics["steps"] == 6 and trajectory_steps(free).critical == 6


async def _swarm(budget, reward_judge=None):
    kids: list = []
    router = PolicyRouter(OraclePolicy())
    kw = {"judge": reward_judge} if reward_judge is not None else {}
    env = make_swarm_env(policies=router, steps=StepLimits(orchestrator=100, subagent=100, critical=budget),
                         entities_per_agent=6, sink=kids.append, **kw)
    traj = await run_episode(env, router, env.tasks[0])
    return traj, kids


async def test_critical_step_budget_truncates_the_tree_and_parl_sees_it():
    free, free_kids = await _swarm(None)
    need = free.metrics["critical_steps"]
    assert free.status == "ok" and free.reward == 1.0
    assert tree_steps(free, free_kids).critical == need  # recomputed from the stored tree: the same
    budget = int(need) - 4
    parl = PARLReward(make_swarm_env().judge, over_budget_perf=0.0)
    traj, kids = await _swarm(budget, parl)
    assert traj.status == "truncated" and traj.info["budget"]["kind"] == "critical_steps"
    crit = tree_steps(traj, kids).critical
    assert crit <= budget == traj.info["budget"]["limit"]  # never beyond the budget
    assert any(k.status == "truncated" and k.info["budget"]["kind"] == "critical_steps" for k in kids)
    f = traj.judge.facets
    assert f["over_budget"] == 1.0 and f["critical_steps"] == crit and f["r_perf"] == 0.0
    staged = PARLStagedReward(make_swarm_env().judge)
    traj2, _ = await _swarm(budget, staged)
    assert traj2.judge.facets["over_budget"] == 1.0 and traj2.judge.facets["success"] == 0.0


async def test_budget_holds_under_the_rollout_manager():
    store = MemoryStore()
    router = PolicyRouter(OraclePolicy())
    env = make_swarm_env(steps=StepLimits(orchestrator=100, subagent=100, critical=9), entities_per_agent=6)
    (traj,) = await RolloutManager(router, store=store).run(env, 1)
    kids = [t for t in store.trajectories if t.parent_id is not None]
    assert traj.status == "truncated" and kids
    assert tree_steps(traj, kids).critical <= 9


async def test_a_run_wide_critical_step_budget_caps_every_tree():
    from swarmgym.rollout.limits import RolloutLimits

    store = MemoryStore()
    env = make_swarm_env(entities_per_agent=6)  # no budget of its own
    mgr = RolloutManager(PolicyRouter(OraclePolicy()), RolloutLimits(max_critical_steps=9), store=store)
    trajs = await mgr.run(env, 2)
    assert len(trajs) == 2 and all(t.status == "truncated" and t.info["budget"]["limit"] == 9 for t in trajs)
    for t in trajs:
        kids = [k for k in store.trajectories if k.parent_id == t.id]
        assert tree_steps(t, kids).critical <= 9
