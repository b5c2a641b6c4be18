"""Time slicing of episode turns (``RolloutLimits.turns_per_tick``): when many model calls return at once, the
CPU-heavy rest of their turns is spread over loop iterations, so timers stay on time."""

from __future__ import annotations

import time

import anyio
import pytest
from pydantic import ValidationError
from rollout_helpers import call, exact_judge, tasks

from swarmgym.envs.core import AgentEnv, EpisodeLimits
from swarmgym.policies.scripted import ScriptedPolicy
from swarmgym.rollout import MemoryStore, RolloutLimits, RolloutManager
from swarmgym.toolsets.base import Toolset, tool

N = 400
SPIN_S = 0.0005  # CPU per tool call: all N turns at once would hold the loop ~N * SPIN_S = 200 ms
CRUNCHES = [0]  # tool calls run so far (the probe reads how many ran between two of its wake-ups)


class Busy(Toolset):
    @tool
    def crunch(self) -> str:
        """Burn a little CPU, like parsing or scoring does."""
        CRUNCHES[0] += 1
        end = time.perf_counter() + SPIN_S
        while time.perf_counter() < end:
            pass
        return "done"


def busy_env() -> AgentEnv:
    return AgentEnv(tasks(N), toolsets=[Busy()], judge=exact_judge(), limits=EpisodeLimits(max_turns=3))


def script() -> ScriptedPolicy:
    # every model call takes the same 0.2 s, so all N episodes' calls return in the same instant
    return ScriptedPolicy([call("crunch", {}), "42"], latency=0.2)


async def run_with_probe(limits: RolloutLimits) -> tuple[list, int, float, RolloutManager]:
    """Run the N episodes while a 5 ms probe timer wakes up again and again; returns (trajectories, most tool
    calls that ran between two wake-ups, worst lateness in s, manager).

    The count is what the cap controls and does not depend on machine load (a descheduled process runs no
    tool calls); the lateness is wall time, reported in messages only.
    """
    mgr = RolloutManager(script(), limits)
    worst = 0.0
    most = 0
    out: list = []

    async def probe() -> None:
        nonlocal worst, most
        while True:
            t0, c0 = time.perf_counter(), CRUNCHES[0]
            await anyio.sleep(0.005)
            worst = max(worst, time.perf_counter() - t0 - 0.005)
            most = max(most, CRUNCHES[0] - c0)

    async with anyio.create_task_group() as tg:
        tg.start_soon(probe)
        out = await mgr.run(busy_env())
        tg.cancel_scope.cancel()
    return out, most, worst, mgr


@pytest.mark.anyio
async def test_turns_returning_together_are_spread_so_timers_stay_on_time() -> None:
    # the same burst with and without the cap, in one test so machine load affects both alike
    out, sliced, sliced_late, mgr = await run_with_probe(RolloutLimits(max_episodes=N, turns_per_tick=4))
    assert len(out) == N and all(t.status == "ok" and t.reward == 1.0 for t in out)
    assert mgr.metrics.hist["turn_wait_s"].n > 0 and mgr.metrics.gauges["peak_turn_queue"] > 100  # queued here

    out, unsliced, unsliced_late, plain = await run_with_probe(RolloutLimits(max_episodes=N, turns_per_tick=None))
    assert len(out) == N and all(t.status == "ok" for t in out)
    assert plain.metrics.hist["turn_wait_s"].n == 0
    # Without the cap the returning turns run back to back in one loop iteration, so the timer waits behind
    # a large share of the N tool calls; with 4 turns per iteration it gets its turn after a few of them.
    # Counts, not milliseconds: a loaded machine stretches both runs' wall time but not these counts.
    why = f"tool calls between two timer wake-ups: {sliced} with the cap, {unsliced} without " + (
        f"(timer late by {sliced_late * 1000:.0f} ms / {unsliced_late * 1000:.0f} ms)"
    )
    assert unsliced >= N // 4, why
    assert sliced * 4 <= unsliced, why


@pytest.mark.anyio
async def test_cancelling_a_run_with_turns_queued_cancels_and_stores_them() -> None:
    store = MemoryStore()
    mgr = RolloutManager(script(), RolloutLimits(max_episodes=N, turns_per_tick=1), store=store)
    async with anyio.create_task_group() as tg:
        tg.start_soon(mgr.run, busy_env())
        with anyio.fail_after(30):  # cancel once every episode started and turns are queued
            while mgr.metrics.counters["episodes_started"] < N or mgr.metrics.gauges.get("peak_turn_queue", 0) < 10:
                await anyio.sleep(0.005)
        tg.cancel_scope.cancel()
    assert mgr.metrics.gauges["in_flight"] == 0
    assert len(store.trajectories) == N  # every episode is stored, finished or not
    assert {t.status for t in store.trajectories} <= {"cancelled", "ok"}
    assert sum(t.status == "cancelled" for t in store.trajectories) > N // 2


def test_turns_per_tick_must_be_positive_or_none() -> None:
    assert RolloutLimits(turns_per_tick=None).turns_per_tick is None
    with pytest.raises(ValidationError):
        RolloutLimits(turns_per_tick=0)


@pytest.mark.anyio
async def test_turns_after_a_retried_model_call_are_sliced_too() -> None:
    from swarmgym.errors import PolicyConnectionError
    from swarmgym.wire import Completion, Message

    seen: set[str] = set()

    class FlakyOnce:
        """Every episode's first call fails with a transient error; the retry answers."""

        async def complete(self, messages, tools, sampling, *, ctx=None):  # type: ignore[no-untyped-def]
            if ctx.episode_id not in seen:
                seen.add(ctx.episode_id)
                raise PolicyConnectionError("connection reset")
            return Completion(message=Message(role="assistant", content="42"))

    env = AgentEnv(tasks(50), judge=exact_judge())
    mgr = RolloutManager(FlakyOnce(), RolloutLimits(max_episodes=50, turns_per_tick=1, retry_backoff_s=0.0))
    out = await mgr.run(env)
    assert len(out) == 50 and all(t.status == "ok" and t.reward == 1.0 for t in out)
    assert mgr.metrics.counters["model_retries"] == 50
    assert mgr.metrics.hist["turn_wait_s"].n > 0  # the retried calls' turns went through the gate
