"""Budget-constrained reward with the Toggle schedule (Kimi K2.5 report, §4.4).

Toggle alternates two phases every ``m`` training iterations:

- **Phase 0 (budget)**: a sample keeps its reward ``r`` only when the problem is still hard for the policy
  (the group's *mean reward* < ``λ``) or the sample is within the problem's token budget; otherwise 0.
- **Phase 1 (plain)**: reward ``r``, so the model does not forget how to think long.

The per-problem budget is the ``ρ``-quantile of the token lengths of the *correct* responses among the K
samples of the group, estimated once at the start of training and then fixed: from groups scored while
``ctx.step < budget_steps`` (default 1: the first training step), or beforehand with :meth:`ToggleJudge.fit`
on a rollout of the initial policy. A problem first seen later has no budget (it keeps ``r``; facet
``budget_missing``): a budget measured on an already-shortened policy would ratchet lengths down. Budgets
live in :attr:`ToggleJudge.budgets` (persist them and pass them back in).

Needs group context: ``ctx.group`` holds all K trajectories of the task (the rollout manager supplies it);
``ctx.step`` is the training iteration (``RolloutManager.set_judge_step``). Without a group, the trajectory
is its own group of one. The base judge runs once per trajectory, also when the K members of a group are
scored concurrently (each needs every member's base reward): concurrent requests wait for the first.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import anyio

from ..wire import JudgeResult, Task, Trajectory
from .base import Judge, JudgeContext, safe_score

__all__ = ["ToggleJudge", "quantile", "response_tokens"]


def response_tokens(trajectory: Trajectory) -> int:
    """Tokens the policy generated: completion ids when known, else reported usage, else words."""
    n = 0
    for c in trajectory.completions:
        if c.completion_ids is not None:
            n += len(c.completion_ids)
        elif c.usage.completion_tokens:
            n += c.usage.completion_tokens
        else:
            n += len(c.message.text.split())
    if not trajectory.completions:
        n = sum(len(m.text.split()) for m in trajectory.messages if m.role == "assistant")
    return n


def quantile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated quantile (``q`` in [0, 1]) of a non-empty sequence."""
    if not values:
        raise ValueError("quantile of an empty sequence")
    xs = sorted(values)
    pos = q * (len(xs) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


class ToggleJudge:
    """Wraps a correctness judge with a per-problem token budget and the Toggle phase schedule.

    Args:
        base: the outcome judge giving ``r``.
        rho: quantile of correct-response lengths used as the budget (0–1; the report's ρ).
        lam: threshold λ on the group's mean reward: a problem whose mean is below it is "still hard"
            and keeps ``r`` regardless of length.
        m: phase length in iterations (phase = ``(step // m) % 2``).
        correct_threshold: base reward at or above which a sample counts as correct.
        length_fn: token length of a trajectory (default :func:`response_tokens`).
        budgets: initial per-task budgets (e.g. restored from a checkpoint, or from :meth:`fit`).
        budget_steps: budgets are estimated from groups scored at steps below this (the start of training).
    """

    name = "toggle"

    def __init__(self, base: Judge, *, rho: float = 0.5, lam: float = 0.5, m: int = 10,
                 correct_threshold: float = 1.0, length_fn: Callable[[Trajectory], float] = response_tokens,
                 budgets: Mapping[str, float] | None = None, budget_steps: int = 1,
                 name: str | None = None) -> None:
        if not 0.0 <= rho <= 1.0:
            raise ValueError(f"rho is a quantile in [0, 1], got {rho}")
        if not 0.0 <= lam <= 1.0:
            raise ValueError(f"lam is a mean reward threshold in [0, 1], got {lam}")
        if m < 1:
            raise ValueError(f"m must be >= 1, got {m}")
        if budget_steps < 0:
            raise ValueError(f"budget_steps must be >= 0, got {budget_steps}")
        self.base = base
        self.rho = rho
        self.lam = lam
        self.m = m
        self.correct_threshold = correct_threshold
        self.length_fn = length_fn
        self.budgets: dict[str, float] = dict(budgets or {})
        self.budget_steps = budget_steps
        self._cache: dict[str, JudgeResult] = {}
        self._pending: dict[str, anyio.Event] = {}
        self.base_calls = 0
        """How many times the base judge ran (once per trajectory)."""
        if name:
            self.name = name

    def phase(self, step: int) -> int:
        """0 (budget phase) or 1 (plain phase) at training iteration ``step``."""
        return (int(step) // self.m) % 2

    async def _base(self, task: Task, traj: Trajectory, ctx: JudgeContext) -> JudgeResult:
        """The base judge's result for ``traj``: computed once, shared by concurrent callers."""
        while True:
            hit = self._cache.get(traj.id)
            if hit is not None:
                return hit
            pending = self._pending.get(traj.id)
            if pending is None:
                break
            await pending.wait()  # another member's scoring is computing it (if it was cancelled: retry)
        ev = self._pending[traj.id] = anyio.Event()
        try:
            self.base_calls += 1
            res = await safe_score(self.base, task, traj, ctx)
            if len(self._cache) > 100_000:  # bounded: groups are scored together, old entries are dead
                self._cache.clear()
            self._cache[traj.id] = res
            return res
        finally:
            del self._pending[traj.id]
            ev.set()

    def _estimate(self, task_id: str, group: Sequence[Trajectory], results: Sequence[JudgeResult]) -> None:
        lengths = [float(self.length_fn(g)) for g, r in zip(group, results) if r.reward >= self.correct_threshold]
        if lengths and task_id not in self.budgets:
            self.budgets[task_id] = quantile(lengths, self.rho)

    async def fit(self, groups: Iterable[tuple[Task, Sequence[Trajectory]]]) -> dict[str, float]:
        """Estimate budgets before training from a rollout of the initial policy (K samples per task).

        Returns:
            The budgets (also kept in :attr:`budgets`); tasks without a correct sample get none.
        """
        for task, group in groups:
            ctx = JudgeContext(group=list(group))
            results = [await self._base(task, g, ctx) for g in group]
            self._estimate(task.id, group, results)
        return self.budgets

    async def score(self, task: Task, trajectory: Trajectory, ctx: JudgeContext) -> JudgeResult:
        own = await self._base(task, trajectory, ctx)
        r = own.reward
        group = list(ctx.group) if ctx.group else [trajectory]
        if all(g.id != trajectory.id for g in group):
            group.append(trajectory)
        results = [own if g.id == trajectory.id else await self._base(task, g, ctx) for g in group]
        acc = sum(res.reward for res in results) / len(results)  # the report's mean reward of the group
        if task.id not in self.budgets and ctx.step < self.budget_steps:
            self._estimate(task.id, group, results)  # at the start of training only; then fixed
        budget = self.budgets.get(task.id)
        length = float(self.length_fn(trajectory))
        phase = self.phase(ctx.step)
        within = budget is None or length <= budget
        out = r if phase == 1 or acc < self.lam or within else 0.0
        facets: dict[str, float] = {
            self.name: out, "base": r, "phase": float(phase), "group_mean_reward": acc,
            "length": length, "within_budget": float(within),
        }
        if budget is not None:
            facets["budget"] = budget
        else:
            facets["budget_missing"] = 1.0
        for k, v in own.facets.items():
            facets[f"base/{k}"] = v
        info: dict[str, Any] = {"base": own.info} if own.info else {}
        return JudgeResult(reward=out, facets=facets, info=info, outcome=own.outcome)
