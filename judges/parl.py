"""PARL reward for swarm orchestrators (Kimi K2.5 report), with annealing schedules.

Two forms, both reporting their terms as facets:

- :class:`PARLReward`: ``r = λ1(step)·r_parallel + λ2(step)·r_finish + r_perf``. ``r_parallel`` rewards
  instantiating sub-agents, capped so that spawning many useless agents cannot dominate
  (``min(n, cap) / cap`` ∈ [0, 1]); ``r_finish`` is the share of assigned sub-tasks that finished (status ok
  with a final message); ``r_perf`` is the task judge's reward. λ1 and λ2 are annealed to zero over training
  steps, so late in training only the task outcome counts.
- :class:`PARLStagedReward`: ``R = λ_aux(e)·r_parallel + (1 − λ_aux(e))·(I[success]·Q(τ))`` with ``λ_aux``
  annealed from 0.1 to 0 over epochs ``e``; ``Q(τ)`` is the task judge's reward and success is a real
  success: the episode ended normally (status ``ok``), the task judge worked, and its verdict passes —
  ``Q ≥ success_threshold`` (default 1.0), or a named facet of the task judge (``success_facet``, e.g.
  ``"all_passed"``) ``≥ success_threshold``. A table with F1 0.05 is not a success.

A task judge that fails or times out makes the PARL result fail the same way (``outcome``), so the failure is
never a silent 0. The step comes from :attr:`JudgeContext.step`: the rollout manager's training step
(``RolloutManager.set_judge_step``), or ``AgentEnv(judge_step=…)`` outside a manager.

Both see the critical-step budget: facets ``critical_steps`` (of the episode tree) and ``over_budget`` (1 when
the episode was truncated by its step or critical-step budget, ``info["budget"]``). A budget-truncated
episode is never a success in the staged form; :class:`PARLReward` scores its partial answer unless
``over_budget_perf`` replaces ``r_perf``.

The sub-agent counts come from the orchestrator trajectory's ``info["subagents"]`` records written by
:class:`~swarmgym.toolsets.swarm.SwarmToolset` (so stored trajectories can be re-scored).

Example:
    >>> s = LinearSchedule(0.1, 0.0, steps=100)
    >>> s(0), s(50), s(100), s(1000)
    (0.1, 0.05, 0.0, 0.0)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from ..wire import JudgeResult, Task, Trajectory
from .base import Judge, JudgeContext, safe_score

__all__ = [
    "ConstantSchedule",
    "CosineSchedule",
    "LinearSchedule",
    "PARLReward",
    "PARLStagedReward",
    "Schedule",
    "budget_facets",
    "swarm_counts",
]


@runtime_checkable
class Schedule(Protocol):
    """A coefficient as a function of the training step (or epoch)."""

    def __call__(self, step: int) -> float: ...


class ConstantSchedule:
    """The same value at every step."""

    def __init__(self, value: float) -> None:
        self.value = float(value)

    def __call__(self, step: int) -> float:
        return self.value

    def __repr__(self) -> str:
        return f"ConstantSchedule({self.value})"


class _Annealed:
    def __init__(self, start: float, end: float = 0.0, *, steps: int) -> None:
        if steps < 1:
            raise ValueError(f"steps must be at least 1, got {steps}")
        self.start = float(start)
        self.end = float(end)
        self.steps = int(steps)

    def _frac(self, step: int) -> float:
        return min(max(step, 0), self.steps) / self.steps

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.start}, {self.end}, steps={self.steps})"


class LinearSchedule(_Annealed):
    """From ``start`` at step 0 linearly to ``end`` at ``steps``, then constant."""

    def __call__(self, step: int) -> float:
        v = self.start + (self.end - self.start) * self._frac(step)
        return round(v, 12)


class CosineSchedule(_Annealed):
    """From ``start`` at step 0 to ``end`` at ``steps`` along a half cosine, then constant."""

    def __call__(self, step: int) -> float:
        f = self._frac(step)
        v = self.end + (self.start - self.end) * 0.5 * (1.0 + math.cos(math.pi * f))
        return round(v, 12)


def _schedule(x: Schedule | float) -> Schedule:
    return ConstantSchedule(x) if isinstance(x, (int, float)) else x


def swarm_counts(trajectory: Trajectory, state: Mapping[str, Any] | None = None) -> tuple[int, int]:
    """``(assigned, finished)`` sub-tasks of an orchestrator episode, from its ``info["subagents"]``
    records (or the live SwarmState in ``state["swarm"]`` when the trajectory has none)."""
    records: Sequence[Mapping[str, Any]] | None = trajectory.info.get("subagents")
    if records is None and state is not None:
        st = state.get("swarm")
        records = getattr(st, "records", None)
    records = records or ()
    return len(records), sum(1 for r in records if r.get("finished"))


def budget_facets(trajectory: Trajectory) -> dict[str, float]:
    """``critical_steps`` of the episode tree and ``over_budget`` (truncated by a step budget)."""
    from ..toolsets.swarm_metrics import trajectory_steps

    over = trajectory.status == "truncated" and "budget" in trajectory.info
    return {"critical_steps": float(trajectory_steps(trajectory).critical), "over_budget": float(over)}


async def _perf(perf: Judge, task: Task, trajectory: Trajectory, ctx: JudgeContext) -> JudgeResult:
    return await safe_score(perf, task, trajectory, ctx)


class PARLReward:
    """``r = λ1·r_parallel + λ2·r_finish + r_perf`` (see the module docstring).

    Args:
        perf: the task judge (``r_perf``).
        lambda1: coefficient of ``r_parallel`` (a float or a schedule over steps).
        lambda2: coefficient of ``r_finish`` (a float or a schedule over steps).
        parallel_cap: sub-agents beyond this earn nothing more (``r_parallel = min(n, cap) / cap``).
        over_budget_perf: ``r_perf`` of an episode truncated by its (critical-)step budget; None: the task
            judge's score of its partial answer.
        name: facet prefix when composed with ``Weighted``.

    Facets: ``r_parallel``, ``r_finish``, ``r_perf``, ``lambda1``, ``lambda2``, ``subagents``,
    ``subagents_finished``, ``critical_steps``, ``over_budget``, and the task judge's facets under ``perf/``.
    """

    name = "parl"

    def __init__(
        self,
        perf: Judge,
        *,
        lambda1: Schedule | float = LinearSchedule(0.1, 0.0, steps=1000),  # noqa: B008 - immutable
        lambda2: Schedule | float = LinearSchedule(0.1, 0.0, steps=1000),  # noqa: B008
        parallel_cap: int = 10,
        over_budget_perf: float | None = None,
        name: str | None = None,
    ) -> None:
        if parallel_cap < 1:
            raise ValueError(f"parallel_cap must be at least 1, got {parallel_cap}")
        self.perf = perf
        self.over_budget_perf = over_budget_perf
        self.lambda1 = _schedule(lambda1)
        self.lambda2 = _schedule(lambda2)
        self.parallel_cap = int(parallel_cap)
        if name:
            self.name = name

    def r_parallel(self, n_subagents: int) -> float:
        """Bounded instantiation reward in [0, 1]."""
        return min(max(n_subagents, 0), self.parallel_cap) / self.parallel_cap

    async def score(self, task: Task, trajectory: Trajectory, ctx: JudgeContext) -> JudgeResult:
        perf = await _perf(self.perf, task, trajectory, ctx)
        assigned, finished = swarm_counts(trajectory, ctx.state)
        rp = self.r_parallel(assigned)
        rf = finished / assigned if assigned else 0.0
        l1, l2 = self.lambda1(ctx.step), self.lambda2(ctx.step)
        budget = budget_facets(trajectory)
        r_perf = perf.reward
        if budget["over_budget"] and self.over_budget_perf is not None:
            r_perf = self.over_budget_perf
        reward = l1 * rp + l2 * rf + r_perf
        facets = {
            "r_parallel": rp,
            "r_finish": rf,
            "r_perf": r_perf,
            "lambda1": l1,
            "lambda2": l2,
            "subagents": float(assigned),
            "subagents_finished": float(finished),
            **budget,
        }
        facets.update({f"perf/{k}": v for k, v in perf.facets.items()})
        return JudgeResult(reward=reward, facets=facets, info={"perf": perf.info} if perf.info else {},
                           outcome=perf.outcome)


class PARLStagedReward:
    """``R = λ_aux(e)·r_parallel + (1 − λ_aux(e))·(I[success]·Q(τ))`` (see the module docstring).

    Args:
        perf: the task judge (``Q(τ)``).
        lambda_aux: schedule over epochs (default: linear from 0.1 to 0 over 10 epochs).
        steps_per_epoch: ``e = ctx.step // steps_per_epoch`` (1: the step *is* the epoch).
        parallel_cap: as in :class:`PARLReward`.
        success_threshold: success needs ``Q ≥ success_threshold`` (or the ``success_facet`` ≥ it).
        success_facet: decide success by this facet of the task judge (its verdict, e.g. ``"all_passed"``)
            instead of by ``Q``; a missing facet is no success.
        name: facet prefix when composed with ``Weighted``.

    Facets: ``r_parallel``, ``success``, ``quality``, ``lambda_aux``, ``epoch``, ``subagents``,
    ``critical_steps``, ``over_budget``, and the task judge's facets under ``perf/``.
    """

    name = "parl"

    def __init__(
        self,
        perf: Judge,
        *,
        lambda_aux: Schedule | float = LinearSchedule(0.1, 0.0, steps=10),  # noqa: B008 - immutable
        steps_per_epoch: int = 1,
        parallel_cap: int = 10,
        success_threshold: float = 1.0,
        success_facet: str | None = None,
        name: str | None = None,
    ) -> None:
        if not math.isfinite(success_threshold):
            raise ValueError(f"success_threshold must be finite, got {success_threshold}")
        if steps_per_epoch < 1:
            raise ValueError(f"steps_per_epoch must be at least 1, got {steps_per_epoch}")
        if parallel_cap < 1:
            raise ValueError(f"parallel_cap must be at least 1, got {parallel_cap}")
        self.perf = perf
        self.lambda_aux = _schedule(lambda_aux)
        self.steps_per_epoch = int(steps_per_epoch)
        self.parallel_cap = int(parallel_cap)
        self.success_threshold = float(success_threshold)
        self.success_facet = success_facet
        if name:
            self.name = name

    async def score(self, task: Task, trajectory: Trajectory, ctx: JudgeContext) -> JudgeResult:
        perf = await _perf(self.perf, task, trajectory, ctx)
        assigned, _ = swarm_counts(trajectory, ctx.state)
        rp = min(assigned, self.parallel_cap) / self.parallel_cap
        epoch = ctx.step // self.steps_per_epoch
        lam = self.lambda_aux(epoch)
        q = perf.reward
        verdict = q if self.success_facet is None else perf.facets.get(self.success_facet, -math.inf)
        success = trajectory.status == "ok" and perf.outcome == "ok" and verdict >= self.success_threshold
        reward = lam * rp + (1.0 - lam) * (q if success else 0.0)
        facets = {
            "r_parallel": rp,
            "success": float(success),
            "quality": q,
            "lambda_aux": lam,
            "epoch": float(epoch),
            "subagents": float(assigned),
            **budget_facets(trajectory),
        }
        facets.update({f"perf/{k}": v for k, v in perf.facets.items()})
        return JudgeResult(reward=reward, facets=facets, info={"perf": perf.info} if perf.info else {},
                           outcome=perf.outcome)
