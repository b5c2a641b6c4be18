"""Built-in math envs on reasoning-gym's offline, seeded generators.

- ``swarmgym/Math-v0``: a problem, the answer in ``\\boxed{}``; scored by reasoning-gym's own
  ``score_answer`` (exact for each generator's format, including generators with several valid answers)
  combined with a math-equivalence check.
- ``swarmgym/ToolMath-v0``: arithmetic with the safe ``calculator`` tool, so every episode makes real tool
  calls (the oracle calls the calculator, then answers with its result).

reasoning_gym takes ~0.7 s to import, so it is loaded when the first task is generated, never at
``import swarmgym``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from ..judges.base import JudgeContext
from ..judges.extract import ANSWER_FORMAT_KEY, answer_format_of, extract_answer, render_answer
from ..toolsets.calculator import CalculatorToolset
from ..wire import JudgeResult, Message, Task, Trajectory
from .core import AgentEnv, EpisodeLimits

__all__ = ["ReasoningGymTasks", "ReasoningGymJudge", "make_math_env", "make_tool_math_env"]

MATH_DATASETS = ("basic_arithmetic", "chain_sum", "gcd", "lcm", "fraction_simplification", "prime_factorization")
TOOL_DATASETS = ("basic_arithmetic", "chain_sum")
# basic_arithmetic's "/" floors in its gold answers (-1439 / -5 -> "287") while the prompt says "Calculate",
# so a correct exact answer would score 0: the built-in envs leave division out.
DEFAULT_CONFIG: dict[str, dict[str, Any]] = {"basic_arithmetic": {"operators": ("+", "-", "*")}}
# generators whose tasks have several valid answers (judged by reasoning-gym's own checker)
MULTI_ANSWER_DATASETS = frozenset({"boxnet", "graph_color", "propositional_logic", "rubiks_cube", "rush_hour"})

# "unless …": an AnswerFormatVariant may ask for JSON or tags in the task prompt, and the judge follows the
# task's recorded format, so the system prompt must not contradict it
MATH_SYSTEM = (
    "Solve the problem. Think step by step, then give only the final answer inside \\boxed{} unless the "
    "problem asks for another answer format."
)
TOOL_SYSTEM = (
    "Solve the problem. Use the calculator tool for every computation, then give only the final answer "
    "inside \\boxed{} unless the problem asks for another answer format."
)


class ReasoningGymTasks:
    """A lazily generated, deterministic task source over one or more reasoning-gym generators.

    Item ``i`` comes from generator ``i % k`` at index ``i // k`` (k generators), so every prefix mixes
    them evenly.

    Args:
        datasets: reasoning-gym generator names.
        size: number of tasks.
        seed: generator seed (same seed → same tasks).
        config: extra generator options per dataset name (e.g. ``{"basic_arithmetic": {"max_terms": 4}}``).
    """

    def __init__(
        self,
        datasets: Sequence[str] = MATH_DATASETS,
        size: int = 1000,
        seed: int = 0,
        config: dict[str, dict[str, Any]] | None = None,
    ) -> None:
        if not datasets:
            raise ValueError("datasets must name at least one reasoning-gym generator")
        self.names = list(datasets)
        self.size = int(size)
        self.seed = int(seed)
        self.config = dict(config or {})
        self._ds: dict[str, Any] = {}

    def dataset(self, name: str) -> Any:
        ds = self._ds.get(name)
        if ds is None:
            import reasoning_gym

            per = -(-self.size // len(self.names))
            try:
                ds = reasoning_gym.create_dataset(name, size=max(per, 1), seed=self.seed, **self.config.get(name, {}))
            except Exception as e:
                from ..errors import ConfigError

                raise ConfigError(f"reasoning-gym could not create dataset {name!r}: {e}") from e
            self._ds[name] = ds
        return ds

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, i: int) -> Task:
        if not -self.size <= i < self.size:
            raise IndexError(f"task index {i} out of range ({self.size} tasks)")
        i %= self.size
        k = len(self.names)
        name = self.names[i % k]
        entry = self.dataset(name)[i // k]
        meta = json.loads(json.dumps(entry.get("metadata", {}), default=str))
        return Task(
            id=f"{name}-{self.seed}-{i // k}",
            prompt=entry["question"],
            answer=str(entry["answer"]),
            # the answer format is recorded so enhancers and judges agree on it (a diversifier may change it)
            metadata={"dataset": name, "index": i // k, "rg": meta, ANSWER_FORMAT_KEY: "boxed"},
        )

    def entry(self, task: Task) -> dict[str, Any]:
        """The reasoning-gym entry a task came from (for ``score_answer``)."""
        return self.dataset(task.metadata["dataset"])[int(task.metadata["index"])]


def _answer(task: Task, text: str) -> tuple[str | None, str]:
    """The answer in the task's recorded format (``\\boxed{}`` unless an answer-format diversifier chose
    tags, JSON or the last line), and that format's kind."""
    fmt = answer_format_of(task.metadata, "boxed")
    return extract_answer(text, fmt), fmt["kind"]


class ReasoningGymJudge:
    """Reward 1 when the answer, in the task's answer format (``\\boxed{}`` by default), is right.

    Tasks with one gold value are judged by math equivalence: reasoning-gym's scorers give partial credit
    by string similarity (``-31239`` for ``-3123`` scores 0.83 in ``basic_arithmetic``) and accept some
    wrong strings outright, and a reward for being *textually close* invites reward hacking. Generators
    with several valid answers use reasoning-gym's checker (full score only, unless ``partial_credit``).
    The scorer's own value is kept as the ``rg_score`` facet.

    Args:
        source: the task source the tasks came from.
        partial_credit: use reasoning-gym's fractional scores as the reward.

    Facets: ``correct`` (the reward), ``format`` (1 if an answer in the task's format was found), ``rg_score``.
    """

    name = "math"

    def __init__(self, source: ReasoningGymTasks, *, partial_credit: bool = False) -> None:
        self.source = source
        self.partial_credit = partial_credit

    async def score(self, task: Task, trajectory: Trajectory, ctx: JudgeContext) -> JudgeResult:
        pred, kind = _answer(task, trajectory.final_text)
        if pred is None:
            return JudgeResult(
                reward=0.0, facets={"correct": 0.0, "format": 0.0, "rg_score": 0.0},
                info={"reason": f"no answer in the task's format ({kind})"},
            )
        try:
            rg = float(self.source.dataset(task.metadata["dataset"]).score_answer(pred, self.source.entry(task)))
        except Exception:  # a scorer that chokes on odd input scores 0, never crashes the episode
            rg = 0.0
        if task.metadata.get("dataset") in MULTI_ANSWER_DATASETS:
            # no single gold answer: only the generator's own checker can tell
            r = rg if self.partial_credit else float(rg >= 1.0)
        else:
            # one gold value: math equivalence decides (reasoning-gym's scorers are lenient in places, e.g.
            # fraction_simplification accepts "$\\dfrac{464}{887}$9" for 464/887)
            r = float(_math_equal(pred, str(task.answer)))
            if self.partial_credit and r < 1.0:
                r = min(rg, 0.99)
        return JudgeResult(reward=r, facets={"correct": r, "format": 1.0, "rg_score": rg}, info={"pred": pred})


def _math_equal(pred: str, gold: str) -> float:
    from ..judges.math_answer import math_equal  # math-verify loads on first use

    return float(math_equal(pred, gold))


def render_in_task_format(task: Task, answer: Any) -> str:
    """``answer`` written in the task's answer format (oracles answer the way the judge reads)."""
    return render_answer(answer, answer_format_of(task.metadata, "boxed"))


def _math_oracle(task: Task, messages: list[Message]) -> str:
    return f"The answer is {render_in_task_format(task, task.answer)}."


def _tool_oracle(task: Task, messages: list[Message]) -> Any:
    last_tool = next((m for m in reversed(messages) if m.role == "tool"), None)
    if last_tool is None:
        expr = task.metadata.get("rg", {}).get("expression") or str(task.answer)
        n_turn = sum(1 for m in messages if m.role == "assistant")
        return {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": f"call_{n_turn}", "name": "calculator", "arguments": {"expression": expr}}],
        }
    return render_in_task_format(task, last_tool.text)


def make_math_env(
    *,
    datasets: Sequence[str] = MATH_DATASETS,
    size: int = 1000,
    seed: int = 0,
    config: dict[str, dict[str, Any]] | None = None,
    system_prompt: str = MATH_SYSTEM,
    limits: EpisodeLimits | None = None,
    **kwargs: Any,
) -> AgentEnv:
    """``swarmgym/Math-v0``: single-turn math with a boxed answer (kwargs go to AgentEnv)."""
    src = ReasoningGymTasks(datasets, size=size, seed=seed, config=DEFAULT_CONFIG if config is None else config)
    return AgentEnv(
        src,
        judge=kwargs.pop("judge", None) or ReasoningGymJudge(src),
        system_prompt=system_prompt,
        limits=limits or EpisodeLimits(max_turns=1),
        oracle=kwargs.pop("oracle", _math_oracle),
        env_id=kwargs.pop("env_id", "swarmgym/Math-v0"),
        **kwargs,
    )


def make_tool_math_env(
    *,
    datasets: Sequence[str] = TOOL_DATASETS,
    size: int = 1000,
    seed: int = 0,
    config: dict[str, dict[str, Any]] | None = None,
    system_prompt: str = TOOL_SYSTEM,
    limits: EpisodeLimits | None = None,
    **kwargs: Any,
) -> AgentEnv:
    """``swarmgym/ToolMath-v0``: arithmetic with the calculator tool (kwargs go to AgentEnv)."""
    src = ReasoningGymTasks(datasets, size=size, seed=seed, config=DEFAULT_CONFIG if config is None else config)
    return AgentEnv(
        src,
        toolsets=kwargs.pop("toolsets", None) or [CalculatorToolset()],
        judge=kwargs.pop("judge", None) or ReasoningGymJudge(src),
        system_prompt=system_prompt,
        limits=limits or EpisodeLimits(max_turns=4),
        oracle=kwargs.pop("oracle", _tool_oracle),
        env_id=kwargs.pop("env_id", "swarmgym/ToolMath-v0"),
        **kwargs,
    )
