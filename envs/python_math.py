"""``swarmgym/PythonMath-v0``: reasoning-gym math problems with a sandboxed, stateful ``python`` tool.

The model may compute with Python (variables persist between calls) and answers in ``\\boxed{}``; the
judge is the Math-v0 judge (reasoning-gym's ``score_answer`` plus math equivalence). Code runs in a
:class:`~swarmgym.toolsets.sandbox.SandboxPool` (local bubblewrap by default), never in the host process.
The oracle computes the answer with the tool, then boxes what the tool printed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..toolsets.python import PythonToolset
from ..wire import Message, Task
from .core import AgentEnv, EpisodeLimits
from .math import MATH_DATASETS, ReasoningGymJudge, ReasoningGymTasks, render_in_task_format

__all__ = ["make_env", "python_math_oracle", "SYSTEM_PROMPT"]

SYSTEM_PROMPT = (
    "Solve the problem. You have a python tool: a persistent Python session (variables stay defined between "
    "calls) in which you can compute and check your work. When you are sure, give only the final answer "
    "inside \\boxed{} unless the problem asks for another answer format."
)


def python_math_oracle(task: Task, messages: list[Message]) -> Any:
    """Turn 1: compute the answer with the python tool; turn 2: box what the tool printed."""
    last_tool = next((m for m in reversed(messages) if m.role == "tool"), None)
    if last_tool is None:
        n = sum(1 for m in messages if m.role == "assistant")
        code = f"answer = {str(task.answer)!r}\nprint(answer)"
        return {
            "role": "assistant",
            "content": "Let me compute it.",
            "tool_calls": [{"id": f"call_{n}", "name": "python", "arguments": {"code": code}}],
        }
    return f"The answer is {render_in_task_format(task, last_tool.text.strip())}."


def make_env(
    *,
    datasets: Sequence[str] = MATH_DATASETS,
    size: int = 1000,
    seed: int = 0,
    backend: str = "local",
    pool_size: int = 8,
    python_timeout_s: float = 30.0,
    system_prompt: str = SYSTEM_PROMPT,
    limits: EpisodeLimits | None = None,
    **kwargs: Any,
) -> AgentEnv:
    """Build ``swarmgym/PythonMath-v0`` (extra kwargs go to :class:`AgentEnv`).

    Args:
        datasets: reasoning-gym generators to draw problems from.
        size: number of tasks; seed: generator seed.
        backend: sandbox backend of the default pool (``"local"``, ``"docker"``).
        pool_size: sandboxes kept warm (one per concurrent episode).
        python_timeout_s: per-call timeout of the python tool.
        sandbox: pass your own pool (``SandboxPool(...)``) to share it between envs.
    """
    from ..toolsets.sandbox import SandboxPool

    src = ReasoningGymTasks(datasets, size=size, seed=seed)
    sandbox = kwargs.pop("sandbox", None) or SandboxPool(backend, size=pool_size, prewarm=min(2, pool_size))
    return AgentEnv(
        src,
        toolsets=kwargs.pop("toolsets", None) or [PythonToolset(timeout=python_timeout_s)],
        judge=kwargs.pop("judge", None) or ReasoningGymJudge(src),
        system_prompt=system_prompt,
        limits=limits or EpisodeLimits(max_turns=6, tool_timeout_s=python_timeout_s + 15),
        sandbox=sandbox,
        oracle=kwargs.pop("oracle", python_math_oracle),
        env_id=kwargs.pop("env_id", "swarmgym/PythonMath-v0"),
        **kwargs,
    )
