"""The rollout package re-exports exactly its public names; swarmgym's lazy exports resolve."""

from __future__ import annotations

import swarmgym
import swarmgym.rollout as pkg


def test_all_matches_public_names() -> None:
    public = {n for n in vars(pkg) if not n.startswith("_")} - {"annotations", "sys", "types", "Any"}
    submodules = {"groups", "limiter", "limits", "manager", "metrics", "store", "cli", "specs", "ray_backend", "ray_limiter"}
    assert set(pkg.__all__) == public - submodules


def test_top_level_exports() -> None:
    from swarmgym.rollout.manager import rollout

    assert swarmgym.RolloutManager is pkg.RolloutManager
    assert swarmgym.RolloutLimits is pkg.RolloutLimits
    assert swarmgym.TrajectoryStore is pkg.TrajectoryStore
    assert callable(swarmgym.rollout) and callable(pkg)
    assert swarmgym.rollout is rollout or swarmgym.rollout is pkg
