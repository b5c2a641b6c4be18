"""Judge protocol, context, composition and the failure policy.

A judge turns a finished trajectory into a :class:`~swarmgym.wire.JudgeResult`. Judges must be exact,
bounded and deterministic; a judge that fails never crashes the episode, and never looks like a wrong
answer: :func:`safe_score` turns the failure into reward 0 with ``outcome="error"`` (it raised, returned
something that is not a finite JudgeResult, or called ``sys.exit``) or ``outcome="timeout"`` (its deadline
passed), a ``judge_error``/``judge_timeout`` facet and the reason in ``info``. Cancellation and Ctrl-C
(``KeyboardInterrupt``, the user's, not the judge's) propagate; every other ``BaseException`` is contained.
Synchronous judges run off the event loop when they declare ``offload`` (see :mod:`.offload`).
"""

from __future__ import annotations

import math
import traceback
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

import anyio

from ..wire import JudgeResult, Task, Trajectory

__all__ = ["Judge", "JudgeContext", "Weighted", "FunctionJudge", "safe_score", "NullJudge", "judge_failure_result"]


@dataclass(slots=True)
class JudgeContext:
    """What a judge may use besides the task and trajectory.

    Attributes:
        sandbox: the episode's sandbox (code-test judges run hidden tests in it), or None.
        spawn: run a child episode (agent-as-judge); ``await ctx.spawn(env, task, role="judge")``.
        group: the other trajectories of the same group when the rollout manager scores groups (Toggle).
        step: the trainer/run step, for judges with schedules (PARL, Toggle).
        state: the episode's shared state dict (toolsets may leave facts for the judge here).
    """

    sandbox: Any = None
    spawn: Callable[..., Awaitable[Any]] | None = None
    group: Sequence[Trajectory] | None = None
    step: int = 0
    state: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Judge(Protocol):
    async def score(self, task: Task, trajectory: Trajectory, ctx: JudgeContext) -> JudgeResult: ...


class FunctionJudge:
    """A judge from a function ``f(task, trajectory) -> float | JudgeResult`` (sync or async).

    Example:
        >>> j = FunctionJudge(lambda task, traj: float(traj.final_text == task.answer), name="exact")
    """

    def __init__(self, fn: Callable[..., Any], name: str = "reward") -> None:
        self.fn = fn
        self.name = name

    async def score(self, task: Task, trajectory: Trajectory, ctx: JudgeContext) -> JudgeResult:
        out = self.fn(task, trajectory)
        if hasattr(out, "__await__"):
            out = await out
        if isinstance(out, JudgeResult):
            return out
        r = float(out)
        return JudgeResult(reward=r, facets={self.name: r})


class NullJudge:
    """Reward 0 for every trajectory (envs without a judge)."""

    async def score(self, task: Task, trajectory: Trajectory, ctx: JudgeContext) -> JudgeResult:
        return JudgeResult(reward=0.0)


def _finite(x: float) -> float:
    return x if math.isfinite(x) else 0.0


async def safe_score(
    judge: Judge,
    task: Task,
    trajectory: Trajectory,
    ctx: JudgeContext,
    *,
    on_error: Literal["zero", "raise"] = "zero",
    timeout: float | None = None,
) -> JudgeResult:
    """Score with the failure policy (see the module docstring); ``on_error="raise"`` re-raises instead.

    Args:
        timeout: deadline of the call; when it passes the result has ``outcome="timeout"``.
    """
    from .offload import run_judge

    try:
        if timeout is not None:
            with anyio.fail_after(timeout):
                res = await run_judge(judge, task, trajectory, ctx)
        else:
            res = await run_judge(judge, task, trajectory, ctx)
        return checked_result(judge, res)
    except anyio.get_cancelled_exc_class():
        raise
    except KeyboardInterrupt:
        raise
    except BaseException as e:  # SystemExit from a judge's sys.exit() included: contained, not fatal
        if on_error == "raise":
            raise
        return judge_error_result(e)


def checked_result(judge: Any, res: Any) -> JudgeResult:
    """``res`` if it is a JudgeResult with a finite reward, else TypeError/ValueError naming the judge."""
    if not isinstance(res, JudgeResult):
        raise TypeError(f"judge {type(judge).__name__} returned {type(res).__name__}, expected JudgeResult")
    if not math.isfinite(res.reward):
        raise ValueError(f"judge {type(judge).__name__} returned a non-finite reward {res.reward}")
    return res


def judge_error_result(e: BaseException) -> JudgeResult:
    """The failure result for exception ``e``: ``outcome="timeout"`` for a TimeoutError, else ``"error"``."""
    outcome: Literal["error", "timeout"] = "timeout" if isinstance(e, TimeoutError) else "error"
    reason = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
    if outcome == "timeout" and not str(e):
        reason = "the judge ran out of time"
    return judge_failure_result(outcome, reason, traceback.format_exc(limit=5))


def judge_failure_result(outcome: Literal["error", "timeout"], reason: str, tb: str | None = None) -> JudgeResult:
    """Reward 0, ``outcome`` set, a ``judge_error``/``judge_timeout`` facet and the reason in ``info``."""
    info: dict[str, Any] = {"judge_error": reason}
    if tb and tb.strip() != "NoneType: None":
        info["traceback"] = tb
    return JudgeResult(reward=0.0, facets={f"judge_{outcome}": 1.0}, info=info, outcome=outcome)


def worst_outcome(*results: JudgeResult) -> Literal["ok", "error", "timeout"]:
    """``"timeout"`` if any result timed out, else ``"error"`` if any failed, else ``"ok"``."""
    outs = {r.outcome for r in results}
    return "timeout" if "timeout" in outs else "error" if "error" in outs else "ok"


class Weighted:
    """Weighted sum of judges: ``Weighted([(correct, 1.0), (fmt, 0.1)])``.

    Each judge's facets are reported under ``name/facet`` plus its own reward under ``name``; a failing
    member contributes 0 and a ``name/judge_error`` facet, the others still count, and the sum carries the
    worst member outcome (a sum with a failed part is not a verdict). Members run concurrently.
    """

    def __init__(self, judges: Sequence[tuple[Judge, float]], names: Sequence[str] | None = None) -> None:
        if not judges:
            raise ValueError("Weighted needs at least one (judge, weight) pair")
        self.judges = list(judges)
        self.names = list(names) if names else [
            getattr(j, "name", None) or type(j).__name__ for j, _ in self.judges
        ]
        if len(self.names) != len(self.judges):
            raise ValueError(f"{len(self.names)} names for {len(self.judges)} judges")
        seen: dict[str, int] = {}
        for i, n in enumerate(self.names):  # make names unique: exact, exact_2, …
            if n in seen:
                seen[n] += 1
                self.names[i] = f"{n}_{seen[n]}"
            else:
                seen[n] = 1

    async def score(self, task: Task, trajectory: Trajectory, ctx: JudgeContext) -> JudgeResult:
        results: list[JudgeResult | None] = [None] * len(self.judges)

        async def one(i: int, j: Judge) -> None:
            results[i] = await safe_score(j, task, trajectory, ctx)

        async with anyio.create_task_group() as tg:
            for i, (j, _) in enumerate(self.judges):
                tg.start_soon(one, i, j)
        total = 0.0
        facets: dict[str, float] = {}
        info: dict[str, Any] = {}
        for name, (_, w), res in zip(self.names, self.judges, results):
            assert res is not None
            total += w * _finite(res.reward)
            facets[name] = res.reward
            for k, v in res.facets.items():
                facets[f"{name}/{k}"] = v
            if res.info:
                info[name] = res.info
        return JudgeResult(reward=total, facets=facets, info=info,
                           outcome=worst_outcome(*(r for r in results if r is not None)))
