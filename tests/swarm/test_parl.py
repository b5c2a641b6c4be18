"""PARL reward: both forms, bounded r_parallel, schedules, facets."""

from __future__ import annotations

import itertools
import math

import pytest
from swarmgym.judges.base import FunctionJudge, JudgeContext, Weighted
from swarmgym.judges.parl import (
    ConstantSchedule,
    CosineSchedule,
    LinearSchedule,
    PARLReward,
    PARLStagedReward,
    swarm_counts,
)
from swarmgym.wire import JudgeResult, Task, Trajectory

pytestmark = pytest.mark.anyio

TASK = Task(id="t", prompt="p")


def perf(value: float):
    return FunctionJudge(lambda task, traj: JudgeResult(reward=value, facets={"item_f1": value}), name="f1")


def swarm_traj(assigned: int, finished: int, status: str = "ok") -> Trajectory:
    recs = [{"turn": 1, "finished": i < finished} for i in range(assigned)]
    return Trajectory(status=status, info={"subagents": recs})


def test_linear_and_cosine_schedules():
    lin = LinearSchedule(0.1, 0.0, steps=100)
    assert [lin(s) for s in (-5, 0, 25, 50, 100, 10_000)] == [0.1, 0.1, 0.075, 0.05, 0.0, 0.0]
    cos = CosineSchedule(0.1, 0.0, steps=100)
    assert cos(0) == 0.1 and cos(100) == 0.0 and cos(500) == 0.0
    assert math.isclose(cos(50), 0.05)
    assert cos(25) > lin(25) and cos(75) < lin(75)  # slow start, fast middle
    vals = [cos(s) for s in range(101)]
    assert all(a >= b for a, b in itertools.pairwise(vals))
    assert ConstantSchedule(0.3)(10**9) == 0.3
    with pytest.raises(ValueError, match="steps must be at least 1"):
        LinearSchedule(1.0, steps=0)


async def test_parl_reward_terms_and_annealing():
    j = PARLReward(perf(0.5), lambda1=LinearSchedule(0.2, 0.0, steps=10), lambda2=LinearSchedule(0.4, 0.0, steps=10),
                   parallel_cap=4)
    traj = swarm_traj(assigned=2, finished=1)
    r0 = await j.score(TASK, traj, JudgeContext(step=0))
    assert r0.facets["r_parallel"] == 0.5 and r0.facets["r_finish"] == 0.5 and r0.facets["r_perf"] == 0.5
    assert r0.facets["lambda1"] == 0.2 and r0.facets["lambda2"] == 0.4
    assert r0.facets["perf/item_f1"] == 0.5 and r0.facets["subagents"] == 2
    assert math.isclose(r0.reward, 0.2 * 0.5 + 0.4 * 0.5 + 0.5)
    r_mid = await j.score(TASK, traj, JudgeContext(step=5))
    assert math.isclose(r_mid.reward, 0.1 * 0.5 + 0.2 * 0.5 + 0.5)
    r_end = await j.score(TASK, traj, JudgeContext(step=10))
    assert r_end.reward == 0.5  # annealed: only the task outcome counts


async def test_r_parallel_is_bounded():
    j = PARLReward(perf(0.0), lambda1=1.0, lambda2=0.0, parallel_cap=5)
    rewards = [(await j.score(TASK, swarm_traj(n, n), JudgeContext())).reward for n in (0, 1, 5, 50, 5000)]
    assert rewards == [0.0, 0.2, 1.0, 1.0, 1.0]
    none = await j.score(TASK, Trajectory(), JudgeContext())  # no swarm at all
    assert none.facets["r_parallel"] == 0.0 and none.facets["r_finish"] == 0.0


async def test_staged_form():
    j = PARLStagedReward(perf(0.8), parallel_cap=4, success_threshold=0.5)  # λ_aux: 0.1 -> 0 over 10 epochs
    traj = swarm_traj(assigned=2, finished=2)
    r = await j.score(TASK, traj, JudgeContext(step=0))
    assert r.facets["lambda_aux"] == 0.1 and r.facets["success"] == 1.0 and r.facets["quality"] == 0.8
    assert math.isclose(r.reward, 0.1 * 0.5 + 0.9 * 0.8)
    late = await j.score(TASK, traj, JudgeContext(step=10))
    assert late.reward == 0.8
    truncated = await j.score(TASK, swarm_traj(2, 2, status="truncated"), JudgeContext(step=0))
    assert truncated.facets["success"] == 0.0 and math.isclose(truncated.reward, 0.1 * 0.5)
    # epochs from steps
    k = PARLStagedReward(perf(1.0), steps_per_epoch=100)
    assert (await k.score(TASK, traj, JudgeContext(step=250))).facets["epoch"] == 2


async def test_counts_from_live_state_and_weighted_facets():
    from swarmgym.toolsets.swarm import SwarmState

    st = SwarmState(records=[{"finished": True}, {"finished": False}, {"finished": True}])
    assert swarm_counts(Trajectory(), {"swarm": st}) == (3, 2)
    w = Weighted([(PARLReward(perf(1.0), lambda1=0.0, lambda2=0.0), 1.0)])
    res = await w.score(TASK, swarm_traj(1, 1), JudgeContext())
    assert res.reward == 1.0 and res.facets["parl/r_finish"] == 1.0
