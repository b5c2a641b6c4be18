"""Instruction-following enhancement: add k verifiable constraints to a task, and judge them.

:class:`InstructionEnhancer` appends the instructions to the user request and records the constraints in
``task.metadata["constraints"]``; its ``judge`` (:class:`InstructionJudge`) checks them on the final answer.
AgentEnv adds an enhancer's ``judge`` to its own judge with weight ``weight``.

Example:
    >>> import random
    >>> from swarmgym.wire import Task
    >>> e = InstructionEnhancer(2)
    >>> t = e.enhance(Task(id="t", prompt="Write about tea."), random.Random(0))
    >>> len(t.metadata["constraints"])
    2
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any, Literal

from ..judges.extract import ANSWER_FORMAT_KEY
from ..wire import JudgeResult, Task, Trajectory
from .base import append_to_prompt, prompt_text, with_metadata
from .constraints import (
    DEFAULT_KINDS,
    KINDS,
    REGISTRY,
    SampleContext,
    check,
    compatible,
    compatible_with_answer,
    sample_constraint,
)

__all__ = ["CONSTRAINTS_KEY", "InstructionEnhancer", "InstructionJudge"]

CONSTRAINTS_KEY = "constraints"


class InstructionJudge:
    """Checks the constraints recorded in ``task.metadata["constraints"]`` against the final answer.

    Args:
        mode: ``"strict"`` or ``"loose"`` (see :mod:`swarmgym.prompts.constraints`).
        reward: ``"fraction"`` (share of constraints met) or ``"all"`` (1 only when every one is met).

    Facets: ``all`` (0/1), ``fraction``, and ``<kind>`` per constraint. A task without constraints scores 1.
    """

    name = "instructions"

    def __init__(self, *, mode: Literal["strict", "loose"] = "strict",
                 reward: Literal["fraction", "all"] = "fraction", name: str | None = None) -> None:
        if mode not in ("strict", "loose"):
            raise ValueError(f"mode must be 'strict' or 'loose', got {mode!r}")
        if reward not in ("fraction", "all"):
            raise ValueError(f"reward must be 'fraction' or 'all', got {reward!r}")
        self.mode = mode
        self.reward = reward
        if name:
            self.name = name

    async def score(self, task: Task, trajectory: Trajectory, ctx: Any) -> JudgeResult:
        cons = task.metadata.get(CONSTRAINTS_KEY) or []
        text = trajectory.final_text
        oks = [check(c, text, strict=self.mode == "strict") for c in cons]
        frac = sum(oks) / len(oks) if oks else 1.0
        all_ok = float(all(oks))
        facets: dict[str, float] = {"all": all_ok, "fraction": frac}
        for c, ok in zip(cons, oks):
            facets[c["kind"]] = min(facets.get(c["kind"], 1.0), float(ok))
        return JudgeResult(reward=frac if self.reward == "fraction" else all_ok, facets=facets,
                           info={"failed": [c["kind"] for c, ok in zip(cons, oks) if not ok]})


class InstructionEnhancer:
    """Adds ``k`` mutually compatible constraints (from ``kinds``, default all) to a task.

    Constraints already in the task's metadata count as chosen (applying twice adds, never contradicts).
    A constraint that contradicts the task's answer format (``task.metadata["answer_format"]``, e.g. "all
    uppercase" with ``\\boxed{}``, "end with phrase X" with a closing JSON object) or the gold answer's own
    text ("no commas" when the answer is "1, 2") is never added; see
    :func:`~swarmgym.prompts.constraints.compatible_with_answer`. If fewer than ``k`` compatible kinds remain,
    fewer are added.

    Args:
        k: how many constraints to add.
        kinds: allowed kinds (default: every registered kind except those needing an optional package,
            ``constraints.OPTIONAL_KINDS``: ``language:response_language`` needs langdetect).
        mode / reward: passed to the :class:`InstructionJudge` exposed as ``judge``.
        weight: weight of that judge when AgentEnv adds it to the env's judge.
    """

    def __init__(self, k: int = 1, *, kinds: Sequence[str] | None = None, mode: Literal["strict", "loose"] = "strict",
                 reward: Literal["fraction", "all"] = "fraction", weight: float = 1.0) -> None:
        if k < 0:
            raise ValueError(f"k must be >= 0, got {k}")
        unknown = [x for x in (kinds or ()) if x not in REGISTRY]
        if unknown:
            raise ValueError(f"unknown constraint kinds {unknown}; known kinds: {', '.join(KINDS)}")
        self.k = k
        self.kinds = tuple(kinds) if kinds else DEFAULT_KINDS
        self.weight = weight
        self.judge = InstructionJudge(mode=mode, reward=reward)

    def sample(self, task: Task, rng: random.Random) -> list[dict[str, Any]]:
        """The constraints this enhancer would add to ``task`` (without changing it)."""
        existing = list(task.metadata.get(CONSTRAINTS_KEY) or [])
        request = task.metadata.get("request", prompt_text(task))
        ctx = SampleContext(prompt=request)
        for c in existing:
            ctx.kinds.add(c["kind"])
            p = c.get("params", {})
            ctx.used_words.update(p.get("keywords", []) + p.get("words", []) + ([p["word"]] if "word" in p else []))
        fmt = task.metadata.get(ANSWER_FORMAT_KEY)
        order = list(self.kinds)
        rng.shuffle(order)
        chosen: list[dict[str, Any]] = []
        for kind in order:
            if len(chosen) >= self.k:
                break
            if (all(compatible(kind, other) for other in ctx.kinds) and REGISTRY[kind].applicable(ctx)
                    and compatible_with_answer(kind, fmt, task.answer)):
                chosen.append(sample_constraint(kind, rng, ctx))
        return chosen

    def enhance(self, task: Task, rng: random.Random) -> Task:
        new = self.sample(task, rng)
        if not new:
            return task
        request = task.metadata.get("request", prompt_text(task))
        t = append_to_prompt(task, " ".join(c["text"] for c in new))
        return with_metadata(t, **{CONSTRAINTS_KEY: [*(task.metadata.get(CONSTRAINTS_KEY) or []), *new],
                                    "request": request})
