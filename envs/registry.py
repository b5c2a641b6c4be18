"""Registry: ``swarmgym.register`` / ``swarmgym.make`` on top of gymnasium's registry.

Ids are versioned (``swarmgym/Name-vN``) and entry points are lazy ``"module:Class"`` strings, so
registering costs nothing until an env is made. Third-party packages expose envs through the
``swarmgym.envs`` entry-point group: each entry point names a callable that registers its envs (or an env
class/factory, registered under the entry point's name).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Any

import gymnasium

from ..errors import RegistryError

__all__ = ["register", "make", "registered_envs", "register_builtins", "load_plugins", "spec"]

ENTRY_POINT_GROUP = "swarmgym.envs"
_plugins_loaded = False
_DESCRIPTIONS: dict[str, str] = {}  # id -> one-line description shown by `swarmgym envs`

# id -> (entry point, kwargs, one-line description)
BUILTIN_ENVS: dict[str, tuple[str, dict[str, Any], str]] = {
    "swarmgym/Math-v0": ("swarmgym.envs.math:make_math_env", {}, "reasoning-gym math, answer in \\boxed{}"),
    "swarmgym/ToolMath-v0": (
        "swarmgym.envs.math:make_tool_math_env",
        {},
        "arithmetic with a calculator tool (real tool calls)",
    ),
    "swarmgym/PythonMath-v0": (
        "swarmgym.envs.python_math:make_env",
        {},
        "math with a sandboxed stateful python tool",
    ),
    "swarmgym/SWE-v0": ("swarmgym.envs.swe:make_env", {}, "generated repo-fix tasks with hidden tests"),
    "swarmgym/HumanEval-v0": ("swarmgym.envs.humaneval:make_env", {}, "HumanEval (164) with sandboxed tests"),
    "swarmgym/IFChat-v0": ("swarmgym.envs.ifchat:make_env", {}, "chat with verifiable instruction constraints"),
    "swarmgym/BlackBoxMath-v0": (
        "swarmgym.envs.blackbox:make_math_env",
        {},
        "arithmetic solved by an outside openai-client agent through the LLM gateway",
    ),
    "swarmgym/WideSearch-v0": (
        "swarmgym.envs.widesearch:make_env",
        {},
        "build entity x attribute tables from a local corpus",
    ),
    "swarmgym/WideSearch-Swarm-v0": (
        "swarmgym.envs.widesearch:make_swarm_env",
        {},
        "WideSearch with create_subagent/assign_task for an orchestrator",
    ),
}


def register(
    id: str,
    entry_point: str | Callable[..., Any],
    *,
    kwargs: dict[str, Any] | None = None,
    description: str = "",
    max_episode_steps: int | None = None,
    override: bool = False,
) -> None:
    """Register an env id (wraps ``gymnasium.register``).

    Args:
        id: versioned id, e.g. ``"myorg/Sorting-v0"``.
        entry_point: ``"module:callable"`` (imported lazily) or a callable returning an AgentEnv.
        kwargs: default keyword arguments for the entry point (``make`` kwargs override them).
        description: one line shown by ``swarmgym envs``.
        max_episode_steps: passed to gymnasium (adds its TimeLimit wrapper when set).
        override: replace an existing registration instead of raising.

    Raises:
        RegistryError: the id is already registered (and ``override`` is False).
    """
    if id in gymnasium.registry and not override:
        raise RegistryError(f"env id {id!r} is already registered; pass override=True to replace it")
    if id in gymnasium.registry:
        del gymnasium.registry[id]
    gymnasium.register(
        id=id,
        entry_point=entry_point,
        kwargs=dict(kwargs or {}),
        max_episode_steps=max_episode_steps,
        disable_env_checker=True,  # we check with check_env in tests; the passive checker warns per step
        order_enforce=False,
    )
    _DESCRIPTIONS[id] = description




def register_builtins() -> None:
    """Register the built-in env ids (idempotent; nothing is imported)."""
    for env_id, (ep, kw, desc) in BUILTIN_ENVS.items():
        if env_id not in gymnasium.registry:
            register(env_id, ep, kwargs=kw, description=desc)


def load_plugins() -> None:
    """Load third-party envs from the ``swarmgym.envs`` entry-point group (once)."""
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    from importlib.metadata import entry_points

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            obj = ep.load()
        except Exception as e:
            raise RegistryError(
                f"entry point {ep.name!r} = {ep.value!r} in group {ENTRY_POINT_GROUP!r} failed to load: "
                f"{type(e).__name__}: {e}"
            ) from e
        if "/" in ep.name:  # the entry point *is* an env: register it under its name
            if ep.name not in gymnasium.registry:
                register(ep.name, ep.value)
        elif callable(obj):  # a hook that registers its envs
            obj()


def registered_envs() -> dict[str, str]:
    """All swarmgym-style env ids (``namespace/Name-vN`` with a swarmgym-made env) → description."""
    load_plugins()
    return {k: _DESCRIPTIONS.get(k, "") for k in sorted(_DESCRIPTIONS) if k in gymnasium.registry}


def spec(id: str) -> Any:
    """The gymnasium EnvSpec for ``id``; raises RegistryError with a suggestion when unknown."""
    load_plugins()
    if id in gymnasium.registry:
        return gymnasium.registry[id]
    close = difflib.get_close_matches(id, list(gymnasium.registry), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else "; run `swarmgym envs` to list them"
    raise RegistryError(f"unknown env {id!r}{hint}")


def make(id: str, **kwargs: Any) -> Any:
    """Make an env by id (``gymnasium.make`` semantics, unwrapped: you get the AgentEnv itself).

    Raises:
        RegistryError: unknown id (with a close-match suggestion).
    """
    s = spec(id)
    env = gymnasium.make(s, **kwargs).unwrapped
    if getattr(env, "env_id", None) in (None, ""):
        try:
            env.env_id = id
        except AttributeError:
            pass
    return env
