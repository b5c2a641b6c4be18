"""The batched WideSearch agent (the benchmark's single baseline and its sub-agents): correct under a context
strategy that condenses its history, and step-aware."""

from __future__ import annotations

import pytest
from swarmgym.context import Summary, estimate_tokens
from swarmgym.envs.core import AgentEnv
from swarmgym.envs.widesearch import widesearch_judge
from swarmgym.envs.widesearch_data import get_world, make_task
from swarmgym.envs.widesearch_scripted import batched_agent_step, notes_summary, single_agent_step
from swarmgym.limits import EpisodeLimits
from swarmgym.loop import run_episode
from swarmgym.policies.scripted import OraclePolicy, ScriptedPolicy
from swarmgym.toolsets.search import SearchToolset
from swarmgym.wire import Message, ToolCall

pytestmark = pytest.mark.anyio


def _task(n_regs: int, cols: list[str]):
    w = get_world(0)
    regs = sorted(r for r in w.groups if w.group_kind[r] == "company")[:n_regs]
    return make_task(w, regs, ["Name", *cols], task_id="t")


def _env(task, *, strategy=None, steps=400, fan_out=8, oracle=None):
    return AgentEnv(
        [task], toolsets=[SearchToolset(get_world(0).index)], judge=widesearch_judge(), context_strategy=strategy,
        limits=EpisodeLimits(max_turns=steps, max_steps=steps, max_tool_calls_per_turn=16),
        oracle=oracle or (lambda t, m: batched_agent_step(m, calls_per_turn=fan_out, max_steps=steps)),
    )


async def test_batched_agent_solves_with_fewer_turns_and_steps_than_the_sequential_one():
    task = _task(1, ["Founded", "CEO"])  # both on the profile page
    batched = await run_episode(_env(task), OraclePolicy(), task)
    seq = await run_episode(_env(task, oracle=lambda t, m: single_agent_step(m)), OraclePolicy(), task)
    assert batched.status == seq.status == "ok" and batched.reward == seq.reward == 1.0
    assert batched.metrics["turns"] * 3 < seq.metrics["turns"]
    # it opens only the page a column needs once it learned the layout: fewer invocations too
    assert batched.metrics["steps"] < seq.metrics["steps"]


async def test_batched_agent_keeps_its_facts_when_the_history_is_condensed():
    task = _task(2, ["Founded", "Employees", "CEO"])
    seen: list[int] = []
    summaries: list[str] = []

    def summarize(messages, tools, ctx):
        summaries.append(notes_summary(messages))
        return summaries[-1]

    class Watch(OraclePolicy):
        async def complete(self, messages, tools, sampling, *, ctx=None):
            seen.append(estimate_tokens(messages))
            return await super().complete(messages, tools, sampling, ctx=ctx)

    strategy = Summary(ScriptedPolicy(summarize), threshold_tokens=3000, keep_rounds=1)
    traj = await run_episode(_env(task, strategy=strategy), Watch(), task)
    assert traj.status == "ok" and traj.reward == 1.0
    assert len(summaries) >= 2 and "NOTE " in summaries[-1] and summaries[-1].count("STEPS ") == 1
    assert max(seen) < estimate_tokens(traj.messages) / 2  # it never saw its whole history at once


async def test_batched_agent_answers_with_what_it_has_before_its_step_budget_ends():
    task = _task(2, ["Founded", "Employees"])
    traj = await run_episode(_env(task, steps=30), OraclePolicy(), task)
    assert traj.status == "ok" and traj.metrics["steps"] <= 30  # answered, not truncated
    assert 0.0 < traj.judge.facets["item_f1"] < 1.0  # a partial table


async def test_summary_keeps_the_latest_rounds_verbatim():
    msgs = [Message(role="system", content="sys"), Message(role="user", content="task")]
    for r in range(3):
        msgs.append(Message(role="assistant", content=f"t{r}", tool_calls=[ToolCall(id=f"{r}", name="f", arguments={})]))
        msgs.append(Message(role="tool", tool_call_id=f"{r}", name="f", content=f"{r}:" + "x" * 800))
    s = Summary(ScriptedPolicy(["condensed"]), threshold_tokens=300, keep_rounds=1)
    from swarmgym.policies.base import PolicyContext

    out = await s.view(msgs, PolicyContext())
    assert [m.text for m in out[:2]] == ["sys", "task"] and "condensed" in out[2].text
    assert out[3:] == msgs[-2:]  # the last round, verbatim
    with pytest.raises(ValueError):
        Summary(None, keep_rounds=-1)
