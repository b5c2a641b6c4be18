"""The rollout package re-exports exactly its public names; swarmgym's lazy exports resolve."""

from __future__ import annotations

import pytest

import swarmgym
import swarmgym.rollout as pkg


def test_all_matches_public_names() -> None:
    # the package re-exports lazily (PEP 562): __all__ is its export table, and every name resolves to the
    # object of the module that defines it
    assert sorted(pkg.__all__) == pkg.__all__ and set(pkg.__all__) == set(pkg._LAZY)
    for name in pkg.__all__:
        obj = getattr(pkg, name)
        assert getattr(obj, "__module__", "").startswith("swarmgym.rollout."), name
    with pytest.raises(AttributeError):
        pkg.not_a_name  # noqa: B018


def test_top_level_exports() -> None:
    from swarmgym.rollout.manager import rollout

    assert swarmgym.RolloutManager is pkg.RolloutManager
    assert swarmgym.RolloutLimits is pkg.RolloutLimits
    assert swarmgym.TrajectoryStore is pkg.TrajectoryStore
    assert callable(swarmgym.rollout) and callable(pkg)
    assert swarmgym.rollout is rollout or swarmgym.rollout is pkg
