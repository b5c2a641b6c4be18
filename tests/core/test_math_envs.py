"""Math-v0 and ToolMath-v0: the oracle solves every task, wrong answers score 0, ToolMath uses real tool calls."""

from __future__ import annotations

import anyio
import pytest
import swarmgym
from swarmgym.loop import run_episode
from swarmgym.policies.scripted import OraclePolicy, ScriptedPolicy
from swarmgym.wire import Trajectory

N = 50


async def oracle_run(env_id: str, n: int = N) -> list[Trajectory]:
    env = swarmgym.make(env_id, size=n, seed=11)
    out: list[Trajectory] = [None] * n  # type: ignore[list-item]

    async def one(i: int) -> None:
        out[i] = await run_episode(env, OraclePolicy(), env.tasks[i])

    async with anyio.create_task_group() as tg:
        for i in range(n):
            tg.start_soon(one, i)
    return out


@pytest.mark.anyio
@pytest.mark.parametrize("env_id", ["swarmgym/Math-v0", "swarmgym/ToolMath-v0"])
async def test_oracle_scores_one_on_every_task(env_id: str) -> None:
    trajs = await oracle_run(env_id)
    bad = [(t.task_id, t.status, t.error, t.final_text, t.judge) for t in trajs if t.reward != 1.0]
    assert not bad, bad
    assert all(t.status == "ok" and t.env_id == env_id for t in trajs)
    assert len({t.task_id for t in trajs}) == N  # 50 distinct tasks
    datasets = {t.task_id.split("-")[0] for t in trajs}
    assert len(datasets) > 1  # the generators are mixed


@pytest.mark.anyio
async def test_tool_math_oracle_really_calls_the_calculator() -> None:
    for traj in await oracle_run("swarmgym/ToolMath-v0", 10):
        calls = [c for m in traj.messages if m.role == "assistant" for c in (m.tool_calls or [])]
        results = [m for m in traj.messages if m.role == "tool"]
        assert calls and all(c.name == "calculator" for c in calls)
        assert results and all(m.name == "calculator" for m in results)
        assert traj.metrics["tool_calls"] >= 1 and traj.metrics["tool_errors"] == 0
        assert "error" not in results[-1].text
        assert f"\\boxed{{{results[-1].text}}}" in traj.final_text  # the answer comes from the tool's output


@pytest.mark.anyio
@pytest.mark.parametrize("env_id", ["swarmgym/Math-v0", "swarmgym/ToolMath-v0"])
async def test_wrong_answers_score_zero(env_id: str) -> None:
    env = swarmgym.make(env_id, size=6, seed=11)
    for i in range(6):
        task = env.tasks[i]
        for wrong in ("0.5", f"{task.answer}9", f"{task.answer} or 7"):
            # a wrong answer that merely *contains* the right one must not earn partial credit (reward hacking)
            traj = await run_episode(env, ScriptedPolicy([f"\\boxed{{{wrong}}}"]), task)
            assert traj.status == "ok" and traj.reward == 0.0, (task.id, task.answer, wrong, traj.judge)
            assert traj.judge is not None and traj.judge.facets["format"] == 1.0
        unboxed = await run_episode(env, ScriptedPolicy([f"The answer is {task.answer}"]), task)
        assert unboxed.reward == 0.0 and unboxed.judge is not None and unboxed.judge.facets["format"] == 0.0


@pytest.mark.anyio
async def test_equivalent_forms_of_the_right_answer_score_one() -> None:
    env = swarmgym.make("swarmgym/Math-v0", datasets=["basic_arithmetic"], size=4, seed=11)
    for i in range(4):
        task = env.tasks[i]
        assert "." not in task.answer  # integer answers in this generator
        traj = await run_episode(env, ScriptedPolicy([f"\\boxed{{{task.answer}.0}}"]), task)
        assert traj.reward == 1.0, (task.answer, traj.judge)


def test_tasks_are_deterministic_by_seed() -> None:
    a = swarmgym.make("swarmgym/Math-v0", size=10, seed=5)
    b = swarmgym.make("swarmgym/Math-v0", size=10, seed=5)
    c = swarmgym.make("swarmgym/Math-v0", size=10, seed=6)
    assert [a.tasks[i] for i in range(10)] == [b.tasks[i] for i in range(10)]
    assert [a.tasks[i].prompt for i in range(10)] != [c.tasks[i].prompt for i in range(10)]
    for env in (a, b, c):
        env.close()
