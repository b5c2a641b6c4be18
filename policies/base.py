"""The Policy protocol, the per-call context and the role router."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from ..errors import ConfigError
from ..wire import Completion, Message, SamplingParams, ToolSpec

if TYPE_CHECKING:
    from ..wire import Task

__all__ = ["Policy", "PolicyContext", "PolicyRouter"]

log = logging.getLogger(__name__)


@dataclass(slots=True)
class PolicyContext:
    """What a policy may know about the call besides the messages.

    Attributes:
        task: the episode's task (the oracle policy reads its reference solution from here).
        env: the AgentEnv running the episode (for ``env.oracle``), or None.
        role: the policy role of the episode ("main", "subagent", "judge", …).
        episode_id: id of the trajectory being built; stable across turns (use it for sticky routing).
        state: per-episode scratch space for the policy (e.g. the token-exact conversation so far).
        turn: 0-based index of this model call within the episode.
        side_call: ``async side_call(role, messages, tools, sampling, ctx, policy=None) -> Completion`` for
            model calls an episode makes besides its own turns (a context strategy's summariser); the rollout
            manager sets it so such calls get its pause, limits, version stamp and store. None outside one.
    """

    task: Task | None = None
    env: Any = None
    role: str = "main"
    episode_id: str = ""
    state: dict[str, Any] = field(default_factory=dict)
    turn: int = 0
    side_call: Any = None


@runtime_checkable
class Policy(Protocol):
    """Anything that turns a conversation into the next assistant message.

    ``complete`` must not raise for bad *model output* (malformed tool calls are data); it raises
    :class:`~swarmgym.errors.PolicyError` subclasses when the model cannot be reached or fails.
    """

    async def complete(
        self,
        messages: Sequence[Message],
        tools: Sequence[ToolSpec],
        sampling: SamplingParams,
        *,
        ctx: PolicyContext | None = None,
    ) -> Completion: ...


class PolicyRouter:
    """Maps a role ("main", "subagent", "judge", "summarizer", …) to a policy.

    Roles listed in ``frozen`` produce ``trainable=False`` trajectories: their tokens are observations for
    the trainer, never actions to learn from. **A frozen role is pinned**: to the policy given for it in
    ``roles`` (with its version from ``versions``, default 0), or — the documented default when none is
    given — to the ``main`` policy *as it is when the router is built* (version 0). Pinning holds that
    policy object: replacing ``main`` later (:meth:`set`, ``RolloutManager.resume``) never changes a pinned
    role, and completions of a pinned role keep its version. The default logs a warning the first time the
    role is used. What pinning cannot do is freeze an object whose weights change in place (one HTTP
    server that the trainer updates): give such a role its own policy (its own server or checkpoint).
    ``strict=True`` turns the default into an error.

    Trainable roles without a policy of their own follow ``default`` ("main") as it changes.

    Example:
        >>> from swarmgym.policies import ScriptedPolicy
        >>> r = PolicyRouter(ScriptedPolicy(["hi"]), frozen={"subagent"})
        >>> r.is_trainable("main"), r.is_trainable("subagent")
        (True, False)
        >>> r.version_of("subagent"), r.version_of("main")
        (0, None)
    """

    def __init__(
        self,
        main: Policy | None = None,
        roles: Mapping[str, Policy] | None = None,
        *,
        frozen: set[str] | frozenset[str] = frozenset({"subagent", "judge", "summarizer"}),
        default: str = "main",
        strict: bool = False,
        versions: Mapping[str, int] | None = None,
    ) -> None:
        self._policies: dict[str, Policy] = dict(roles or {})
        if main is not None:
            self._policies["main"] = main
        self.frozen = frozenset(frozen)
        self.default = default
        self.strict = strict
        self.versions: dict[str, int] = {r: int(v) for r, v in (versions or {}).items()}
        """Pinned version per frozen role (stamped on its completions)."""
        self.defaulted: set[str] = set()
        """Frozen roles pinned by default to the first ``default`` policy (no policy of their own given)."""
        self._warned: set[str] = set()
        self._pin_defaults()

    def _pin_defaults(self) -> None:
        base = self._policies.get(self.default)
        if base is None or self.strict:
            return
        for r in self.frozen:
            if r not in self._policies:
                self._policies[r] = base
                self.defaulted.add(r)
        for r in self.frozen:
            self.versions.setdefault(r, 0)

    @classmethod
    def of(cls, policy: Policy | PolicyRouter) -> PolicyRouter:
        """Wrap a single policy (or pass a router through)."""
        return policy if isinstance(policy, PolicyRouter) else cls(policy)

    def copy(self) -> PolicyRouter:
        """A router with the same assignments, pins and versions (changing one leaves the other alone)."""
        new = PolicyRouter(roles=self._policies, frozen=self.frozen, default=self.default, strict=self.strict,
                           versions=self.versions)
        new.defaulted = set(self.defaulted)
        new._warned = set(self._warned)
        return new

    def set(self, role: str, policy: Policy, *, version: int | None = None) -> None:
        """Assign ``policy`` to ``role`` (e.g. swap in a new version between training steps).

        Setting ``main`` changes no pinned (frozen) role; a frozen role is re-pinned only by setting it by
        name (``version``: its new pinned version, default 0).
        """
        if role in self.frozen:
            self.versions[role] = int(version or 0)
            self.defaulted.discard(role)
        self._policies[role] = policy
        if role == self.default:
            self._pin_defaults()  # frozen roles not pinned yet (a router built without main) pin now

    def roles(self) -> list[str]:
        return sorted(self._policies)

    def get(self, role: str = "main") -> Policy:
        """The policy for ``role``; raises ConfigError with the known roles when there is none."""
        p = self._policies.get(role)
        if p is None and not self.strict and role not in self.frozen:
            p = self._policies.get(self.default)
        if p is None:
            hint = " (a frozen role needs its own policy when strict=True)" if role in self.frozen else ""
            raise ConfigError(
                f"no policy for role {role!r}; known roles: {self.roles() or 'none'} "
                f"(pass roles={{{role!r}: policy}} to PolicyRouter){hint}"
            )
        if role in self.defaulted and role not in self._warned:
            self._warned.add(role)
            log.warning(
                "role %r has no policy of its own: pinned to the %r policy as it was when the router was built "
                "(version %d); later updates of %r do not reach it. Pass roles={%r: policy} to choose.",
                role, self.default, self.versions.get(role, 0), self.default, role,
            )
        return p

    def version_of(self, role: str) -> int | None:
        """The pinned version of a frozen role; None for a trainable role (it follows the current version)."""
        return self.versions.get(role, 0) if role in self.frozen else None

    def is_trainable(self, role: str) -> bool:
        return role not in self.frozen
