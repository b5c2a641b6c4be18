"""Rollout manager: many concurrent episodes with recursive sub-rollouts, groups, partial rollout, a
crash-safe store and live metrics.

Re-exports only; see :mod:`swarmgym.rollout.manager` for the design.
"""

from __future__ import annotations

import sys
import types
from typing import Any

from .groups import GroupStats, group_stats, pass_at_k
from .limiter import Lease, SlotPool
from .limits import RolloutLimits
from .manager import RolloutManager, rollout
from .metrics import LiveDashboard, RolloutMetrics, serve_prometheus
from .specs import Spec
from .store import MemoryStore, TrajectoryStore, orphan_ids, read_records, read_trajectories, store_manifest

__all__ = [
    "GroupStats",
    "Lease",
    "LiveDashboard",
    "MemoryStore",
    "RolloutLimits",
    "RolloutManager",
    "RolloutMetrics",
    "SlotPool",
    "Spec",
    "TrajectoryStore",
    "group_stats",
    "orphan_ids",
    "pass_at_k",
    "read_records",
    "read_trajectories",
    "rollout",
    "serve_prometheus",
    "store_manifest",
]


class _CallableModule(types.ModuleType):
    """``swarmgym.rollout`` is both this package and the sync :func:`rollout` function.

    Importing the subpackage makes Python set ``swarmgym.rollout`` to the *module*, shadowing the function
    that ``swarmgym`` exports under the same name; making the module callable keeps
    ``swarmgym.rollout(env, policy, n=...)`` working whichever import happened first.
    """

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return rollout(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
