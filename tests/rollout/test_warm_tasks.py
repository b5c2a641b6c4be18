"""A lazy task source is built off the event loop: the loop that every episode shares never runs it."""

from __future__ import annotations

import threading

import anyio

from swarmgym import AgentEnv, Task
from swarmgym.judges import ExactMatch
from swarmgym.policies.scripted import ScriptedPolicy
from swarmgym.rollout import RolloutLimits, RolloutManager


class LazyTasks:
    """Builds itself on first access (like reasoning-gym's generators) and records the thread that did."""

    def __init__(self) -> None:
        self.built_in: int | None = None
        self._tasks: list[Task] | None = None

    def _build(self) -> list[Task]:
        if self._tasks is None:
            self.built_in = threading.get_ident()
            self._tasks = [Task(id=f"t{i}", prompt="say 7", answer="7") for i in range(5)]
        return self._tasks

    def __len__(self) -> int:
        return 5

    def __getitem__(self, i: int) -> Task:
        return self._build()[i]


def test_lazy_task_source_is_built_in_a_worker_thread() -> None:
    src = LazyTasks()
    env = AgentEnv(src, judge=ExactMatch(), env_id="test/Lazy-v0")
    mgr = RolloutManager(ScriptedPolicy(["\\boxed{7}"]), RolloutLimits(max_episodes=4))

    async def go() -> tuple[int, list]:
        return threading.get_ident(), await mgr.run(env, 5)

    loop_thread, trajs = anyio.run(go)
    assert [t.reward for t in trajs] == [1.0] * 5
    assert src.built_in is not None and src.built_in != loop_thread
