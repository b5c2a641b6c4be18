"""Rollout manager: many concurrent episodes with recursive sub-rollouts, groups, partial rollout, a
crash-safe store and live metrics.

Re-exports only; see :mod:`swarmgym.rollout.manager` for the design.
"""

from __future__ import annotations

import sys
import types
from typing import Any

from .._lazy import lazy_exports

# Lazy (PEP 562): readers of the store (swarmgym verify/view/plot) import rollout.store without loading the
# manager, as DESIGN's observability rule asks; ``rollout`` itself is needed eagerly by the callable module.
_LAZY = {
    "GroupStats": ".groups",
    "group_stats": ".groups",
    "pass_at_k": ".groups",
    "Lease": ".limiter",
    "SlotPool": ".limiter",
    "RolloutLimits": ".limits",
    "RolloutManager": ".manager",
    "rollout": ".manager",
    "LiveDashboard": ".metrics",
    "RolloutMetrics": ".metrics",
    "serve_prometheus": ".metrics",
    "Spec": ".specs",
    "MemoryStore": ".store",
    "TrajectoryStore": ".store",
    "orphan_ids": ".store",
    "read_records": ".store",
    "read_trajectories": ".store",
    "store_manifest": ".store",
}
__all__ = sorted(_LAZY)
__getattr__, __dir__ = lazy_exports(__name__, _LAZY)


class _CallableModule(types.ModuleType):
    """``swarmgym.rollout`` is both this package and the sync :func:`rollout` function.

    Importing the subpackage makes Python set ``swarmgym.rollout`` to the *module*, shadowing the function
    that ``swarmgym`` exports under the same name; making the module callable keeps
    ``swarmgym.rollout(env, policy, n=...)`` working whichever import happened first.
    """

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from .manager import rollout

        return rollout(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
