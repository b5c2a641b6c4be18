"""Training-step schedules reach every judge through the rollout manager; PARL's success is a real success;
Toggle uses the mean reward, budgets from the start of training, and one base-judge call per trajectory."""

from __future__ import annotations

import anyio
import pytest
from swarmgym.envs.core import AgentEnv
from swarmgym.judges.base import FunctionJudge, JudgeContext
from swarmgym.judges.budget import ToggleJudge
from swarmgym.judges.parl import LinearSchedule, PARLReward, PARLStagedReward
from swarmgym.policies.scripted import ScriptedPolicy
from swarmgym.rollout.manager import RolloutManager
from swarmgym.testing import FaultyJudge
from swarmgym.wire import Completion, JudgeResult, Message, Task, Trajectory

pytestmark = pytest.mark.anyio
TASK = Task(id="t", prompt="q")


def _sample(i: str, reward: float, n_tokens: int) -> Trajectory:
    c = Completion(message=Message(role="assistant", content=f"r={reward}"), completion_ids=list(range(n_tokens)))
    return Trajectory(id=i, task_id="t", messages=[c.message], completions=[c])


REWARD_FROM_TEXT = FunctionJudge(lambda task, traj: float(traj.final_text.split("=")[1]), name="base")


async def test_parl_lambda_follows_the_managers_step() -> None:
    judge = PARLReward(FaultyJudge("none"), lambda1=LinearSchedule(0.1, 0.0, steps=10), lambda2=0.0)
    env = AgentEnv([TASK], judge=judge)
    mgr = RolloutManager(ScriptedPolicy(["a"], cycle=True))
    (first,) = await mgr.run(env, 1)
    mgr.set_judge_step(5)
    (mid,) = await mgr.run(env, 1)
    mgr.pause()
    mgr.resume(step=10)
    (late,) = await mgr.run(env, 1)
    lambdas = [t.judge.facets["lambda1"] for t in (first, mid, late)]  # type: ignore[union-attr]
    assert lambdas == [0.1, 0.05, 0.0]


async def test_parl_staged_success_needs_a_real_success() -> None:
    def perf(q: float, **facets: float) -> FunctionJudge:
        return FunctionJudge(lambda task, traj: JudgeResult(reward=q, facets={"q": q, **facets}))

    traj = Trajectory(status="ok")
    low = await PARLStagedReward(perf(0.05)).score(TASK, traj, JudgeContext())
    assert low.facets["success"] == 0.0 and low.reward == 0.0  # an F1 of 0.05 is no success
    full = await PARLStagedReward(perf(1.0)).score(TASK, traj, JudgeContext())
    assert full.facets["success"] == 1.0
    by_verdict = PARLStagedReward(perf(0.3, all_passed=1.0), success_facet="all_passed")
    assert (await by_verdict.score(TASK, traj, JudgeContext())).facets["success"] == 1.0
    no_verdict = PARLStagedReward(perf(1.0), success_facet="all_passed")
    assert (await no_verdict.score(TASK, traj, JudgeContext())).facets["success"] == 0.0
    broken = await PARLStagedReward(FaultyJudge("raise"), success_threshold=0.0).score(TASK, traj, JudgeContext())
    assert broken.facets["success"] == 0.0 and broken.outcome == "error"
    assert (await PARLReward(FaultyJudge("raise")).score(TASK, traj, JudgeContext())).outcome == "error"


async def test_toggle_uses_the_mean_reward() -> None:
    # mean reward 0.55 >= λ=0.5: the budget applies (the share of rewards >= 1 would be 0.25 < λ: it would not)
    group = [_sample("a", 1.0, 100), _sample("b", 0.4, 50), _sample("c", 0.4, 50), _sample("d", 0.4, 50)]
    j = ToggleJudge(REWARD_FROM_TEXT, rho=0.0, lam=0.5, m=1, budgets={"t": 80})
    r = await j.score(TASK, group[0], JudgeContext(group=group, step=0))
    assert r.facets["group_mean_reward"] == pytest.approx(0.55) and r.reward == 0.0


async def test_toggle_budgets_come_from_the_start_of_training() -> None:
    group = [_sample("a", 1.0, 100), _sample("b", 1.0, 300)]
    late_task = Task(id="late", prompt="q")
    late_group = [_sample("x", 1.0, 900), _sample("y", 1.0, 100)]
    j = ToggleJudge(REWARD_FROM_TEXT, rho=0.0, lam=0.5, m=10)
    await j.score(TASK, group[1], JudgeContext(group=group, step=0))
    assert j.budgets == {"t": 100}
    r = await j.score(late_task, late_group[0], JudgeContext(group=late_group, step=4))
    assert "late" not in j.budgets and r.facets["budget_missing"] == 1.0 and r.reward == 1.0
    fitted = ToggleJudge(REWARD_FROM_TEXT, rho=0.0, lam=0.5, m=10)
    assert await fitted.fit([(TASK, group), (late_task, late_group)]) == {"t": 100, "late": 100}
    assert (await fitted.score(late_task, late_group[0], JudgeContext(group=late_group, step=4))).reward == 0.0


async def test_toggle_calls_its_base_judge_once_per_trajectory_under_concurrency() -> None:
    calls: list[str] = []

    async def slow_base(task: Task, traj: Trajectory) -> float:
        calls.append(traj.id)
        await anyio.sleep(0.05)  # a model-graded or remote judge: members are scored concurrently
        return 1.0

    toggle = ToggleJudge(FunctionJudge(slow_base, name="base"))
    env = AgentEnv([Task(id=f"t{i}", prompt="q") for i in range(3)])
    mgr = RolloutManager(ScriptedPolicy(["a"], cycle=True), group_judge=toggle)
    trajs = await mgr.run(env, 3, group_size=4)
    assert len(trajs) == 12 and all(t.judge is not None and t.judge.outcome == "ok" for t in trajs)
    assert sorted(calls) == sorted(t.id for t in trajs) and toggle.base_calls == 12
