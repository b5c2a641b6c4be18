"""Groups of K samples per task (GRPO-style): statistics, pass@k and zero-variance filtering."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from ..wire import Task, Trajectory

__all__ = ["GroupStats", "group_stats", "pass_at_k", "Group"]


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from ``n`` samples of which ``c`` passed: ``1 - C(n-c, k) / C(n, k)``.

    Example:
        >>> pass_at_k(4, 1, 1)
        0.25
        >>> pass_at_k(4, 1, 4)
        1.0
    """
    if not 0 < k <= n:
        raise ValueError(f"pass@k needs 0 < k <= n, got k={k}, n={n}")
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


@dataclass(frozen=True, slots=True)
class GroupStats:
    """Statistics of one finished group.

    Attributes:
        size: samples in the group.
        mean: mean reward.
        std: population standard deviation of the rewards.
        passed: samples whose reward reached the success threshold.
        zero_variance: every sample got the same reward (no GRPO signal).
    """

    size: int
    mean: float
    std: float
    passed: int
    zero_variance: bool

    def as_dict(self) -> dict[str, float]:
        return {
            "size": float(self.size),
            "mean": self.mean,
            "std": self.std,
            "passed": float(self.passed),
            "zero_variance": float(self.zero_variance),
        }


def group_stats(rewards: Sequence[float], success_threshold: float = 1.0) -> GroupStats:
    """Mean, std and pass count of a group's rewards."""
    n = len(rewards)
    if n == 0:
        return GroupStats(0, 0.0, 0.0, 0, True)
    if n == 1:  # every episode of a run without groups comes through here: no generators
        r = float(rewards[0])
        return GroupStats(1, r, 0.0, int(r >= success_threshold), True)
    mean = sum(rewards) / n
    std = math.sqrt(sum((r - mean) ** 2 for r in rewards) / n)
    passed = sum(1 for r in rewards if r >= success_threshold)
    return GroupStats(n, mean, std, passed, max(rewards) - min(rewards) <= 1e-12)


@dataclass(slots=True)
class Group:
    """The samples of one task collected until all of them finished."""

    task: Task
    group_id: str
    expected: int
    trajectories: list[Trajectory] = field(default_factory=list)

    def add(self, traj: Trajectory) -> bool:
        """Add a finished sample; True when the group is complete."""
        self.trajectories.append(traj)
        return len(self.trajectories) >= self.expected
