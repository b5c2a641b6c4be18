"""Seeded diversifiers: the same problem asked in different words, formats and contexts.

Each is a :class:`~swarmgym.prompts.base.PromptEnhancer`; the same rng state gives the same prompt.

- :class:`RephraseInstruction` wraps the request in one of several instruction phrasings;
- :class:`SystemPromptVariant` sets one of several system prompts;
- :class:`AnswerFormatVariant` asks for the answer as ``\\boxed{}``, in tags or as JSON, and records the
  choice in ``task.metadata["answer_format"]`` — every outcome judge in :mod:`swarmgym.judges` extracts the
  answer in the recorded format, so the reward is unchanged by the variant;
- :class:`FewShot` prepends k worked examples in a seeded order, their answers written in the task's
  answer format.

Example:
    >>> import random
    >>> from swarmgym.wire import Task
    >>> t = AnswerFormatVariant().enhance(Task(id="1", prompt="2+2?", answer="4"), random.Random(3))
    >>> t.metadata["answer_format"]["kind"] in ("boxed", "tags", "json")
    True
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from ..judges.extract import (
    ANSWER_FORMAT_KEY,
    answer_format_of,
    format_instruction,
    render_answer,
)
from ..wire import Message, Task
from .base import append_to_prompt, replace_prompt_text, with_metadata

__all__ = ["PHRASINGS", "SYSTEM_PROMPTS", "AnswerFormatVariant", "FewShot", "RephraseInstruction", "SystemPromptVariant"]

PHRASINGS: tuple[str, ...] = (
    "{prompt}",
    "Solve the following problem.\n\n{prompt}",
    "Here is a task for you:\n{prompt}",
    "Please answer the question below carefully.\n\n{prompt}",
    "{prompt}\n\nThink it through step by step.",
    "Question: {prompt}",
    "Consider this problem and work out the answer.\n\n{prompt}",
)

SYSTEM_PROMPTS: tuple[str, ...] = (
    "You are a helpful assistant.",
    "You are a careful problem solver. Reason step by step before answering.",
    "You are an expert tutor. Explain your reasoning briefly, then give the answer.",
    "You are a concise assistant. Keep your reasoning short and precise.",
)


class RephraseInstruction:
    """Wraps the user request in a seeded phrasing (templates use ``{prompt}``)."""

    def __init__(self, phrasings: Sequence[str] = PHRASINGS) -> None:
        bad = [p for p in phrasings if "{prompt}" not in p]
        if not phrasings or bad:
            raise ValueError(f"every phrasing must contain '{{prompt}}'; bad: {bad or 'none given'}")
        self.phrasings = tuple(phrasings)

    def enhance(self, task: Task, rng: random.Random) -> Task:
        tpl = rng.choice(self.phrasings)
        return replace_prompt_text(task, lambda s: tpl.replace("{prompt}", s))


class SystemPromptVariant:
    """Sets a seeded system prompt (replacing an existing one); the prompt becomes a message list."""

    def __init__(self, prompts: Sequence[str] = SYSTEM_PROMPTS) -> None:
        if not prompts:
            raise ValueError("give at least one system prompt")
        self.prompts = tuple(prompts)

    def enhance(self, task: Task, rng: random.Random) -> Task:
        sys = Message(role="system", content=rng.choice(self.prompts))
        msgs = [Message(role="user", content=task.prompt)] if isinstance(task.prompt, str) else list(task.prompt)
        msgs = [sys, *[m for m in msgs if m.role != "system"]]
        return task.model_copy(update={"prompt": msgs})


class AnswerFormatVariant:
    """Asks for the final answer in a seeded format and records it in ``task.metadata["answer_format"]``.

    Only formats compatible with the constraints already on the task are drawn (an earlier
    :class:`~swarmgym.prompts.instructions.InstructionEnhancer` may have asked for all capitals, which no
    ``\\boxed{}`` answer meets); applying this variant first and the constraints second works too.

    Args:
        formats: formats to choose from: ``"boxed"``, ``"tags"``, ``"json"``, ``"last_line"`` or dicts
            (``{"kind": "tags", "tag": "final"}``). Default: boxed, ``<answer>`` tags, JSON ``answer``.

    Raises:
        ValueError: (from ``enhance``) no format is compatible with the task's constraints.
    """

    def __init__(self, formats: Sequence[str | dict[str, Any]] = ("boxed", "tags", "json")) -> None:
        self.formats = [answer_format_of(None, f) for f in formats]
        if not self.formats:
            raise ValueError("give at least one answer format")

    def enhance(self, task: Task, rng: random.Random) -> Task:
        from .constraints import compatible_with_answer

        cons = task.metadata.get("constraints") or []
        ok = [f for f in self.formats
              if all(compatible_with_answer(c["kind"], f, task.answer) for c in cons)]
        if not ok:
            raise ValueError(
                f"task {task.id!r}: no answer format in {[f['kind'] for f in self.formats]} is compatible with "
                f"its constraints {[c['kind'] for c in cons]}; apply AnswerFormatVariant before InstructionEnhancer"
            )
        fmt = dict(rng.choice(ok))
        t = append_to_prompt(task, format_instruction(fmt))
        return with_metadata(t, **{ANSWER_FORMAT_KEY: fmt})


class FewShot:
    """Prepends ``k`` worked examples (``(question, answer)`` pairs) as user/assistant turns, in seeded order.

    The example answers are rendered in the task's answer format (apply :class:`AnswerFormatVariant` first),
    so the examples show the model the format the judge will extract.
    """

    def __init__(self, examples: Sequence[tuple[str, Any]], k: int = 2) -> None:
        if k < 0 or k > len(examples):
            raise ValueError(f"k must be between 0 and the number of examples ({len(examples)}), got {k}")
        self.examples = list(examples)
        self.k = k

    def enhance(self, task: Task, rng: random.Random) -> Task:
        if self.k == 0:
            return task
        fmt = answer_format_of(task.metadata, "boxed")
        shots = rng.sample(self.examples, self.k)  # a sample is also a random order
        msgs: list[Message] = []
        if not isinstance(task.prompt, str):
            msgs += [m for m in task.prompt if m.role == "system"]
        for q, a in shots:
            msgs.append(Message(role="user", content=q))
            msgs.append(Message(role="assistant", content=render_answer(a, fmt)))
        if isinstance(task.prompt, str):
            msgs.append(Message(role="user", content=task.prompt))
        else:
            msgs += [m for m in task.prompt if m.role != "system"]
        return task.model_copy(update={"prompt": msgs})
