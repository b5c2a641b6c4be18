"""An env and a policy for the Ray backend tests, importable by Ray workers as
``swarmgym.tests.rollout.ray_helpers`` (they travel as ``"module:callable"`` strings, never pickled).

The policy's answers depend on the episode's reset seed (``env.np_random``) and, for a parent, on what its
child episode answered, so equal results mean equal seeds, equal tasks and children that really ran.
"""

from __future__ import annotations

import os
from typing import Any

import anyio

from swarmgym.envs.core import AgentEnv, EpisodeLimits
from swarmgym.judges.base import FunctionJudge
from swarmgym.toolsets.base import ToolContext, Toolset, tool
from swarmgym.wire import Completion, Message, Task

ENV_ID = "raytest/Seeded-v0"
ENTRY = "swarmgym.tests.rollout.ray_helpers:make_env"
POLICY = "swarmgym.tests.rollout.ray_helpers:SeededPolicy"


class Ask(Toolset):
    @tool
    async def ask(self, ctx: ToolContext, question: str) -> str:
        """Ask a sub-agent (a child episode of this same env).

        Args:
            question: what to ask.
        """
        child = await ctx.spawn(ENV_ID, Task(id=f"{ctx.task.id}/ask", prompt=question))
        return child.final_text


def make_env(n: int = 8, note: Any = None) -> AgentEnv:
    tasks = [Task(id=f"q{i}", prompt=f"question {i}", answer=str(i % 3)) for i in range(n)]
    judge = FunctionJudge(lambda task, traj: float(traj.final_text.endswith(str(task.answer))), name="tail")
    return AgentEnv(tasks, toolsets=[Ask()], judge=judge, limits=EpisodeLimits(max_turns=3))


class SeededPolicy:
    """Top level: asks a child first, then answers ``<seeded draw>:<child's answer>:<pid?>``; a child
    answers from its prompt. ``latency`` slows every call (for kill tests)."""

    def __init__(self, latency: float = 0.0, tag_pid: bool = False) -> None:
        self.latency = latency
        self.tag_pid = tag_pid

    async def complete(self, messages: Any, tools: Any, sampling: Any, *, ctx: Any = None) -> Completion:
        if self.latency:
            await anyio.sleep(self.latency)
        if ctx.role != "main" or ctx.task.id.endswith("/ask"):
            return Completion(message=Message(role="assistant", content=f"child of {ctx.task.prompt}"))
        if ctx.turn == 0:
            call = {"id": "c0", "name": "ask", "arguments": {"question": ctx.task.id}}
            return Completion(
                message=Message.model_validate({"role": "assistant", "content": None, "tool_calls": [call]})
            )
        draw = int(ctx.env.np_random.integers(1_000_000))
        tail = f":{os.getpid()}" if self.tag_pid else ""
        return Completion(message=Message(role="assistant", content=f"{draw}:{messages[-1].text}{tail}"))
