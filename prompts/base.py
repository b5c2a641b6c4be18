"""The PromptEnhancer protocol and helpers shared by the enhancers.

An enhancer rewrites a task: ``enhance(task, rng) -> Task``, where ``rng`` is a seeded ``random.Random``
(AgentEnv seeds it from the reset seed). Enhancers are pure: same task and rng state → same result; they
never mutate the input (tasks are frozen) and record what they did in ``task.metadata`` so judges can
follow (the answer format, the added constraints).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from ..wire import Message, Task

__all__ = ["Chain", "PromptEnhancer", "append_to_prompt", "enhance_task", "prompt_text", "task_rng", "with_metadata"]


@runtime_checkable
class PromptEnhancer(Protocol):
    """Rewrites a task. Instruction enhancers also expose ``judge`` (and ``weight``) for what they added."""

    def enhance(self, task: Task, rng: random.Random) -> Task: ...


def task_rng(seed: int | str, task_id: str) -> random.Random:
    """A ``random.Random`` determined by ``(seed, task_id)`` (stable across processes and Python runs)."""
    return random.Random(f"{seed}\x1f{task_id}")


class Chain:
    """Apply enhancers in order with one rng; ``judge`` is the Weighted sum of the members' judges."""

    def __init__(self, enhancers: Sequence[PromptEnhancer]) -> None:
        self.enhancers = list(enhancers)

    def enhance(self, task: Task, rng: random.Random) -> Task:
        for e in self.enhancers:
            task = e.enhance(task, rng)
        return task

    @property
    def judge(self) -> Any:
        pairs = [(e.judge, float(getattr(e, "weight", 1.0))) for e in self.enhancers if getattr(e, "judge", None)]
        if not pairs:
            return None
        from ..judges.base import Weighted

        return pairs[0][0] if len(pairs) == 1 and pairs[0][1] == 1.0 else Weighted(pairs)


def enhance_task(task: Task, enhancers: Sequence[PromptEnhancer], seed: int | str = 0) -> Task:
    """Apply ``enhancers`` to ``task`` with an rng derived from ``(seed, task.id)``: same seed → same task."""
    return Chain(enhancers).enhance(task, task_rng(seed, task.id))


def prompt_text(task: Task) -> str:
    """The text of the task's (last) user request."""
    if isinstance(task.prompt, str):
        return task.prompt
    for m in reversed(task.prompt):
        if m.role == "user":
            return m.text
    return ""


def _map_last_user(task: Task, f: Any) -> Task:
    if isinstance(task.prompt, str):
        return task.model_copy(update={"prompt": f(task.prompt)})
    msgs = list(task.prompt)
    for i in range(len(msgs) - 1, -1, -1):
        if msgs[i].role == "user":
            msgs[i] = msgs[i].model_copy(update={"content": f(msgs[i].text)})
            return task.model_copy(update={"prompt": msgs})
    msgs.append(Message(role="user", content=f("")))
    return task.model_copy(update={"prompt": msgs})


def append_to_prompt(task: Task, text: str, sep: str = "\n\n") -> Task:
    """``task`` with ``text`` appended to its (last) user request."""
    return _map_last_user(task, lambda s: f"{s}{sep}{text}" if s else text)


def replace_prompt_text(task: Task, f: Any) -> Task:
    """``task`` with its (last) user request replaced by ``f(old_text)``."""
    return _map_last_user(task, f)


def with_metadata(task: Task, **updates: Any) -> Task:
    """``task`` with ``metadata`` updated (a new dict: the original task is untouched)."""
    md = dict(task.metadata)
    md.update(updates)
    return task.model_copy(update={"metadata": md})
