"""swarmgym.register / make on top of gymnasium's registry."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import gymnasium
import pytest
import swarmgym
from swarmgym.envs import registry
from swarmgym.envs.core import AgentEnv
from swarmgym.errors import RegistryError
from swarmgym.wire import Task


def make_echo(prompt: str = "echo", **kw: Any) -> AgentEnv:
    return AgentEnv([Task(id="e0", prompt=prompt)], **kw)


@pytest.fixture
def env_id() -> Iterator[str]:
    """A fresh id, removed from the global registry afterwards."""
    new = f"testorg/Echo{uuid.uuid4().hex[:8]}-v0"
    yield new
    gymnasium.registry.pop(new, None)
    registry._DESCRIPTIONS.pop(new, None)


def test_register_and_make_with_a_callable(env_id: str) -> None:
    swarmgym.register(env_id, make_echo, kwargs={"prompt": "hello"}, description="an echo env")
    assert swarmgym.registered_envs()[env_id] == "an echo env"
    env = swarmgym.make(env_id)
    assert isinstance(env, AgentEnv)
    assert env.env_id == env_id  # recorded in trajectories
    obs, _ = env.reset(seed=0)
    assert obs["messages"][-1].content == "hello"
    env.close()
    env = swarmgym.make(env_id, prompt="override")  # make kwargs override registered ones
    assert env.reset(seed=0)[0]["messages"][-1].content == "override"
    env.close()


def test_register_with_a_lazy_string_entry_point(env_id: str) -> None:
    swarmgym.register(env_id, f"{__name__}:make_echo")
    env = gymnasium.make(env_id).unwrapped
    assert isinstance(env, AgentEnv)
    env.close()


def test_duplicate_id_is_an_error_unless_override(env_id: str) -> None:
    swarmgym.register(env_id, make_echo)
    with pytest.raises(RegistryError, match=f"env id '{env_id}' is already registered; pass override=True"):
        swarmgym.register(env_id, make_echo)
    swarmgym.register(env_id, make_echo, kwargs={"prompt": "second"}, override=True)
    env = swarmgym.make(env_id)
    assert env.reset()[0]["messages"][-1].content == "second"
    env.close()


def test_builtin_ids_cannot_be_silently_replaced() -> None:
    with pytest.raises(RegistryError, match="already registered"):
        swarmgym.register("swarmgym/Math-v0", make_echo)


def test_unknown_id_suggests_a_close_match() -> None:
    with pytest.raises(RegistryError, match=r"unknown env 'swarmgym/Mat-v0'; did you mean 'swarmgym/Math-v0'\?"):
        swarmgym.make("swarmgym/Mat-v0")
    with pytest.raises(RegistryError, match="run `swarmgym envs` to list them"):
        swarmgym.make("zzzz/Qqqqqqq-v9")
    with pytest.raises(RegistryError) as info:
        swarmgym.make("swarmgym/Mat-v0")
    # a KeyError too (callers catching KeyError keep working), with a plain message, not KeyError's repr
    assert isinstance(info.value, KeyError) and str(info.value).startswith("unknown env")


def test_gymnasium_make_works_after_import_swarmgym() -> None:
    env = gymnasium.make("swarmgym/Math-v0")
    inner = env.unwrapped
    assert isinstance(inner, AgentEnv) and inner.env_id == "swarmgym/Math-v0"
    obs, info = env.reset(seed=0)
    assert obs["messages"][-1].role == "user" and info["task_id"]
    env.close()


def test_swarmgym_make_returns_the_unwrapped_env_and_passes_kwargs() -> None:
    env = swarmgym.make("swarmgym/ToolMath-v0", size=7, seed=3)
    assert type(env) is AgentEnv
    assert len(env.tasks) == 7
    assert [s.name for s in env.tool_specs] == ["calculator"]
    env.close()


def test_registered_envs_lists_the_builtins_with_descriptions() -> None:
    envs = swarmgym.registered_envs()
    for env_id in registry.BUILTIN_ENVS:
        assert envs[env_id], env_id
    assert list(envs) == sorted(envs)
    registry.register_builtins()  # idempotent
    assert swarmgym.registered_envs() == envs
