"""Simulated model latency of the in-process policies (coalesced 1 ms ticks) and cheap random ids."""

from __future__ import annotations

import asyncio
import os
import pickle
import time

import anyio
import pytest
from swarmgym.policies import scripted
from swarmgym.policies.scripted import ScriptedPolicy
from swarmgym.wire import SamplingParams, new_id

SAMPLING = SamplingParams()


class SleepLog:
    """Checks "at least the delay, at most one tick more" on the event loop's own timer order, not wall time.

    For every simulated-latency sleep it sets a reference timer at ``start + delay + tick`` on the same loop;
    asyncio runs due timers in due-time order however late a loaded machine lets the loop run, so the sleep's
    future must be done when the reference runs. A done-callback checks it did not end before ``start +
    delay`` on the loop's clock.
    """

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.delays: list[float] = []
        self.late: list[str] = []
        self.early: list[str] = []
        sleep = scripted._Ticks.sleep
        log = self

        def logged_sleep(self: scripted._Ticks, delay: float) -> asyncio.Future[None]:
            start = self.loop.time()
            fut = sleep(self, delay)
            log.delays.append(delay)

            def reference() -> None:
                if not fut.done():
                    log.late.append(f"{delay:.3f} s sleep from {start:.3f} not over at {self.loop.time():.3f}")

            def ended(f: asyncio.Future[None]) -> None:
                if not f.cancelled() and self.loop.time() < start + delay:
                    log.early.append(f"{delay:.3f} s sleep from {start:.3f} over at {self.loop.time():.3f}")

            self.loop.call_at(start + delay + self.tick + 1e-6, reference)
            fut.add_done_callback(ended)
            return fut

        monkeypatch.setattr(scripted._Ticks, "sleep", logged_sleep)

    def check(self, sleeps: int) -> None:
        assert len(self.delays) == sleeps
        assert not self.early, self.early[:3]
        assert not self.late, self.late[:3]


async def _timed_call(p: ScriptedPolicy) -> float:
    t0 = time.perf_counter()
    await p.complete([], [], SAMPLING)
    return time.perf_counter() - t0


def test_latency_waits_at_least_the_delay_and_at_most_about_a_tick_more(monkeypatch: pytest.MonkeyPatch) -> None:
    log = SleepLog(monkeypatch)
    p = ScriptedPolicy(["ok"], cycle=True, latency=0.05)

    async def main() -> list[float]:
        return list(await asyncio.gather(*(_timed_call(p) for _ in range(200))))

    took = asyncio.run(main())
    assert min(took) >= 0.05  # wall time can only come out later on a busy machine
    log.check(sleeps=200)  # each of the 200 sleeps due within one 1 ms tick after its delay


def test_uniform_latency_spreads_and_completions_record_it(monkeypatch: pytest.MonkeyPatch) -> None:
    log = SleepLog(monkeypatch)
    p = ScriptedPolicy(["ok"], cycle=True, latency=(0.01, 0.06), seed=1)

    async def main() -> list[float]:
        comps = await asyncio.gather(*(p.complete([], [], SAMPLING) for _ in range(100)))
        return [c.latency_s for c in comps]

    lat = asyncio.run(main())
    log.check(sleeps=100)
    assert all(0.01 <= d < 0.06 for d in log.delays)
    assert max(log.delays) - min(log.delays) > 0.02  # really drawn from the range, not one shared delay
    assert all(x >= 0.01 for x in lat)  # each completion records the latency it waited


def test_cancelling_one_sleeper_leaves_the_others_in_its_tick_waiting() -> None:
    p = ScriptedPolicy(["ok"], cycle=True, latency=0.05)

    async def main() -> tuple[bool, int]:
        tasks = [asyncio.create_task(p.complete([], [], SAMPLING)) for _ in range(10)]
        await asyncio.sleep(0.01)
        tasks[0].cancel()
        done = await asyncio.gather(*tasks, return_exceptions=True)
        return isinstance(done[0], asyncio.CancelledError), sum(1 for d in done[1:] if d.message.text == "ok")

    cancelled, ok = asyncio.run(main())
    assert cancelled and ok == 9


def test_latency_under_an_anyio_deadline_is_cancelled() -> None:
    p = ScriptedPolicy(["ok"], latency=5.0)

    async def main() -> tuple[bool, float]:
        t0 = time.perf_counter()
        with anyio.move_on_after(0.05) as scope:
            await p.complete([], [], SAMPLING)
        return scope.cancelled_caught, time.perf_counter() - t0

    cancelled, took = anyio.run(main)
    assert cancelled and took < 5.0  # cut short, not the 5 s it would have waited


def test_the_same_policy_works_on_successive_event_loops_and_pickles() -> None:
    p = ScriptedPolicy(["ok"], cycle=True, latency=0.02)
    for _ in range(2):  # the tick table belongs to a loop; a second asyncio.run gets a fresh one
        assert asyncio.run(_timed_call(p)) >= 0.02
    clone = pickle.loads(pickle.dumps(p))
    assert asyncio.run(_timed_call(clone)) >= 0.02


def test_latency_on_trio_uses_anyio_sleep() -> None:
    pytest.importorskip("trio")
    p = ScriptedPolicy(["ok"], latency=0.02)
    t0 = time.perf_counter()
    c = anyio.run(p.complete, [], [], SAMPLING, backend="trio")
    assert c.message.text == "ok" and time.perf_counter() - t0 >= 0.02


def test_new_id_is_random_hex_and_differs_in_a_forked_child() -> None:
    ids = {new_id("t_") for _ in range(10_000)}
    assert len(ids) == 10_000 and all(len(i) == 18 and int(i[2:], 16) >= 0 for i in ids)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.write(w, new_id().encode())
        os._exit(0)
    os.waitpid(pid, 0)
    child = os.read(r, 64).decode()
    os.close(r)
    os.close(w)
    assert child != new_id() and len(child) == 16
