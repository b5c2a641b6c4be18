"""Small real parts for the rollout tests: envs, toolsets that spawn, a counting sandbox source, policies."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import anyio

from swarmgym.envs.core import AgentEnv, EpisodeLimits
from swarmgym.errors import ToolError
from swarmgym.judges.base import FunctionJudge
from swarmgym.toolsets.base import ToolContext, Toolset, tool
from swarmgym.wire import Completion, Message, Task, Usage


def tasks(n: int, prefix: str = "t") -> list[Task]:
    return [Task(id=f"{prefix}{i}", prompt=f"question {i}", answer="42") for i in range(n)]


def exact_judge() -> FunctionJudge:
    return FunctionJudge(lambda task, traj: float(traj.final_text == str(task.answer)), name="exact")


def call(name: str, args: dict[str, Any], i: int = 0) -> dict[str, Any]:
    return {"role": "assistant", "content": None, "tool_calls": [{"id": f"call_{i}", "name": name, "arguments": args}]}


class Echo(Toolset):
    @tool
    def echo(self, text: str) -> str:
        """Echo text back.

        Args:
            text: what to echo.
        """
        return text


class Spawner(Toolset):
    """``fan_out(k)`` spawns k concurrent children of ``child_env``; ``recurse`` spawns one child of the
    same env (depth-limited by the caller's policy)."""

    def __init__(self, child_env: AgentEnv | None = None) -> None:
        super().__init__()
        self.child_env = child_env

    @tool
    async def fan_out(self, ctx: ToolContext, k: int = 8) -> str:
        """Spawn k sub-agents.

        Args:
            k: how many.
        """
        out: list[str] = []

        async def one(i: int) -> None:
            try:
                t = await ctx.spawn(self.child_env or ctx.env, Task(id=f"{ctx.task.id}-c{i}", prompt=f"child {i}"))
            except ToolError as e:
                out.append(f"error: {e}")
            else:
                out.append(t.final_text)

        async with anyio.create_task_group() as tg:
            for i in range(k):
                tg.start_soon(one, i)
        return ",".join(sorted(out))

    @tool
    async def recurse(self, ctx: ToolContext) -> str:
        """Spawn one sub-agent running this same env."""
        t = await ctx.spawn(ctx.env, Task(id=f"{ctx.task.id}/d{ctx.depth + 1}", prompt="go deeper"))
        return f"child {t.status}: {t.final_text}"


class CountingSandboxes:
    """A sandbox source that counts what is held (and checks everything is returned)."""

    def __init__(self) -> None:
        self.active = 0
        self.peak = 0
        self.acquired = 0

    @contextlib.asynccontextmanager
    async def acquire(self) -> AsyncIterator[Any]:
        self.active += 1
        self.acquired += 1
        self.peak = max(self.peak, self.active)
        try:
            yield object()
        finally:
            self.active -= 1


class ConcurrencyProbe:
    """Wraps a policy and records the peak number of concurrent calls (overall and per episode id)."""

    def __init__(self, inner: Any, delay: float = 0.0) -> None:
        self.inner = inner
        self.delay = delay
        self.active = 0
        self.peak = 0
        self.calls = 0
        self.episodes: set[str] = set()
        self.peak_episodes = 0

    async def complete(self, messages: Any, tools: Any, sampling: Any, *, ctx: Any = None) -> Completion:
        self.active += 1
        self.calls += 1
        self.peak = max(self.peak, self.active)
        try:
            if self.delay:
                await anyio.sleep(self.delay)
            return await self.inner.complete(messages, tools, sampling, ctx=ctx)
        finally:
            self.active -= 1


def with_usage(text: str, tokens: int) -> Completion:
    return Completion(message=Message(role="assistant", content=text), usage=Usage(completion_tokens=tokens))


def recursive_env(max_turns: int = 3, sandbox: Any = None) -> AgentEnv:
    return AgentEnv(
        tasks(4),
        toolsets=[Spawner(), Echo()],
        judge=exact_judge(),
        limits=EpisodeLimits(max_turns=max_turns),
        sandbox=sandbox,
    )
