"""An env and a policy for the Ray backend tests, importable by Ray workers as
``swarmgym.tests.rollout.ray_helpers`` (they travel as ``"module:callable"`` strings, never pickled).

The policy's answers depend on the episode's reset seed (``env.np_random``) and, for a parent, on what its
child episode answered, so equal results mean equal seeds, equal tasks and children that really ran.
"""

from __future__ import annotations

import os
import time
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
    answers from its prompt. ``latency`` slows every call (for kill tests); ``log`` names a file each call
    appends ``<start> <end>`` wall-clock times to (to count calls in progress at once, across processes)."""

    def __init__(self, latency: float = 0.0, tag_pid: bool = False, log: str | None = None, deep: int = 1) -> None:
        self.deep = deep  # levels of children below a top-level episode (each asks the next)
        self.latency = latency
        self.tag_pid = tag_pid
        self.log = log

    async def complete(self, messages: Any, tools: Any, sampling: Any, *, ctx: Any = None) -> Completion:
        t0 = time.time()
        c = await self._complete(messages, ctx)
        if self.log is not None:
            with open(self.log, "a") as f:  # one short append per call: lines never interleave
                f.write(f"{t0!r} {time.time()!r}\n")
        return c

    async def _complete(self, messages: Any, ctx: Any) -> Completion:
        if self.latency:
            await anyio.sleep(self.latency)
        tail = f":{os.getpid()}" if self.tag_pid else ""
        if ctx.task.id.count("/ask") >= self.deep:
            return Completion(message=Message(role="assistant", content=f"child of {ctx.task.prompt}{tail}"))
        if ctx.turn == 0:
            call = {"id": "c0", "name": "ask", "arguments": {"question": ctx.task.id}}
            return Completion(
                message=Message.model_validate({"role": "assistant", "content": None, "tool_calls": [call]})
            )
        draw = int(ctx.env.np_random.integers(1_000_000))
        return Completion(message=Message(role="assistant", content=f"{draw}:{messages[-1].text}{tail}"))


def max_overlap(log: str) -> int:
    """The most calls in progress at one moment, from a ``SeededPolicy(log=...)`` file."""
    events = []
    with open(log) as f:
        for line in f:
            a, b = map(float, line.split())
            events += [(a, 1), (b, -1)]
    now = peak = 0
    for _, d in sorted(events, key=lambda e: (e[0], e[1])):  # an end before a start at the same instant
        now += d
        peak = max(peak, now)
    return peak
