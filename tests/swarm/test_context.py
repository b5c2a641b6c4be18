"""Context strategies: Hide-Tool-Result, Discard-all, Summary (the trajectory keeps the full record)."""

from __future__ import annotations

import pytest
from swarmgym.context import (
    HIDDEN_MARKER,
    DiscardAll,
    HideToolResults,
    Summary,
    estimate_tokens,
)
from swarmgym.envs.core import AgentEnv, EpisodeLimits
from swarmgym.loop import ContextStrategy, run_episode
from swarmgym.policies.base import PolicyContext, PolicyRouter
from swarmgym.policies.scripted import ScriptedPolicy
from swarmgym.toolsets.base import FunctionToolset
from swarmgym.wire import Message, Task, ToolCall

pytestmark = pytest.mark.anyio


def convo(rounds: int, size: int = 400) -> list[Message]:
    msgs = [Message(role="system", content="sys"), Message(role="user", content="the task")]
    for r in range(rounds):
        msgs.append(Message(role="assistant", content=f"thinking {r}",
                            tool_calls=[ToolCall(id=f"{r}a", name="read", arguments={"n": r}),
                                        ToolCall(id=f"{r}b", name="read", arguments={"n": r})]))
        msgs += [Message(role="tool", tool_call_id=f"{r}{x}", name="read", content=f"{r}:" + "x" * size) for x in "ab"]
    return msgs


def test_estimate_tokens():
    assert estimate_tokens([Message(role="user", content="x" * 400)]) == 101
    m = Message(role="assistant", tool_calls=[ToolCall(id="1", name="f", arguments={"a": "y" * 40})])
    assert estimate_tokens([m]) > 10


async def test_all_are_context_strategies():
    for s in (HideToolResults(), DiscardAll(), Summary(ScriptedPolicy(["s"]))):
        assert isinstance(s, ContextStrategy)


async def test_hide_tool_results():
    msgs = convo(3)
    s = HideToolResults(threshold_tokens=10_000)
    assert await s.view(msgs, PolicyContext()) == msgs  # under threshold: untouched
    s = HideToolResults(threshold_tokens=100)
    out = await s.view(msgs, PolicyContext())
    assert len(out) == len(msgs)
    assert [m.role for m in out] == [m.role for m in msgs]
    tools = [m for m in out if m.role == "tool"]
    assert [m.content for m in tools[:4]] == [HIDDEN_MARKER] * 4
    assert [m.content for m in tools[4:]] == [msgs[-2].content, msgs[-1].content]  # the last round
    assert [m for m in out if m.role == "assistant"] == [m for m in msgs if m.role == "assistant"]
    assert [m.tool_call_id for m in out] == [m.tool_call_id for m in msgs]
    two = await HideToolResults(threshold_tokens=100, keep_rounds=2).view(msgs, PolicyContext())
    assert sum(m.content == HIDDEN_MARKER for m in two) == 2


async def test_discard_all():
    msgs = convo(2)
    ctx = PolicyContext()
    s = DiscardAll(threshold_tokens=300)
    out = await s.view(msgs, ctx)
    assert [m.text for m in out[:2]] == ["sys", "the task"]
    assert len(out) == 3 and "removed" in out[2].text  # system + task + note
    assert ctx.state["context/DiscardAll"]["discards"] == 1
    # the policy continues after the cut; what came after it stays visible until the threshold is hit again
    more = msgs + convo(3)[-3:]
    out = await s.view(more, ctx)
    assert out[3:] == more[len(msgs):]
    assert ctx.state["context/DiscardAll"]["discards"] == 1
    bigger = more + convo(4, size=800)[-3:]
    out = await s.view(bigger, ctx)
    assert len(out) == 3 and ctx.state["context/DiscardAll"]["discards"] == 2
    assert await DiscardAll(threshold_tokens=10**6).view(msgs, PolicyContext()) == msgs


async def test_summary_uses_the_summarizer_role():
    seen = []

    def summarizer(messages, tools, ctx):
        seen.append((ctx.role, messages))
        return f"summary #{len(seen)}: facts 0 and 1"

    router = PolicyRouter(ScriptedPolicy(["main"]), roles={"summarizer": ScriptedPolicy(summarizer)})
    s = Summary(router, threshold_tokens=150)
    msgs = convo(2)
    ctx = PolicyContext(episode_id="e")
    out = await s.view(msgs, ctx)
    assert [m.text for m in out[:2]] == ["sys", "the task"]
    assert out[2].role == "user" and out[2].text == "Summary of your progress so far:\nsummary #1: facts 0 and 1"
    assert len(out) == 3
    role, req = seen[0]
    assert role == "summarizer" and "thinking 1" in req[1].text and "1:xxx" in req[1].text
    # under threshold again: the summary is reused, no new call
    more = msgs + [Message(role="assistant", content="short")]
    assert (await s.view(more, ctx))[3:] == [more[-1]] and len(seen) == 1
    # regrown: the previous summary is condensed with the new turns
    grown = more + convo(3, size=800)[-3:]
    out = await s.view(grown, ctx)
    assert len(seen) == 2 and "summary #1" in seen[1][1][1].text and out[2].text.endswith("summary #2: facts 0 and 1")


@pytest.mark.parametrize("strategy", ["hide", "discard", "summary"])
async def test_trajectory_keeps_the_full_record(strategy):
    def read(n: int) -> str:
        """Read page n."""
        return f"page {n}: " + "y" * 600

    shown: list[list[Message]] = []

    def agent(messages, tools, ctx):
        shown.append(list(messages))
        if ctx.turn < 4:
            return {"role": "assistant", "content": f"turn {ctx.turn}",
                    "tool_calls": [{"id": f"c{ctx.turn}", "name": "read", "arguments": {"n": ctx.turn}}]}
        return "final"

    router = PolicyRouter(ScriptedPolicy(agent), roles={"summarizer": ScriptedPolicy(["condensed"], cycle=True)})
    strat = {"hide": HideToolResults(threshold_tokens=200), "discard": DiscardAll(threshold_tokens=200),
             "summary": Summary(router, threshold_tokens=200)}[strategy]
    env = AgentEnv([Task(id="t", prompt="read")], toolsets=[FunctionToolset([read])], context_strategy=strat,
                   limits=EpisodeLimits(max_turns=8))
    traj = await run_episode(env, router)
    assert traj.status == "ok" and traj.final_text == "final"
    full_tools = [m for m in traj.messages if m.role == "tool"]
    assert len(full_tools) == 4 and all("y" * 600 in m.text for m in full_tools)  # nothing lost
    last_view = shown[-1]
    assert sum(len(m.text) for m in last_view) < sum(len(m.text) for m in traj.messages)
    if strategy == "hide":
        assert [m.text for m in last_view if m.role == "tool"][:-1] == [HIDDEN_MARKER] * 3
    elif strategy == "summary":
        assert any("condensed" in m.text for m in last_view)


async def test_summary_calls_go_through_the_rollout_manager():
    """Pause, version stamp, call limits and store apply to the summariser's call like to any turn."""
    import anyio
    from swarmgym.rollout.limits import RolloutLimits
    from swarmgym.rollout.manager import RolloutManager
    from swarmgym.rollout.store import MemoryStore

    def read(n: int) -> str:
        """Read page n."""
        return f"page {n}: " + "y" * 600

    summaries: list[str] = []
    paused_at_summary = anyio.Event()

    async def summarizer(messages, tools, ctx):
        summaries.append(ctx.role)
        return "condensed"

    def agent(messages, tools, ctx):
        if not summaries and not paused_at_summary.is_set() and estimate_tokens(messages) > 120:
            # the next view will summarise: pause now, so it comes while paused
            mgr.pause()
            paused_at_summary.set()
        if ctx.turn < 4:
            return {"role": "assistant", "content": f"turn {ctx.turn}",
                    "tool_calls": [{"id": f"c{ctx.turn}", "name": "read", "arguments": {"n": ctx.turn}}]}
        return "final"

    sum_pol = ScriptedPolicy(summarizer)
    env = AgentEnv([Task(id="t", prompt="read")], toolsets=[FunctionToolset([read])],
                   context_strategy=Summary(threshold_tokens=200), limits=EpisodeLimits(max_turns=8))
    store = MemoryStore()
    mgr = RolloutManager(PolicyRouter(ScriptedPolicy(agent), roles={"summarizer": sum_pol},
                                      versions={"summarizer": 3}),
                         RolloutLimits(max_model_calls_per_role={"summarizer": 1}), store=store)
    out: list = []

    async def go() -> None:
        out.extend(await mgr.run(env))

    async with anyio.create_task_group() as tg:
        tg.start_soon(go)
        await paused_at_summary.wait()
        await anyio.wait_all_tasks_blocked()
        n_before = len(summaries)
        mgr.resume()
    assert n_before == 0 and summaries  # nothing summarised while paused; afterwards it was
    (traj,) = out
    assert traj.status == "ok" and traj.final_text == "final"
    kids = [t for t in store.trajectories if t.parent_id == traj.id]
    assert kids and all(k.role == "summarizer" and not k.trainable for k in kids)
    assert {k.id for k in kids} <= set(traj.children)
    assert all(k.completions[0].policy_version == 3 and k.final_text == "condensed" for k in kids)
    assert mgr.metrics.counters["side_calls"] == len(kids) == len(summaries)
