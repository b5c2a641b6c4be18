"""The Policy protocol, the per-call context and the role router."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from ..errors import ConfigError
from ..wire import Completion, Message, SamplingParams, ToolSpec

if TYPE_CHECKING:
    from ..wire import Task

__all__ = ["Policy", "PolicyContext", "PolicyRouter"]


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
    """

    task: Task | None = None
    env: Any = None
    role: str = "main"
    episode_id: str = ""
    state: dict[str, Any] = field(default_factory=dict)
    turn: int = 0


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
    the trainer, never actions to learn from. A role without its own policy falls back to ``default``
    ("main") unless ``strict=True``.

    Example:
        >>> from swarmgym.policies import ScriptedPolicy
        >>> r = PolicyRouter(ScriptedPolicy(["hi"]), frozen={"subagent"})
        >>> r.is_trainable("main"), r.is_trainable("subagent")
        (True, False)
    """

    def __init__(
        self,
        main: Policy | None = None,
        roles: Mapping[str, Policy] | None = None,
        *,
        frozen: set[str] | frozenset[str] = frozenset({"subagent", "judge", "summarizer"}),
        default: str = "main",
        strict: bool = False,
    ) -> None:
        self._policies: dict[str, Policy] = dict(roles or {})
        if main is not None:
            self._policies["main"] = main
        self.frozen = frozenset(frozen)
        self.default = default
        self.strict = strict

    @classmethod
    def of(cls, policy: Policy | PolicyRouter) -> PolicyRouter:
        """Wrap a single policy (or pass a router through)."""
        return policy if isinstance(policy, PolicyRouter) else cls(policy)

    def set(self, role: str, policy: Policy) -> None:
        """Assign ``policy`` to ``role`` (e.g. swap in a new version between training steps)."""
        self._policies[role] = policy

    def roles(self) -> list[str]:
        return sorted(self._policies)

    def get(self, role: str = "main") -> Policy:
        """The policy for ``role``; raises ConfigError with the known roles when there is none."""
        p = self._policies.get(role)
        if p is None and not self.strict:
            p = self._policies.get(self.default)
        if p is None:
            raise ConfigError(
                f"no policy for role {role!r}; known roles: {self.roles() or 'none'} "
                f"(pass roles={{{role!r}: policy}} to PolicyRouter)"
            )
        return p

    def is_trainable(self, role: str) -> bool:
        return role not in self.frozen
