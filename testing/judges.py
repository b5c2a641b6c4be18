"""A judge for fault injection: fails, hangs, spins or exits on purpose (picklable, so process-offloadable)."""

from __future__ import annotations

import sys
import time
from typing import Any, Literal

from ..wire import JudgeResult, Task, Trajectory

__all__ = ["FaultyJudge"]


class FaultyJudge:
    """Scores 1.0, or misbehaves as told.

    Args:
        fault: ``"none"``, ``"raise"`` (RuntimeError), ``"exit"`` (``sys.exit(3)``), ``"sleep"`` (blocks the
            thread for ``seconds``), ``"spin"`` (burns CPU for ``seconds``), ``"nan"`` (a non-finite reward).
        seconds: how long ``sleep``/``spin`` last.
        offload: ``None``, ``"thread"`` or ``"process"`` (see :mod:`swarmgym.judges.offload`).
        offload_timeout_s: bound of an offloaded call.
    """

    name = "faulty"

    def __init__(self, fault: Literal["none", "raise", "exit", "sleep", "spin", "nan"] = "none", *,
                 seconds: float = 3600.0, offload: str | None = None, offload_timeout_s: float | None = None) -> None:
        self.fault = fault
        self.seconds = seconds
        self.offload = offload
        self.offload_timeout_s = offload_timeout_s
        self.steps: list[int] = []

    async def score(self, task: Task, trajectory: Trajectory, ctx: Any) -> JudgeResult:
        self.steps.append(getattr(ctx, "step", 0))
        f = self.fault
        if f == "raise":
            raise RuntimeError("the judge broke")
        if f == "exit":
            sys.exit(3)
        if f == "sleep":
            time.sleep(self.seconds)
        if f == "spin":
            end = time.monotonic() + self.seconds
            while time.monotonic() < end:
                pass
        if f == "nan":
            return JudgeResult(reward=float("nan"))
        return JudgeResult(reward=1.0, facets={self.name: 1.0})
