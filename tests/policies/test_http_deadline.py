"""HTTPClient's coalesced per-attempt deadlines, against the fake server over real HTTP on 127.0.0.1.

The timeout is not aiohttp's per-request timer but one timer per tick that cancels the attempts still running
(policies/_http.py, ``_Deadlines``). These tests pin what that must keep: the error and its timing, no false
timeouts, no retry of a timed-out attempt, and that any other cancellation (anyio scopes, asyncio.timeout,
task.cancel) still wins when it lands together with our deadline.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import anyio
import pytest
from swarmgym.errors import PolicyTimeoutError
from swarmgym.policies import _http
from swarmgym.policies.openai_http import OpenAIPolicy
from swarmgym.testing import FakeOpenAIServer, Reply, start_fake_server_process
from swarmgym.wire import Message, SamplingParams

pytestmark = pytest.mark.anyio

MSGS = [Message(role="user", content="what is 1+2?")]
FAST = {"backoff_base": 0.001, "backoff_max": 0.01}
SLACK = 0.3  # scheduling noise on a loaded machine


def policy(srv: Any, **kw: Any) -> OpenAIPolicy:
    return OpenAIPolicy(srv.base_url, "fake-model", **{**FAST, **kw})


def tick(timeout: float) -> float:
    return min(timeout / 8, 0.25)


async def test_slow_reply_times_out_within_one_tick_and_is_not_retried() -> None:
    async with FakeOpenAIServer([Reply(content="late", delay=5.0)]) as srv, policy(srv, timeout=0.4) as p:
        t0 = time.monotonic()
        with pytest.raises(PolicyTimeoutError, match=r"did not answer /chat/completions within 0.4 s \(raise timeout="):
            await p.complete(MSGS, (), SamplingParams())
        elapsed = time.monotonic() - t0
        assert 0.4 <= elapsed < 0.4 + tick(0.4) + SLACK
        assert len(srv.requests) == 1  # a timeout is final, as with aiohttp's timeout before
        task = asyncio.current_task()
        assert task is not None and task.cancelling() == 0  # our cancel request was undone
        srv.push("in time")
        assert (await p.complete(MSGS, (), SamplingParams())).message.content == "in time"


async def test_concurrent_attempts_share_one_timer_per_tick() -> None:
    async with FakeOpenAIServer([Reply(content="late", delay=5.0)] * 50) as srv, policy(srv, timeout=0.5) as p:
        calls = [asyncio.ensure_future(p.complete(MSGS, (), SamplingParams())) for _ in range(50)]
        while len(srv.requests) < 50:
            await asyncio.sleep(0.01)
        deadlines = p._client._deadlines
        assert deadlines is not None
        assert 1 <= len(deadlines.buckets) <= 3  # 50 attempts in flight, a timer per tick they started in
        results = await asyncio.gather(*calls, return_exceptions=True)
    assert all(isinstance(r, PolicyTimeoutError) for r in results), results


async def test_fast_replies_never_time_out_while_ticks_fire() -> None:
    # Each worker's earlier attempts sit in buckets whose timers fire while its later attempts run: those
    # timers must cancel nothing.
    timeout = 0.4
    calls = 0
    async with FakeOpenAIServer() as srv, policy(srv, timeout=timeout, max_connections=64) as p:

        async def worker(i: int) -> None:
            nonlocal calls
            end = time.monotonic() + 4 * timeout
            task = asyncio.current_task()
            assert task is not None
            while time.monotonic() < end:
                c = await p.complete([Message(role="user", content=f"w{i}")], (), SamplingParams())
                assert c.message.content == f"w{i}" and task.cancelling() == 0
                calls += 1

        await asyncio.gather(*(worker(i) for i in range(32)))
        deadlines = p._client._deadlines
        assert deadlines is not None and len(deadlines.buckets) <= timeout / deadlines.tick + 2
    assert calls > 64


async def test_backoff_between_attempts_is_not_under_the_deadline() -> None:
    # The timeout bounds one attempt; retries after a 503 sleep outside it (as with aiohttp's timeout).
    async with FakeOpenAIServer(["finally"]) as srv, policy(srv, timeout=0.2, backoff_base=0.15) as p:
        p._client._rng.uniform = lambda a, b: b  # type: ignore[method-assign]  # full backoff: 0.15 + 0.3
        srv.fail_next(2, 503)
        c = await p.complete(MSGS, (), SamplingParams())
        assert c.message.content == "finally" and len(srv.requests) == 3


async def test_outer_move_on_after_wins_over_an_expiring_deadline() -> None:
    async with FakeOpenAIServer([Reply(content="late", delay=5.0)]) as srv, policy(srv, timeout=0.3) as p:
        with anyio.move_on_after(0.3) as scope:  # expires just before (or with) our rounded-up deadline
            await p.complete(MSGS, (), SamplingParams())
        assert scope.cancelled_caught
        task = asyncio.current_task()
        assert task is not None and task.cancelling() == 0


def fire_with(monkeypatch: pytest.MonkeyPatch, other: Callable[[], Any], *, ours_first: bool) -> None:
    """Make the deadline timer run ``other()`` (another cancellation) in the same loop iteration."""
    fire = _http._Deadlines._fire

    def both(self: _http._Deadlines, bucket: Any) -> None:
        if not ours_first:
            other()
        fire(self, bucket)
        if ours_first:
            other()

    monkeypatch.setattr(_http._Deadlines, "_fire", both)


@pytest.mark.parametrize("ours_first", [True, False])
async def test_anyio_cancel_landing_with_the_deadline_cancels(
    monkeypatch: pytest.MonkeyPatch, ours_first: bool
) -> None:
    async with FakeOpenAIServer([Reply(content="late", delay=5.0)]) as srv, policy(srv, timeout=0.2) as p:
        with anyio.CancelScope() as scope:
            fire_with(monkeypatch, scope.cancel, ours_first=ours_first)
            await p.complete(MSGS, (), SamplingParams())
            pytest.fail("the episode was not cancelled")
        assert scope.cancelled_caught
        task = asyncio.current_task()
        assert task is not None and task.cancelling() == 0


@pytest.mark.parametrize("ours_first", [True, False])
async def test_task_cancel_landing_with_the_deadline_cancels(monkeypatch: pytest.MonkeyPatch, ours_first: bool) -> None:
    async with FakeOpenAIServer([Reply(content="late", delay=5.0)]) as srv, policy(srv, timeout=0.2) as p:
        call = asyncio.ensure_future(p.complete(MSGS, (), SamplingParams()))
        fire_with(monkeypatch, call.cancel, ours_first=ours_first)
        with pytest.raises(asyncio.CancelledError):
            await call


async def test_outer_asyncio_timeout_landing_with_the_deadline_is_its_own() -> None:
    async with FakeOpenAIServer([Reply(content="late", delay=5.0)]) as srv, policy(srv, timeout=0.2) as p:
        with pytest.raises(TimeoutError) as ei:
            async with asyncio.timeout(0.2):
                await p.complete(MSGS, (), SamplingParams())
        assert type(ei.value) is TimeoutError  # the outer timeout's, not our PolicyTimeoutError


def test_times_out_from_successive_event_loops() -> None:
    with start_fake_server_process(latency=5.0) as srv:
        p = policy(srv, timeout=0.3)
        loops = []

        async def once() -> float:
            loops.append(asyncio.get_running_loop())
            t0 = time.monotonic()
            with pytest.raises(PolicyTimeoutError, match="within 0.3 s"):
                await p.complete(MSGS, (), SamplingParams())
            deadlines = p._client._deadlines
            assert deadlines is not None and deadlines.loop is loops[-1]  # buckets belong to this loop
            return time.monotonic() - t0

        for _ in range(2):  # the first loop closes with the session and its pending timers
            assert 0.3 <= asyncio.run(once()) < 0.3 + tick(0.3) + SLACK
        asyncio.run(p.aclose())


async def test_no_timeout_means_no_deadlines() -> None:
    async with FakeOpenAIServer([Reply(content="slowish", delay=0.3)]) as srv, policy(srv, timeout=None) as p:
        assert (await p.complete(MSGS, (), SamplingParams())).message.content == "slowish"
        assert p._client._deadlines is None
