"""Subprocess for the orphan test: WideSearch-Swarm episodes into a resumable store (prints DONE at the end)."""

from __future__ import annotations

import sys

import anyio

from swarmgym.envs.widesearch import make_swarm_env
from swarmgym.policies.base import PolicyRouter
from swarmgym.policies.scripted import OraclePolicy
from swarmgym.rollout import RolloutLimits, RolloutManager, TrajectoryStore


def main(path: str, n: int) -> None:
    env = make_swarm_env(size=n, entities_per_agent=4)
    with TrajectoryStore(path, resume=True, batch_size=8) as store:
        print(f"ORPHANS {store.orphans_marked}", flush=True)
        router = PolicyRouter(OraclePolicy(latency=0.01, seed=1))
        mgr = RolloutManager(router, RolloutLimits(max_episodes=64), store=store, flush_interval_s=0.05)
        anyio.run(mgr.run, env)
    print("DONE", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
