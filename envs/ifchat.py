"""``swarmgym/IFChat-v0``: chat requests with verifiable instruction constraints.

Each task is a generated chat request ("Write a short blog post about city gardens.") plus ``k`` compatible
constraints from :mod:`swarmgym.prompts.constraints` (word counts, keywords, JSON output, a title in
``<<>>``, …). The judge checks every constraint on the final answer (reward = share met, facets per kind);
the oracle composes a response that meets all of them.

Tasks are generated lazily and deterministically from ``(seed, index)``.
"""

from __future__ import annotations

import random
from typing import Any, Literal

from ..prompts.compose import compose_response
from ..prompts.instructions import (
    CONSTRAINTS_KEY,
    InstructionEnhancer,
    InstructionJudge,
)
from ..wire import Message, Task
from .core import AgentEnv, EpisodeLimits

__all__ = ["REQUESTS", "TOPICS", "IFChatTasks", "ifchat_oracle", "make_env"]

# Plain, comma-free requests without capitalised words: "repeat the request" stays checkable with them.
REQUESTS: tuple[str, ...] = (
    "Write a short blog post about {topic}.",
    "Describe {topic} for a curious child.",
    "Explain why {topic} matters to people today.",
    "Write a letter to a friend about {topic}.",
    "Give some advice on {topic}.",
    "Write a short story that involves {topic}.",
    "Summarize what you know about {topic}.",
    "Write a product description inspired by {topic}.",
)
TOPICS: tuple[str, ...] = (
    "city gardens", "learning a new language", "ocean tides", "old bookshops", "winter mornings",
    "public libraries", "train travel", "home cooking", "night skies", "mountain trails", "street music",
    "local markets", "rainy afternoons", "board games", "bicycle repair", "community theater",
)


class IFChatTasks:
    """Deterministic, lazily generated IFChat tasks.

    Args:
        size: number of tasks.
        seed: generation seed (same seed → same tasks).
        k: constraints per task: an int, or ``(lo, hi)`` for a seeded count in that range.
        kinds: allowed constraint kinds (default: all).
    """

    def __init__(self, size: int = 1000, seed: int = 0, k: int | tuple[int, int] = (1, 3),
                 kinds: list[str] | None = None) -> None:
        lo, hi = (k, k) if isinstance(k, int) else k
        if not 0 <= lo <= hi:
            raise ValueError(f"k must be >= 0 (or a range lo <= hi), got {k!r}")
        self.size = int(size)
        self.seed = seed
        self.k = (lo, hi)
        self.kinds = kinds

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> Task:
        if not isinstance(index, int) or isinstance(index, bool):
            raise TypeError(f"task index must be an int, got {type(index).__name__}")
        if index < 0:
            index += self.size
        if not 0 <= index < self.size:
            raise IndexError(f"task index {index} out of range for {self.size} tasks")
        rng = random.Random(f"ifchat\x1f{self.seed}\x1f{index}")
        request = rng.choice(REQUESTS).format(topic=rng.choice(TOPICS))
        base = Task(id=f"ifchat-{self.seed}-{index}", prompt=request, metadata={"source": "ifchat", "request": request})
        enh = InstructionEnhancer(rng.randint(*self.k), kinds=self.kinds)
        return enh.enhance(base, rng)


def ifchat_oracle(task: Task, messages: list[Message]) -> str:
    """A response meeting every constraint recorded in the task."""
    return compose_response(task.metadata.get(CONSTRAINTS_KEY) or [], seed=task.id)


def make_env(
    size: int = 1000,
    seed: int = 0,
    k: int | tuple[int, int] = (1, 3),
    kinds: list[str] | None = None,
    mode: Literal["strict", "loose"] = "strict",
    reward: Literal["fraction", "all"] = "fraction",
    **env_kwargs: Any,
) -> AgentEnv:
    """Build ``swarmgym/IFChat-v0``.

    Args:
        size, seed, k, kinds: see :class:`IFChatTasks`.
        mode: strict or loose constraint checking.
        reward: ``"fraction"`` of constraints met, or ``"all"`` (1 only when every one is met).
        **env_kwargs: passed to :class:`~swarmgym.envs.core.AgentEnv` (``system_prompt``, ``limits`` …).
    """
    env_kwargs.setdefault("limits", EpisodeLimits(max_turns=1))
    env_kwargs.setdefault("system_prompt", "You are a helpful assistant. Follow every instruction exactly.")
    return AgentEnv(
        IFChatTasks(size=size, seed=seed, k=k, kinds=kinds),
        judge=InstructionJudge(mode=mode, reward=reward),
        oracle=ifchat_oracle,
        env_id="swarmgym/IFChat-v0",
        **env_kwargs,
    )
