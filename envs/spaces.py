"""Gymnasium spaces for conversations and assistant actions.

Real :class:`gymnasium.spaces.Space` subclasses: ``contains`` validates (so ``check_env`` and users can
rely on it) and ``sample`` draws from the space's own seeded generator (so ``check_env``'s determinism
checks hold).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces

from ..wire import Completion, Message, ToolCall, ToolSpec, coerce_action  # noqa: F401 (re-exported)

__all__ = ["ConversationSpace", "ToolSpecsSpace", "AssistantActionSpace", "observation_space", "coerce_action"]

_WORDS = ("the", "answer", "is", "let", "me", "think", "step", "so", "we", "get", "42", "x", "and", "then")


def _random_text(rng: np.random.Generator, lo: int = 1, hi: int = 12) -> str:
    n = int(rng.integers(lo, hi))
    return " ".join(_WORDS[int(i)] for i in rng.integers(0, len(_WORDS), size=n))


class ConversationSpace(spaces.Space[tuple]):
    """A conversation: a tuple of :class:`~swarmgym.wire.Message`."""

    def __init__(self, seed: int | np.random.Generator | None = None) -> None:
        super().__init__(shape=None, dtype=None, seed=seed)

    @property
    def is_np_flattenable(self) -> bool:
        return False

    def sample(self, mask: Any = None, probability: Any = None) -> tuple[Message, ...]:
        n = int(self.np_random.integers(1, 4))
        roles = ("user", "assistant")
        return tuple(Message(role=roles[i % 2], content=_random_text(self.np_random)) for i in range(n))

    def contains(self, x: Any) -> bool:
        return isinstance(x, tuple) and all(isinstance(m, Message) for m in x)

    def __repr__(self) -> str:
        return "ConversationSpace()"

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, ConversationSpace)


class ToolSpecsSpace(spaces.Space[tuple]):
    """The tools offered to the model: a tuple of :class:`~swarmgym.wire.ToolSpec`."""

    def __init__(self, seed: int | np.random.Generator | None = None) -> None:
        super().__init__(shape=None, dtype=None, seed=seed)

    @property
    def is_np_flattenable(self) -> bool:
        return False

    def sample(self, mask: Any = None, probability: Any = None) -> tuple[ToolSpec, ...]:
        return tuple(ToolSpec(name=f"tool_{i}") for i in range(int(self.np_random.integers(0, 3))))

    def contains(self, x: Any) -> bool:
        return isinstance(x, tuple) and all(isinstance(t, ToolSpec) for t in x)

    def __repr__(self) -> str:
        return "ToolSpecsSpace()"

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, ToolSpecsSpace)


def observation_space() -> spaces.Dict:
    """``{"messages": ConversationSpace, "tools": ToolSpecsSpace}``."""
    return spaces.Dict({"messages": ConversationSpace(), "tools": ToolSpecsSpace()})


class AssistantActionSpace(spaces.Space[Any]):
    """An assistant turn: a str, an OpenAI-style dict, a :class:`Message` (role assistant) or a
    :class:`Completion`. ``sample`` returns a text-only assistant Message (random words)."""

    def __init__(self, seed: int | np.random.Generator | None = None) -> None:
        super().__init__(shape=None, dtype=None, seed=seed)

    @property
    def is_np_flattenable(self) -> bool:
        return False

    def sample(self, mask: Any = None, probability: Any = None) -> Message:
        return Message(role="assistant", content=_random_text(self.np_random))

    def contains(self, x: Any) -> bool:
        try:
            coerce_action(x)
        except (TypeError, ValueError):
            return False
        return True

    def __repr__(self) -> str:
        return "AssistantActionSpace()"

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, AssistantActionSpace)
