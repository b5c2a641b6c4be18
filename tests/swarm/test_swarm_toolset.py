"""SwarmToolset: exact schemas, parallel sub-agents, frozen children, limits, release, error observations."""

from __future__ import annotations

import gc
import weakref

import anyio
import pytest
from swarmgym.envs.core import AgentEnv, EpisodeLimits
from swarmgym.loop import run_episode
from swarmgym.policies.base import PolicyRouter
from swarmgym.policies.scripted import ScriptedPolicy
from swarmgym.toolsets.base import FunctionToolset, ToolContext
from swarmgym.toolsets.swarm import (
    STEP_LIMIT_PRESETS,
    StepLimits,
    SwarmToolset,
    step_limits,
)
from swarmgym.wire import Task, ToolCall

pytestmark = pytest.mark.anyio

ASSIGN_DESCRIPTION = (
    "Launch a new agent.\nUsage notes:\n 1. You can launch multiple agents concurrently whenever possible, "
    "to maximize performance;\n 2. When the agent is done, it will return a single message back to you."
)


def call(tool: str, i: int = 0, **args):
    return {"id": f"c{i}_{tool}", "name": tool, "arguments": args}


def turn(*calls):
    return {"role": "assistant", "content": None, "tool_calls": list(calls)}


def orchestrator(n: int, final: str = "all done", agent: str = "worker"):
    """Turn 1: create one agent and assign n tasks in parallel; turn 2: answer."""
    first = turn(
        call("create_subagent", 0, name=agent, system_prompt="You are a worker."),
        *[call("assign_task", i + 1, agent=agent, prompt=f"job {i}") for i in range(n)],
    )
    return ScriptedPolicy([first, final])


def swarm_env(child_env=None, **kw):
    child_env = child_env or AgentEnv([])
    limits = kw.pop("limits", EpisodeLimits(max_turns=5, max_tool_calls_per_turn=200))
    return AgentEnv(
        [Task(id="t", prompt="coordinate")],
        toolsets=[SwarmToolset(child_env, **kw)],
        limits=limits,
        env_id="test/Swarm-v0",
    )


async def run(env, router):
    env.policies = router  # inline spawn uses the env's router
    return await run_episode(env, router)


def tool_texts(traj):
    return [m.text for m in traj.messages if m.role == "tool"]


async def test_schemas_are_exactly_the_reports():
    specs = {s.name: s for s in SwarmToolset(None).specs()}
    assert list(specs) == ["create_subagent", "assign_task"]
    c = specs["create_subagent"]
    assert c.description == "Create a custom subagent with specific system prompt and name for reuse."
    assert c.parameters == {
        "type": "object",
        "properties": {
            "name": {"type": "string", "description": "Unique name for this agent configuration"},
            "system_prompt": {
                "type": "string",
                "description": "System prompt defining the agent's role, capabilities, and boundaries",
            },
        },
        "required": ["name", "system_prompt"],
    }
    a = specs["assign_task"]
    assert a.description == ASSIGN_DESCRIPTION
    assert a.parameters == {
        "type": "object",
        "properties": {
            "agent": {"type": "string", "description": "Specify which created agent to use."},
            "prompt": {"type": "string", "description": "The task for the agent to perform"},
        },
        "required": ["agent", "prompt"],
    }
    # what the model is sent
    assert a.to_openai()["function"]["description"] == ASSIGN_DESCRIPTION


async def test_parallel_assign_tasks_overlap():
    """Each sub-agent waits until all n have started: only a concurrent run can finish."""
    n = 6
    arrived = 0
    all_in = anyio.Event()
    in_flight = 0
    max_in_flight = 0

    async def sub(messages, tools, ctx):
        nonlocal arrived, in_flight, max_in_flight
        in_flight += 1
        max_in_flight = max(max_in_flight, in_flight)
        arrived += 1
        if arrived == n:
            all_in.set()
        with anyio.fail_after(10):
            await all_in.wait()
        await anyio.sleep(0.01)
        in_flight -= 1
        return f"finished {messages[-1].text}  "

    router = PolicyRouter(orchestrator(n), roles={"subagent": ScriptedPolicy(sub)})
    traj = await run(swarm_env(), router)
    assert traj.status == "ok", traj.error
    assert max_in_flight == n
    results = tool_texts(traj)
    assert results[0].startswith("Created agent 'worker'")
    assert sorted(results[1:]) == sorted(f"finished job {i}" for i in range(n))  # trimmed final messages
    assert traj.metrics["subagents"] == n and traj.metrics["max_parallel_subagents"] == n
    # one stage with n one-step sub-agents, then the answer: (1 + 1) + 1
    assert traj.metrics["critical_steps"] == 3
    assert traj.metrics["total_steps"] == 2 + n


async def test_children_are_frozen_and_point_up():
    kids = []
    router = PolicyRouter(orchestrator(3), roles={"subagent": ScriptedPolicy(["ok"])})
    env = swarm_env(sink=kids.append)
    traj = await run(env, router)
    assert traj.trainable and traj.role == "main"
    assert len(kids) == 3
    for k in kids:
        assert k.trainable is False and k.role == "subagent" and k.parent_id == traj.id
        assert k.messages[0].role == "system" and k.messages[0].text == "You are a worker."
    assert sorted(traj.children) == sorted(k.id for k in kids)
    assert {r["trajectory_id"] for r in traj.info["subagents"]} == {k.id for k in kids}


async def test_children_are_released_once_their_result_is_stored():
    refs: list[weakref.ref] = []
    seen_alive: list[int] = []

    def orch(messages, tools, ctx):
        if ctx.turn == 0:
            return turn(call("create_subagent", 0, name="w", system_prompt="w"),
                        *[call("assign_task", i + 1, agent="w", prompt=f"p{i}") for i in range(20)])
        gc.collect()
        seen_alive.append(sum(1 for r in refs if r() is not None))
        return "done"

    router = PolicyRouter(ScriptedPolicy(orch), roles={"subagent": ScriptedPolicy(["x" * 1000])})
    traj = await run(swarm_env(sink=lambda t: refs.append(weakref.ref(t))), router)
    assert traj.status == "ok" and len(refs) == 20
    assert seen_alive == [0]  # while the orchestrator is still running, no child context is held


async def test_step_limits_apply_to_children():
    def ping() -> str:
        """Ping."""
        return "pong"

    child_env = AgentEnv([], toolsets=[FunctionToolset([ping])])
    forever = ScriptedPolicy(lambda m, t, c: turn(call("ping", c.turn)))
    kids = []
    router = PolicyRouter(orchestrator(2), roles={"subagent": forever})
    traj = await run(swarm_env(child_env, steps=StepLimits(orchestrator=5, subagent=3), sink=kids.append), router)
    assert traj.status == "ok"
    assert [k.status for k in kids] == ["truncated", "truncated"]
    assert all(k.metrics["tool_calls"] == 3 and k.metrics["turns"] == 3 for k in kids)
    assert all("without a final message" in t for t in tool_texts(traj)[1:])
    assert traj.metrics["subagents_finished"] == 0
    assert traj.metrics["critical_steps"] == 1 + 3 + 1


async def test_presets():
    assert STEP_LIMIT_PRESETS["browsecomp"] == StepLimits(orchestrator=15, subagent=100)
    assert STEP_LIMIT_PRESETS["widesearch"] == StepLimits(orchestrator=100, subagent=100)
    assert STEP_LIMIT_PRESETS["inhouse"] == StepLimits(orchestrator=100, subagent=50)
    sub = step_limits("inhouse").for_subagent(EpisodeLimits(tool_timeout_s=7))
    assert (sub.max_turns, sub.max_steps, sub.tool_timeout_s) == (50, 50, 7)
    orch = step_limits("browsecomp").for_orchestrator()
    assert orch.max_turns == 15 and orch.max_steps == 15 and orch.max_critical_steps is None
    with pytest.raises(ValueError, match="unknown step-limit preset 'browse'"):
        step_limits("browse")


async def test_error_observations():
    script = [
        turn(call("assign_task", 0, agent="ghost", prompt="x")),
        turn(call("create_subagent", 1, name="w", system_prompt="sys")),
        turn(call("create_subagent", 2, name="w", system_prompt="other")),
        turn(call("assign_task", 3, agent="w", prompt="   ")),
        turn(call("create_subagent", 4, name="", system_prompt="s")),
        turn(call("create_subagent", 5, name="v", system_prompt=" ")),
        turn(call("assign_task", 6, agent="w")),
        turn(call("assign_task", 7, agent="nobody", prompt="x")),
        "end",
    ]
    router = PolicyRouter(ScriptedPolicy(script), roles={"subagent": ScriptedPolicy(["never"])})
    traj = await run(swarm_env(limits=EpisodeLimits(max_turns=20)), router)
    assert traj.status == "ok"
    t = tool_texts(traj)
    assert "unknown agent 'ghost'; no agent exists yet: call create_subagent first" in t[0]
    assert t[1].startswith("Created agent 'w'")
    assert "an agent named 'w' already exists" in t[2]
    assert "prompt is empty" in t[3]
    assert "name is empty" in t[4]
    assert "system_prompt is empty" in t[5]
    assert "invalid arguments for tool 'assign_task'" in t[6] and "prompt" in t[6]
    assert "unknown agent 'nobody'; created agents: 'w'" in t[7]
    assert traj.metrics["subagents"] == 0 and traj.metrics["tool_errors"] == 7


async def test_subagent_cap_and_spawn_failure_are_observations():
    router = PolicyRouter(orchestrator(3), roles={"subagent": ScriptedPolicy(["fine"])})
    traj = await run(swarm_env(max_subagents=2), router)
    texts = tool_texts(traj)
    assert sum("limit of 2 sub-agents" in x for x in texts) == 1 and sum(x == "fine" for x in texts) == 2

    # a strict router without a "subagent" role: the inline spawn cannot find a policy for the child
    env = swarm_env()
    traj = await run_episode(env, PolicyRouter(orchestrator(1), strict=True))
    assert traj.status == "ok"
    assert "sub-agent 'worker' could not run: ConfigError" in tool_texts(traj)[1]
    assert traj.info["subagents"][0]["status"] == "error"


async def test_failed_child_is_an_error_observation():
    async def broken(messages, tools, ctx):
        from swarmgym.errors import PolicyError

        raise PolicyError("model server down")

    router = PolicyRouter(orchestrator(1), roles={"subagent": ScriptedPolicy(broken)})
    traj = await run(swarm_env(), router)
    assert "sub-agent 'worker' failed (error): PolicyError: model server down" in tool_texts(traj)[1]
    assert traj.info["subagents"][0]["finished"] is False


async def test_works_without_an_env_context():
    ts = SwarmToolset(None)
    ctx = ToolContext(task=Task(id="t", prompt="p"))
    r = await ts.call(ToolCall(id="1", name="create_subagent", arguments={"name": "a", "system_prompt": "s"}), ctx)
    assert not r.is_error
    r = await ts.call(ToolCall(id="2", name="assign_task", arguments={"agent": "a", "prompt": "p"}), ctx)
    assert r.is_error and "no spawn" in r.content
