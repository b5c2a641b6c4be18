"""gymnasium's own env checker passes for every registered env, with warnings as errors.

An env id whose module is missing or broken fails here (never skips): every registered id must work.
"""

from __future__ import annotations

import warnings

import gymnasium
import pytest
import swarmgym
from gymnasium.utils.env_checker import check_env
from swarmgym.envs.registry import BUILTIN_ENVS

ENV_IDS = sorted(set(swarmgym.registered_envs()) | set(BUILTIN_ENVS))


def test_every_builtin_is_registered() -> None:
    assert set(BUILTIN_ENVS) <= set(swarmgym.registered_envs())


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_check_env(env_id: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        env = gymnasium.make(env_id).unwrapped
        try:
            assert isinstance(env, swarmgym.AgentEnv)
            assert env.spec is not None and env.spec.id == env_id
            check_env(env)
        finally:
            env.close()
