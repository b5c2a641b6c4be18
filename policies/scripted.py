"""In-process policies: scripted responses, the env's oracle, and replay of stored trajectories.

They cost no HTTP and no model, so they drive smoke tests, demos and overhead benchmarks. Scripts are
per episode: turn *i* of every episode gets ``responses[i]`` (the turn comes from ``PolicyContext``).
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import random
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import anyio

from ..wire import coerce_action
from ..errors import PolicyError
from ..wire import Completion, Message, SamplingParams, ToolSpec, Trajectory
from ._ticks import TickTimers
from .base import PolicyContext

__all__ = ["ScriptedPolicy", "OraclePolicy", "ReplayPolicy", "to_completion"]


def to_completion(response: Any, policy_version: int = 0, latency_s: float = 0.0) -> Completion:
    """A str / OpenAI-style dict / Message / Completion as a Completion (stamped with version and latency)."""
    if isinstance(response, (str, dict, Message)):
        try:
            msg = coerce_action(response).message
        except (TypeError, ValueError) as e:
            raise PolicyError(f"scripted response is not a valid assistant turn: {e}") from e
        return Completion(message=msg, policy_version=policy_version, latency_s=latency_s)
    try:
        c = coerce_action(response)
    except (TypeError, ValueError) as e:
        raise PolicyError(f"scripted response is not a valid assistant turn: {e}") from e
    update: dict[str, Any] = {}
    if policy_version and c.policy_version != policy_version:
        update["policy_version"] = policy_version
    if latency_s:
        update["latency_s"] = latency_s
    return c._replace(**update) if update else c


class _Ticks(TickTimers):
    """Sleeps on one asyncio loop, coalesced to 1 ms ticks (:class:`~swarmgym.policies._ticks.TickTimers`).

    With 100,000 episodes each waiting on simulated model latency, asyncio's timer heap (~17 levels, pushed and
    popped per sleep) cost ~30 µs of CPU per 3-turn episode, half the event loop's own floor. Here a sleep is
    a plain future in its tick's list (measured: 100,000 tasks x 3 sleeps of 1-5 s, 56 µs -> 28 µs of CPU per
    task). Sleeps end up to one tick late, which is noise next to a simulated latency of milliseconds to seconds.
    """

    __slots__ = ()

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(loop, 0.001)

    def sleep(self, delay: float) -> asyncio.Future[None]:
        fut = self.loop.create_future()  # one per sleeper: cancelling one sleeper must not cancel the others
        self.bucket_in(delay).append(fut)
        return fut

    def _new_bucket(self) -> list[asyncio.Future[None]]:
        return []

    def _fire(self, bucket: list[asyncio.Future[None]]) -> None:
        for fut in bucket:
            if not fut.done():  # a cancelled sleeper's future is done already
                fut.set_result(None)


class _Latency:
    """Optional simulated model latency: a fixed number of seconds or a (lo, hi) uniform range."""

    def __init__(self, latency: float | tuple[float, float] | None, seed: int | None) -> None:
        self.latency = latency
        self.rng = random.Random(seed)
        self._ticks: dict[int, _Ticks] = {}  # per thread: each runs at most one event loop at a time

    async def wait(self) -> None:
        lat = self.latency
        if not lat:
            return
        delay = self.rng.uniform(*lat) if isinstance(lat, tuple) else lat
        # The loop this thread ran last is the running one if it still runs: a thread runs one loop at a
        # time. Checked first because asyncio.get_running_loop() makes a getpid() system call on every call
        # (CPython 3.11), which showed up at ~5% of the CPU of 100,000 concurrent episodes.
        ticks = self._ticks.get(threading.get_ident())
        if ticks is None or not ticks.loop.is_running():
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # not on asyncio (trio): anyio finds the backend
                loop = None
            if loop is None:
                await anyio.sleep(delay)
                return
            ticks = self._ticks[threading.get_ident()] = _Ticks(loop)
        await ticks.sleep(delay)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_ticks": {}}  # event-loop objects stay behind


class ScriptedPolicy:
    """Replies from a script.

    Args:
        responses: a list (turn *i* of each episode gets item *i*; items are str, OpenAI-style dicts,
            Messages or Completions) or a callable ``f(messages, tools, ctx)`` (sync or async) returning one.
        cycle: wrap around at the end of a list instead of failing.
        latency: simulated model latency, seconds or a (lo, hi) range.
        seed: seed for the latency draw.
        policy_version: recorded on every completion.

    Example:
        >>> p = ScriptedPolicy(["first", "second"])
    """

    def __init__(
        self,
        responses: Sequence[Any] | Callable[..., Any],
        *,
        cycle: bool = False,
        latency: float | tuple[float, float] | None = None,
        seed: int | None = None,
        policy_version: int = 0,
    ) -> None:
        if callable(responses):
            self._fn: Callable[..., Any] | None = responses
            self._list: list[Any] = []
        else:
            self._fn = None
            self._list = list(responses)
        self.cycle = cycle
        self._latency = _Latency(latency, seed)
        self.policy_version = policy_version
        self._counter = itertools.count()
        self.calls = 0

    async def complete(
        self,
        messages: Sequence[Message],
        tools: Sequence[ToolSpec],
        sampling: SamplingParams,
        *,
        ctx: PolicyContext | None = None,
    ) -> Completion:
        self.calls += 1
        t0 = time.perf_counter()
        await self._latency.wait()
        if self._fn is not None:
            out = self._fn(messages, tools, ctx)
            if inspect.isawaitable(out):
                out = await out
        else:
            i = ctx.turn if ctx is not None else next(self._counter)
            if i >= len(self._list):
                if not self.cycle or not self._list:
                    raise PolicyError(f"scripted policy has {len(self._list)} responses; turn {i} asked for another")
                i %= len(self._list)
            out = self._list[i]
        return to_completion(out, self.policy_version, time.perf_counter() - t0 if self._latency.latency else 0.0)


class OraclePolicy:
    """Plays the env's reference solution (``env.oracle(task, messages)``): demos, smoke tests, benchmarks.

    Args:
        latency: simulated model latency, seconds or a (lo, hi) range.
        seed: seed for the latency draw.
    """

    def __init__(self, *, latency: float | tuple[float, float] | None = None, seed: int | None = None) -> None:
        self._latency = _Latency(latency, seed)

    async def complete(
        self,
        messages: Sequence[Message],
        tools: Sequence[ToolSpec],
        sampling: SamplingParams,
        *,
        ctx: PolicyContext | None = None,
    ) -> Completion:
        if ctx is None or ctx.env is None or ctx.task is None:
            raise PolicyError("OraclePolicy needs the episode context (run it through run_episode or a RolloutManager)")
        oracle = getattr(ctx.env, "oracle", None)
        if oracle is None:
            raise PolicyError(f"env {getattr(ctx.env, 'env_id', '') or type(ctx.env).__name__} has no oracle")
        await self._latency.wait()
        return to_completion(oracle(ctx.task, list(messages)))


class ReplayPolicy:
    """Replays the completions of stored trajectories, turn by turn.

    Args:
        source: one Trajectory (every episode replays it) or a mapping ``task_id -> Trajectory``.
    """

    def __init__(self, source: Trajectory | dict[str, Trajectory]) -> None:
        self.source = source

    async def complete(
        self,
        messages: Sequence[Message],
        tools: Sequence[ToolSpec],
        sampling: SamplingParams,
        *,
        ctx: PolicyContext | None = None,
    ) -> Completion:
        if isinstance(self.source, Trajectory):
            traj = self.source
        else:
            tid = ctx.task.id if ctx is not None and ctx.task is not None else None
            if tid not in self.source:
                raise PolicyError(f"no stored trajectory to replay for task {tid!r}")
            traj = self.source[tid]
        turn = ctx.turn if ctx is not None else 0
        if turn >= len(traj.completions):
            raise PolicyError(f"trajectory {traj.id} has {len(traj.completions)} completions; turn {turn} asked for another")
        return traj.completions[turn]
