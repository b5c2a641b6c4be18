"""What travels to another process: policies and envs as *where they come from* plus plain-data arguments.

A Ray worker must rebuild the policies and the env a run uses. Pickling live objects would drag along
sockets, event-loop objects, sandboxes and whatever else they hold (or fail deep inside Ray with an
unreadable error), so they travel as descriptions instead:

- a **policy** as a :class:`Spec`: ``Spec("module:Class", **kwargs)``. A Spec is itself a Policy (it builds
  its object on first use), so the same router works in-process and on Ray;
- an **env** as its registered id plus the keyword arguments it was made with (``swarmgym.make`` records
  them in ``env.spec``); an id registered at runtime travels with its ``"module:function"`` entry point.

Arguments must be plain data (None, bool, int, float, str, lists, tuples, dicts with str keys, pydantic
models); anything else is a :class:`~swarmgym.errors.ConfigError` naming the argument and its type.

Example:
    >>> p = Spec("swarmgym.policies.scripted:OraclePolicy", latency=0.01)
    >>> p.target, p.kwargs
    ('swarmgym.policies.scripted:OraclePolicy', {'latency': 0.01})
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from ..errors import ConfigError

__all__ = ["Spec", "env_spec", "router_spec", "build_router", "ensure_registered"]

_SCALARS = (type(None), bool, int, float, str, bytes)


def check_plain(value: Any, where: str) -> None:
    """Raise ConfigError unless ``value`` is plain data that another process can rebuild exactly."""
    import pydantic

    if isinstance(value, _SCALARS) or isinstance(value, pydantic.BaseModel) or isinstance(value, Spec):
        return
    if isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            check_plain(v, f"{where}[{i}]")
        return
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                raise ConfigError(f"{where} has a non-str key {k!r}: only plain data can be sent to Ray workers")
            check_plain(v, f"{where}[{k!r}]")
        return
    raise ConfigError(
        f"{where} is a {type(value).__module__}.{type(value).__qualname__}, which cannot be sent to Ray workers: "
        "arguments must be plain data (None, bool, int, float, str, list, tuple, dict, pydantic models)"
    )


def _import(target: str) -> Any:
    mod, sep, name = target.partition(":")
    if not sep or not mod or not name:
        raise ConfigError(f"expected 'module:callable', got {target!r}")
    try:
        obj: Any = importlib.import_module(mod)
        for part in name.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as e:
        raise ConfigError(f"cannot import {target!r}: {e} (is it installed on every node?)") from e
    return obj


class Spec:
    """A policy described by ``"module:callable"`` and plain-data keyword arguments; built on first use.

    Use it wherever a Policy goes (``RolloutManager``, ``PolicyRouter`` roles): in-process it behaves like
    the object it builds; with ``backend="ray"`` each worker builds its own from the description.

    Args:
        target: ``"module:callable"`` returning the policy (a class or a factory).
        **kwargs: its keyword arguments (plain data only).

    Raises:
        ConfigError: a malformed target or a keyword argument that is not plain data.
    """

    __slots__ = ("target", "kwargs", "_obj")

    def __init__(self, target: str, /, **kwargs: Any) -> None:
        if not isinstance(target, str) or ":" not in target:
            raise ConfigError(f"Spec target must be 'module:callable', got {target!r}")
        check_plain(kwargs, f"Spec({target!r}) keyword arguments")
        self.target = target
        self.kwargs = kwargs
        self._obj: Any = None

    def build(self) -> Any:
        """The object this spec describes (made once per process, then reused)."""
        if self._obj is None:
            self._obj = _import(self.target)(**self.kwargs)
        return self._obj

    async def complete(self, messages: Any, tools: Any, sampling: Any, *, ctx: Any = None) -> Any:
        return await self.build().complete(messages, tools, sampling, ctx=ctx)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_spec, (self.target, self.kwargs))  # the description, never the built object

    def __repr__(self) -> str:
        args = "".join(f", {k}={v!r}" for k, v in self.kwargs.items())
        return f"Spec({self.target!r}{args})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Spec) and (self.target, self.kwargs) == (other.target, other.kwargs)

    def __hash__(self) -> int:
        return hash(self.target)


def _rebuild_spec(target: str, kwargs: dict[str, Any]) -> Spec:
    return Spec(target, **kwargs)


# ---------------------------------------------------------------------------------------------- envs


def env_spec(env: Any) -> tuple[str, dict[str, Any], tuple[str, dict[str, Any]] | None]:
    """``(env id, make kwargs, registration)`` for an env id or an env made by ``swarmgym.make``.

    ``registration`` is ``(entry point, default kwargs)`` for ids that are not built in, so a worker that
    never ran the driver's ``register`` call can register the id itself.

    Raises:
        ConfigError: the env cannot be described (not made from a registered id, non-plain arguments, or an
            id registered with a callable entry point).
    """
    if isinstance(env, str):
        env_id, kwargs = env, {}
    else:
        gym_spec = getattr(env, "spec", None)
        env_id = getattr(gym_spec, "id", None)
        if not isinstance(env_id, str):
            raise ConfigError(
                f"cannot send env {type(env).__name__} to Ray workers: envs travel as a registered id plus "
                "arguments, and this one was not made from an id. Register its factory "
                "(swarmgym.register('ns/Name-v0', entry_point='module:factory')) and pass the id (or an env "
                "made with swarmgym.make)"
            )
        kwargs = dict(getattr(gym_spec, "kwargs", None) or {})
    check_plain(kwargs, f"env {env_id!r} arguments")
    return env_id, kwargs, _registration(env_id)


def _registration(env_id: str) -> tuple[str, dict[str, Any]] | None:
    from ..envs.registry import BUILTIN_ENVS, spec

    if env_id in BUILTIN_ENVS:
        return None
    s = spec(env_id)  # RegistryError (with a suggestion) for an unknown id
    if not isinstance(s.entry_point, str):
        raise ConfigError(
            f"cannot send env {env_id!r} to Ray workers: it is registered with a callable entry point; register "
            "it with a 'module:function' string that every node can import"
        )
    kwargs = dict(s.kwargs or {})
    check_plain(kwargs, f"env {env_id!r} registered arguments")
    return s.entry_point, kwargs


def ensure_registered(env_id: str, registration: tuple[str, dict[str, Any]] | None) -> None:
    """Register ``env_id`` in this process when the driver registered it at runtime."""
    import gymnasium

    from ..envs.registry import load_plugins, register, register_builtins

    register_builtins()
    load_plugins()
    if env_id not in gymnasium.registry and registration is not None:
        register(env_id, registration[0], kwargs=registration[1])


# ---------------------------------------------------------------------------------------------- policies


def router_spec(router: Any) -> dict[str, Any]:
    """The router's assignments as plain data; every role's policy must be a :class:`Spec`.

    Raises:
        ConfigError: a role's policy is a live object (the message names the role and a Spec to use).
    """
    policies = router._policies
    for role, p in policies.items():
        if not isinstance(p, Spec):
            cls = type(p)
            raise ConfigError(
                f"cannot send the policy of role {role!r} ({cls.__qualname__}) to Ray workers: policies travel "
                f"as descriptions, not live objects; pass Spec('{cls.__module__}:{cls.__qualname__}', **kwargs) "
                "(from swarmgym.rollout import Spec) with the arguments that build it"
            )
    return {
        "policies": dict(policies),
        "frozen": sorted(router.frozen),
        "default": router.default,
        "strict": router.strict,
        "versions": dict(router.versions),
        "defaulted": sorted(router.defaulted),
    }


def build_router(data: Mapping[str, Any]) -> Any:
    """A PolicyRouter from :func:`router_spec` data (policies shared between roles stay shared)."""
    from ..policies.base import PolicyRouter

    r = PolicyRouter(
        roles=data["policies"], frozen=set(data["frozen"]), default=data["default"], strict=data["strict"],
        versions=data["versions"],
    )  # fmt: skip
    r.defaulted = set(data["defaulted"])
    return r
