"""RolloutManager: runs, streams, groups, spawn, limits, failures, retries, breaker, cancellation, partial
rollout, pickling."""

from __future__ import annotations

import contextlib
import pickle
import socket

import anyio
import pytest
from rollout_helpers import (
    ConcurrencyProbe,
    CountingSandboxes,
    Echo,
    Spawner,
    call,
    exact_judge,
    recursive_env,
    tasks,
    with_usage,
)

from swarmgym import rollout
from swarmgym.envs.core import AgentEnv, EpisodeLimits
from swarmgym.errors import ConfigError, PolicyConnectionError, RolloutError
from swarmgym.judges.base import FunctionJudge, JudgeContext
from swarmgym.policies.base import PolicyRouter
from swarmgym.policies.scripted import ScriptedPolicy
from swarmgym.rollout import MemoryStore, RolloutLimits, RolloutManager
from swarmgym.wire import JudgeResult, Task


def simple_env(n: int = 4, **kw: object) -> AgentEnv:
    return AgentEnv(tasks(n), judge=exact_judge(), **kw)  # type: ignore[arg-type]


@pytest.mark.anyio
async def test_run_returns_one_trajectory_per_task_and_sample() -> None:
    mgr = RolloutManager(ScriptedPolicy(["42"]))
    out = await mgr.run(simple_env(3), group_size=2)
    assert sorted((t.task_id, t.sample_index) for t in out) == [(f"t{i}", s) for i in range(3) for s in range(2)]
    assert all(t.status == "ok" and t.reward == 1.0 for t in out)
    assert {t.group_id for t in out if t.task_id == "t0"} == {"t0"}
    assert mgr.metrics.counters["episodes_finished"] == 6


@pytest.mark.anyio
async def test_int_tasks_take_the_first_n_and_cycle_with_distinct_keys() -> None:
    mgr = RolloutManager(ScriptedPolicy(["42"]))
    out = await mgr.run(simple_env(2), 3, group_size=2)
    keys = sorted((t.task_id, t.sample_index) for t in out)
    assert keys == [("t0", 0), ("t0", 1), ("t0", 2), ("t0", 3), ("t1", 0), ("t1", 1)]
    assert len({t.group_id for t in out}) == 3


@pytest.mark.anyio
async def test_stream_yields_as_episodes_finish() -> None:
    mgr = RolloutManager(ScriptedPolicy(["42"]))
    seen = [t.task_id async for t in mgr.stream(simple_env(5))]
    assert sorted(seen) == [f"t{i}" for i in range(5)]


@pytest.mark.anyio
async def test_breaking_out_of_a_stream_cancels_the_rest_and_stores_them() -> None:
    store = MemoryStore()
    mgr = RolloutManager(ScriptedPolicy(["42"], latency=(0.0, 0.3), seed=1), RolloutLimits(max_episodes=4), store=store)
    async with contextlib.aclosing(mgr.stream(simple_env(20))) as s:
        async for _ in s:
            break
    statuses = [t.status for t in store.trajectories]
    assert "cancelled" in statuses and "ok" in statuses
    assert len(store.trajectories) < 20


def test_sync_rollout_helper() -> None:
    out = rollout(simple_env(3), ScriptedPolicy(["42"]), n=2, group_size=3)
    assert len(out) == 6


@pytest.mark.anyio
async def test_groups_get_stats_and_zero_variance_groups_can_be_filtered() -> None:
    def answer(messages, tools, ctx):  # right on even samples of t0, always right on t1
        traj = ctx.env.trajectory
        ok = ctx.task.id == "t1" or traj.sample_index % 2 == 0
        return "42" if ok else "no"

    store = MemoryStore()
    mgr = RolloutManager(ScriptedPolicy(answer), store=store, filter_zero_variance=True)
    out = await mgr.run(simple_env(2), group_size=4)
    assert {t.task_id for t in out} == {"t0"}  # t1's group has no variance: filtered out
    g = out[0].info["group"]
    assert g["mean"] == 0.5 and g["std"] == 0.5 and g["passed"] == 2 and g["filtered"] == 0.0
    assert len(store.trajectories) == 8  # filtered groups are still stored
    filtered = [t for t in store.trajectories if t.task_id == "t1"]
    assert all(t.info["group"]["filtered"] == 1.0 for t in filtered)
    assert mgr.metrics.groups["done"] == 2 and mgr.metrics.groups["passed"] == 2


@pytest.mark.anyio
async def test_group_judge_sees_the_whole_group() -> None:
    class GroupSize:
        async def score(self, task: Task, traj, ctx: JudgeContext) -> JudgeResult:
            assert ctx.group is not None
            return JudgeResult(reward=float(len(ctx.group)))

    mgr = RolloutManager(ScriptedPolicy(["42"]), group_judge=GroupSize())
    out = await mgr.run(simple_env(1), group_size=3)
    assert [t.reward for t in out] == [3.0, 3.0, 3.0]
    assert out[0].info["episode_judge"]["reward"] == 1.0


@pytest.mark.anyio
async def test_spawned_children_are_stored_linked_to_their_parent() -> None:
    child_env = simple_env(1)

    def script(messages, tools, ctx):
        if ctx.role == "main" and ctx.turn == 0:
            return call("fan_out", {"k": 3})
        return "42"

    env = AgentEnv(tasks(2), toolsets=[Spawner(child_env)], judge=exact_judge())
    store = MemoryStore()
    router = PolicyRouter(ScriptedPolicy(script), frozen={"subagent"})
    out = await RolloutManager(router, store=store).run(env)
    for parent in out:
        kids = store.children_of(parent.id)
        assert len(kids) == 3 and sorted(parent.children) == sorted(k.id for k in kids)
        assert all(k.role == "subagent" and not k.trainable and k.status == "ok" for k in kids)
        assert parent.trainable and parent.reward == 1.0
        assert parent.messages[2].content == "42,42,42"


@pytest.mark.anyio
async def test_spawn_limits_are_tool_errors_for_the_model() -> None:
    def script(messages, tools, ctx):
        if ctx.role == "main" and ctx.turn == 0:
            return call("fan_out", {"k": 3})
        return "42"

    env = AgentEnv(tasks(1), toolsets=[Spawner(simple_env(1))], judge=exact_judge())
    limits = RolloutLimits(max_children_per_episode=2)
    out = await RolloutManager(ScriptedPolicy(script), limits, store=MemoryStore()).run(env)
    tool_msg = out[0].messages[2]
    assert tool_msg.role == "tool" and "limit of 2 sub-episodes" in tool_msg.text

    env2 = recursive_env()

    def deep(messages, tools, ctx):
        return call("recurse", {}) if ctx.turn == 0 else "42"

    out2 = await RolloutManager(ScriptedPolicy(deep), RolloutLimits(max_depth=0)).run(env2, 1)
    assert "nest at most 0 levels" in out2[0].messages[2].text


@pytest.mark.anyio
async def test_concurrency_limits_hold() -> None:
    probe = ConcurrencyProbe(ScriptedPolicy(["42"]), delay=0.01)
    limits = RolloutLimits(max_episodes=3, max_model_calls_per_role={"main": 2})
    await RolloutManager(probe, limits).run(simple_env(20))
    assert probe.calls == 20 and probe.peak == 2

    probe = ConcurrencyProbe(ScriptedPolicy(["42"]), delay=0.01)
    await RolloutManager(probe, RolloutLimits(max_episodes=3)).run(simple_env(20))
    assert probe.peak == 3


@pytest.mark.anyio
async def test_sandbox_limit_and_every_sandbox_is_returned() -> None:
    sandboxes = CountingSandboxes()
    env = simple_env(10, sandbox=sandboxes)
    probe = ConcurrencyProbe(ScriptedPolicy(["42"]), delay=0.01)
    mgr = RolloutManager(probe, RolloutLimits(max_sandboxes=2))
    out = await mgr.run(env)
    assert all(t.status == "ok" for t in out)
    assert sandboxes.peak == 2 and sandboxes.active == 0 and sandboxes.acquired == 10
    assert mgr.metrics.hist["sandbox_wait_s"].n == 10


@pytest.mark.anyio
async def test_turn_and_token_budgets_truncate() -> None:
    env = AgentEnv(tasks(1), toolsets=[Echo()], limits=EpisodeLimits(max_turns=10))
    loop_forever = ScriptedPolicy([call("echo", {"text": "x"})], cycle=True)
    out = await RolloutManager(loop_forever, RolloutLimits(max_turns_per_episode=3)).run(env)
    assert out[0].status == "truncated" and out[0].num_turns == 3

    def costly(messages, tools, ctx):
        c = with_usage("", 10)
        return c.model_copy(update={"message": call_msg()})

    def call_msg():
        from swarmgym.envs.spaces import coerce_action

        return coerce_action(call("echo", {"text": "x"})).message

    out = await RolloutManager(ScriptedPolicy(costly), RolloutLimits(max_tokens_per_episode=25)).run(env)
    assert out[0].status == "truncated" and out[0].num_turns == 3
    assert "token budget of 25" in (out[0].error or "")


@pytest.mark.anyio
async def test_failures_stay_inside_their_episode() -> None:
    def flaky(messages, tools, ctx):
        if ctx.task.id == "t1":
            raise RuntimeError("policy bug on t1")
        return "42"

    def judge(task, traj):
        if task.id == "t2":
            raise ValueError("judge bug")
        return 1.0

    env = AgentEnv(tasks(4), judge=FunctionJudge(judge))
    mgr = RolloutManager(ScriptedPolicy(flaky), RolloutLimits(breaker_error_rate=None))
    out = {t.task_id: t for t in await mgr.run(env)}
    assert out["t1"].status == "error" and "policy bug on t1" in out["t1"].error and "Traceback" in out["t1"].error
    assert out["t2"].status == "ok" and out["t2"].judge.facets.get("judge_error") == 1.0
    assert out["t0"].status == "ok" and out["t3"].reward == 1.0
    assert mgr.metrics.errors["RuntimeError"] == 1


@pytest.mark.anyio
async def test_transient_policy_errors_are_retried_within_the_budget() -> None:
    failures: dict[str, int] = {}

    def sometimes(messages, tools, ctx):
        n = failures.get(ctx.task.id, 0)
        if n < 2:
            failures[ctx.task.id] = n + 1
            raise PolicyConnectionError("connection reset")
        return "42"

    limits = RolloutLimits(policy_retries=2, retry_backoff_s=0.001)
    mgr = RolloutManager(ScriptedPolicy(sometimes), limits)
    out = await mgr.run(simple_env(3))
    assert all(t.status == "ok" for t in out) and mgr.metrics.counters["model_retries"] == 6

    failures.clear()
    limits = RolloutLimits(policy_retries=1, retry_backoff_s=0.001, breaker_error_rate=None)
    out = await RolloutManager(ScriptedPolicy(sometimes), limits).run(simple_env(3))
    assert all(t.status == "error" and "PolicyConnectionError" in t.error for t in out)


@pytest.mark.anyio
async def test_model_call_deadline_is_a_policy_timeout() -> None:
    slow = ScriptedPolicy(["42"], latency=5.0)
    limits = RolloutLimits(model_call_timeout_s=0.05, policy_retries=0, breaker_error_rate=None)
    out = await RolloutManager(slow, limits).run(simple_env(2))
    assert all(t.status == "error" and "PolicyTimeoutError" in t.error for t in out)


def _dead_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.mark.anyio
async def test_breaker_stops_a_run_against_a_dead_server() -> None:
    from swarmgym.policies.openai_http import OpenAIPolicy

    policy = OpenAIPolicy(f"http://127.0.0.1:{_dead_port()}/v1", "m", max_retries=0)
    store = MemoryStore()
    limits = RolloutLimits(max_episodes=8, retry_backoff_s=0.001, breaker_min_episodes=10)
    mgr = RolloutManager(policy, limits, store=store)
    try:
        with pytest.raises(RolloutError, match=r"episodes failed; latest error: PolicyConnectionError.*server running"):
            await mgr.run(simple_env(1000), 1000)
    finally:
        await policy.aclose()
    assert mgr.metrics.counters["episodes_started"] < 1000
    assert mgr.metrics.counters["breaker_trips"] == 1


@pytest.mark.anyio
async def test_cancelling_a_run_cancels_children_returns_sandboxes_and_stores_partials() -> None:
    sandboxes = CountingSandboxes()
    child_env = simple_env(1, sandbox=sandboxes)
    started = anyio.Event()

    async def script(messages, tools, ctx):
        if ctx.role == "main" and ctx.turn == 0:
            return call("fan_out", {"k": 2})
        started.set()
        await anyio.sleep(30)  # children hang in their model call
        return "42"

    env = AgentEnv(tasks(3), toolsets=[Spawner(child_env)], judge=exact_judge(), sandbox=sandboxes)
    store = MemoryStore()
    mgr = RolloutManager(ScriptedPolicy(script), store=store)
    async with anyio.create_task_group() as tg:
        tg.start_soon(mgr.run, env)
        await started.wait()
        await anyio.wait_all_tasks_blocked()
        tg.cancel_scope.cancel()
    assert sandboxes.active == 0 and sandboxes.acquired == 3 + 6
    assert len(store.trajectories) == 9
    assert {t.status for t in store.trajectories} == {"cancelled"}
    parents = [t for t in store.trajectories if t.parent_id is None]
    assert all(len(p.children) == 2 and len(store.children_of(p.id)) == 2 for p in parents)


@pytest.mark.anyio
async def test_pause_then_resume_with_a_new_policy_version() -> None:
    calls: list[str] = []
    gate = anyio.Event()
    all_in = anyio.Event()

    async def v0(messages, tools, ctx):
        calls.append("v0")
        if len(calls) == 3:
            mgr.pause()  # from inside the third call: every episode stops after its current call
            all_in.set()
        await all_in.wait()
        return call("echo", {"text": "x"})

    def v1(messages, tools, ctx):
        calls.append("v1")
        return "42"

    env = AgentEnv(tasks(3), toolsets=[Echo()], judge=exact_judge())
    mgr = RolloutManager(ScriptedPolicy(v0))
    out: list = []

    async def go() -> None:
        out.extend(await mgr.run(env))
        gate.set()

    async with anyio.create_task_group() as tg:
        mgr.pause()
        tg.start_soon(go)
        await anyio.wait_all_tasks_blocked()
        assert calls == []  # paused before any model call
        mgr.resume()
        await all_in.wait()
        await anyio.wait_all_tasks_blocked()
        assert calls == ["v0"] * 3  # none made its second call while paused
        assert mgr.metrics.gauges["paused"] == 1.0
        mgr.resume(policy=ScriptedPolicy(v1))
        await gate.wait()
    assert calls == ["v0"] * 3 + ["v1"] * 3
    assert all(t.policy_versions == [0, 1] and t.status == "ok" for t in out)
    assert mgr.version == 1


@pytest.mark.anyio
async def test_too_stale_episodes_are_restarted_or_dropped() -> None:
    def script(messages, tools, ctx):
        return call("echo", {"text": "x"}) if ctx.turn == 0 else "42"

    env = AgentEnv(tasks(2), toolsets=[Echo()], judge=exact_judge())
    for action in ("restart", "drop"):
        store = MemoryStore()
        first_calls = anyio.Event()
        n_calls = 0

        async def v0(messages, tools, ctx):
            nonlocal n_calls
            n_calls += 1
            if n_calls == 2:
                mgr.pause()
                first_calls.set()
            await first_calls.wait()
            return script(messages, tools, ctx)

        mgr = RolloutManager(ScriptedPolicy(v0), RolloutLimits(max_staleness=0, stale_action=action), store=store)
        out: list = []

        async def go() -> None:
            out.extend(await mgr.run(env))

        async with anyio.create_task_group() as tg:
            tg.start_soon(go)
            await first_calls.wait()
            await anyio.wait_all_tasks_blocked()
            mgr.resume(policy=ScriptedPolicy(script))
        if action == "restart":
            assert len(out) == 2 and all(t.policy_versions == [1, 1] for t in out)
            assert mgr.metrics.counters["restarts"] == 2
        else:
            assert out == []
            assert [t.status for t in store.trajectories] == ["cancelled", "cancelled"]
            assert "dropped: policy version 0 is 1 versions behind" in store.trajectories[0].error


def test_specs_and_manager_pickle() -> None:
    limits = RolloutLimits(max_episodes=8, max_model_calls_per_role={"judge": 2})
    assert pickle.loads(pickle.dumps(limits)) == limits
    mgr = RolloutManager(PolicyRouter(ScriptedPolicy(["42"])), limits)
    mgr.pause()
    clone = pickle.loads(pickle.dumps(mgr))
    assert clone.limits == limits and not clone._paused
    assert rollout(simple_env(2), clone.router) and True


def test_bad_arguments_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="Policy or PolicyRouter"):
        RolloutManager(object())  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="group_size"):
        rollout(simple_env(1), ScriptedPolicy(["42"]), group_size=0)
    with pytest.raises(ConfigError, match="no tasks to run"):
        rollout(AgentEnv([]), ScriptedPolicy(["42"]), n=3)


def test_gc_thresholds_are_restored_after_a_run() -> None:
    import gc

    before = gc.get_threshold()
    rollout(simple_env(2), ScriptedPolicy(["42"]))
    assert gc.get_threshold() == before
