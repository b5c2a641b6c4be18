"""Subprocess for the kill -9 test: a 10,000-episode run into a resumable store (prints DONE when finished)."""

from __future__ import annotations

import sys

import anyio

from swarmgym.envs.core import AgentEnv
from swarmgym.policies.scripted import ScriptedPolicy
from swarmgym.rollout import RolloutLimits, RolloutManager, TrajectoryStore
from swarmgym.wire import Task


def main(path: str, n: int, compress: bool) -> None:
    env = AgentEnv([Task(id=f"t{i}", prompt=f"q{i}", answer="42") for i in range(n // 2)])
    with TrajectoryStore(path, resume=True, batch_size=97, compress=compress) as store:
        mgr = RolloutManager(
            ScriptedPolicy(["42"]), RolloutLimits(max_episodes=128), store=store, flush_interval_s=0.05
        )
        anyio.run(_go, mgr, env)
    print("DONE", flush=True)


async def _go(mgr: RolloutManager, env: AgentEnv) -> None:
    async for _ in mgr.stream(env, group_size=2):
        pass


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3] == "gz")
