"""How the manager runs top-level episodes: plain asyncio tasks (each in its own anyio cancel scope) on
asyncio, an anyio task group elsewhere; failures and cancellation behave the same on both."""

from __future__ import annotations

import anyio
import pytest
from rollout_helpers import exact_judge, tasks

from swarmgym.envs.core import AgentEnv
from swarmgym.errors import StoreError
from swarmgym.policies.scripted import ScriptedPolicy
from swarmgym.rollout import MemoryStore, RolloutLimits, RolloutManager


class FailingStore(MemoryStore):
    """Fails on the n-th append, like a full disk."""

    def __init__(self, fail_at: int) -> None:
        super().__init__()
        self.fail_at = fail_at

    def append(self, traj):  # type: ignore[no-untyped-def]
        if len(self.trajectories) + 1 >= self.fail_at:
            raise StoreError("disk full")
        super().append(traj)


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_a_run_completes_on_both_backends(backend: str) -> None:
    if backend == "trio":
        pytest.importorskip("trio")
    env = AgentEnv(tasks(50), judge=exact_judge())
    mgr = RolloutManager(ScriptedPolicy(["42"], latency=0.01), RolloutLimits(max_episodes=16))
    out = anyio.run(mgr.run, env, backend=backend)
    assert len(out) == 50 and all(t.status == "ok" and t.reward == 1.0 for t in out)
    assert mgr.metrics.gauges["in_flight"] == 0 and mgr.metrics.counters["episodes_started"] == 50


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_an_error_escaping_an_episode_fails_the_run_and_stops_admission(backend: str) -> None:
    if backend == "trio":
        pytest.importorskip("trio")
    env = AgentEnv(tasks(500), judge=exact_judge())
    store = FailingStore(fail_at=5)
    mgr = RolloutManager(ScriptedPolicy(["42"], latency=0.01), RolloutLimits(max_episodes=8), store=store)
    with pytest.raises(StoreError, match="disk full"):
        anyio.run(mgr.run, env, backend=backend)
    assert mgr.metrics.counters["episodes_started"] < 100  # admission stopped soon after the failure
    assert mgr.metrics.gauges["in_flight"] == 0  # every started episode released its slot


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_cancelling_a_run_runs_shielded_cleanup_to_its_end(backend: str) -> None:
    if backend == "trio":
        pytest.importorskip("trio")
    released: list[str] = []

    class SlowRelease:
        """A sandbox source whose release takes a while (inside the loop's shielded cleanup)."""

        def acquire(self):  # type: ignore[no-untyped-def]
            outer = self

            class CM:
                async def __aenter__(self) -> object:
                    return outer

                async def __aexit__(self, *exc: object) -> None:
                    await anyio.sleep(0.05)
                    released.append("x")

            return CM()

    entered: list[str] = []
    all_in = anyio.Event()

    async def hang(messages, tools, ctx):  # type: ignore[no-untyped-def]
        entered.append(ctx.episode_id)
        if len(entered) == 6:
            all_in.set()
        await anyio.sleep(30)

    env = AgentEnv(tasks(6), judge=exact_judge(), sandbox=SlowRelease())
    store = MemoryStore()
    mgr = RolloutManager(ScriptedPolicy(hang), store=store)

    async def main() -> None:
        # cancel once every episode holds its sandbox and waits on the model (not after a fixed delay: on a
        # loaded machine the episodes may not have started yet)
        async with anyio.create_task_group() as tg:
            tg.start_soon(mgr.run, env)
            with anyio.fail_after(60):
                await all_in.wait()
            tg.cancel_scope.cancel()

    anyio.run(main, backend=backend)
    assert len(released) == 6  # no release was cut short by the cancellation
    assert len(store.trajectories) == 6 and {t.status for t in store.trajectories} == {"cancelled"}
    assert not any(t.trainable for t in store.trajectories)  # a cut-short episode's reward 0 is no verdict
