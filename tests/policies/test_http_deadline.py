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


def policy(srv: Any, **kw: Any) -> OpenAIPolicy:
    return OpenAIPolicy(srv.base_url, "fake-model", **{**FAST, **kw})


def tick(timeout: float) -> float:
    return min(timeout / 8, 0.25)


class DeadlineLog:
    """Checks "never early, at most one tick late" on the event loop's own timer order, not on wall time.

    For every attempt it sets a reference timer at ``entry + timeout + tick`` on the same loop. asyncio runs
    due timers in the order of their due times, however late a loaded machine lets the loop run, so "the
    deadline timer had run when the reference ran" holds exactly when the deadline was due at most one tick
    after the timeout. And the deadline must not run before ``entry + timeout`` on the loop's clock.
    """

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.entries: list[float] = []
        self.late: list[str] = []  # reference timers that ran before their attempt's deadline
        self.early: list[str] = []  # deadlines that ran before entry + timeout
        self.fired: dict[int, float] = {}
        entries_by_bucket: dict[int, list[float]] = {}
        enter, fire = _http._Deadlines.enter, _http._Deadlines._fire
        log = self

        def logged_enter(self: _http._Deadlines, task: Any) -> Any:
            now = self.loop.time()
            bucket = enter(self, task)
            log.entries.append(now)
            entries_by_bucket.setdefault(id(bucket), []).append(now)

            def reference() -> None:
                if not bucket.fired:
                    log.late.append(f"entered at {now:.3f}, not fired by {self.loop.time():.3f}")

            self.loop.call_at(now + self.timeout + self.tick + 1e-6, reference)
            return bucket

        def logged_fire(self: _http._Deadlines, bucket: Any) -> None:
            now = self.loop.time()
            log.fired[id(bucket)] = now
            for entry in entries_by_bucket.get(id(bucket), ()):
                if now < entry + self.timeout:
                    log.early.append(f"entered at {entry:.3f}, fired at {now:.3f}")
            fire(self, bucket)

        monkeypatch.setattr(_http._Deadlines, "enter", logged_enter)
        monkeypatch.setattr(_http._Deadlines, "_fire", logged_fire)

    def check(self, attempts: int) -> None:
        assert len(self.entries) == attempts
        assert not self.early, self.early
        assert not self.late, self.late


async def test_slow_reply_times_out_within_one_tick_and_is_not_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    log = DeadlineLog(monkeypatch)
    async with FakeOpenAIServer([Reply(content="late", delay=5.0)]) as srv, policy(srv, timeout=0.4) as p:
        t0 = time.monotonic()
        with pytest.raises(PolicyTimeoutError, match=r"did not answer /chat/completions within 0.4 s \(raise timeout="):
            await p.complete(MSGS, (), SamplingParams())
        assert time.monotonic() - t0 >= 0.4  # never early (a loaded machine can only make it later)
        log.check(attempts=1)  # due within one tick of the timeout, on the loop's own timer order
        assert len(srv.requests) == 1  # a timeout is final, as with aiohttp's timeout before
        task = asyncio.current_task()
        assert task is not None and task.cancelling() == 0  # our cancel request was undone
        srv.push("in time")
        assert (await p.complete(MSGS, (), SamplingParams())).message.content == "in time"


async def test_concurrent_attempts_share_one_timer_per_tick(monkeypatch: pytest.MonkeyPatch) -> None:
    log = DeadlineLog(monkeypatch)
    async with FakeOpenAIServer([Reply(content="late", delay=5.0)] * 50) as srv, policy(srv, timeout=0.5) as p:
        calls = [asyncio.ensure_future(p.complete(MSGS, (), SamplingParams())) for _ in range(50)]
        while len(srv.requests) < 50:
            await asyncio.sleep(0.01)
        deadlines = p._client._deadlines
        assert deadlines is not None
        # a timer per tick the 50 attempts started in (however many ticks a loaded machine spread them over),
        # not one per attempt
        started_in = {int(t / deadlines.tick) for t in log.entries}
        assert len(log.entries) == 50 and len(deadlines.buckets) <= len(started_in) + 1 < 50
        results = await asyncio.gather(*calls, return_exceptions=True)
    assert all(isinstance(r, PolicyTimeoutError) for r in results), results
    log.check(attempts=50)
    assert len(log.fired) <= len(started_in) + 1  # the timers that ran: one per tick, shared


async def test_fast_replies_never_time_out_while_ticks_fire() -> None:
    # Each worker's earlier attempts sit in buckets whose timers fire while its later attempts run: those
    # timers must cancel nothing. The timeout is far above a reply's time (ms) but above a full garbage
    # collection of a test process that has loaded models too (0.4 s was not, once, in a full CI run).
    timeout = 1.0
    calls = 0
    async with FakeOpenAIServer() as srv, policy(srv, timeout=timeout, max_connections=64) as p:

        async def worker(i: int) -> None:
            nonlocal calls
            end = time.monotonic() + 2.5 * timeout  # attempts of the first 1.5 s have their timers fire inside
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


def test_times_out_from_successive_event_loops(monkeypatch: pytest.MonkeyPatch) -> None:
    log = DeadlineLog(monkeypatch)
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
            assert asyncio.run(once()) >= 0.3  # never early
        asyncio.run(p.aclose())
    log.check(attempts=2)  # each loop's deadline due within one tick of the timeout


async def test_no_timeout_means_no_deadlines() -> None:
    async with FakeOpenAIServer([Reply(content="slowish", delay=0.3)]) as srv, policy(srv, timeout=None) as p:
        assert (await p.complete(MSGS, (), SamplingParams())).message.content == "slowish"
        assert p._client._deadlines is None
