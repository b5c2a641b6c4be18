"""The Ray backend's cost: single-turn episodes/s on the fake server, in-process vs 1 and 2 Ray workers.

One run, one machine, arms side by side (ratios only mean something within a run): a fake
OpenAI-compatible server in its own process, ``swarmgym/Math-v0`` (one model call per episode), the real
``OpenAIPolicy`` over HTTP, ``concurrency`` episodes in flight, a store on the driver.

- ``local_eps`` / ``ray1_eps`` / ``ray2_eps``: episodes per second in-process and with 1 and 2 worker actors
  on a local Ray instance (workers started and warmed up before timing).
- ``ray_overhead_cpu_ms``: CPU per episode the Ray path adds with one worker (driver + worker CPU minus the
  in-process run's CPU). Wall-clock ratios on 2 cores mislead: the Ray arms spread one run's work over
  processes (driver, workers), so they can beat in-process while costing more CPU in total.
- ``driver_cpu_ms``: the driver process's CPU per episode with 2 workers (it admits, stores, groups and
  awaits each result): ``1000 / driver_cpu_ms`` is the episodes/s at which one driver saturates a core,
  whatever the number of nodes.
- ``limiter_cpu_ms``: CPU per episode a cluster-wide ``max_model_calls`` adds with 2 workers (one round trip
  to the limiter actor per model call; the limit is set high enough never to make a call wait, so only the
  mechanism is measured): driver + workers + limiter actor CPU minus the unlimited 2-worker arm's.
- ``lost`` / ``duplicated``: (task, sample) pairs missing from or stored twice in the Ray arms' stores.

Run: ``swarmgym bench ray [-n N] [--concurrency C] [--json FILE] [--quick] [--no-check]``.
The module is ``benchmarks.ray``, always imported through the ``benchmarks`` package (``swarmgym bench``,
``python -m benchmarks.ray``), so it never shadows the ``ray`` package; do not run it as a script path.
"""

from __future__ import annotations

import os
import tempfile
import time
from typing import Any

from benchmarks._report import Bench, Target

__all__ = ["TARGETS", "main"]

TARGETS = [
    Target("lost", "==", 0, what="episodes missing from the Ray arms' stores"),
    Target("duplicated", "==", 0, what="episodes stored twice by the Ray arms"),
    # A driver that saturates at under 500 episodes/s would cap a cluster below what two in-process
    # machines reach on this fake server: the Ray path must stay cheaper than that on the driver.
    Target("driver_cpu_ms", "<=", 2.0, what="driver CPU per episode with 2 Ray workers, ms"),
]


def _count(path: str) -> tuple[int, int, int]:
    from swarmgym.rollout import read_trajectories

    keys = [(t.task_id, t.sample_index) for t in read_trajectories(path) if t.parent_id is None]
    return len(keys), len(set(keys)), len(keys) - len(set(keys))


def _arm(
    url: str, n: int, conc: int, workers: int | None, res: dict[str, Any], name: str, calls: int | None = None
) -> None:
    import anyio

    from swarmgym.envs.registry import make
    from swarmgym.policies.openai_http import OpenAIPolicy
    from swarmgym.rollout import RolloutLimits, RolloutManager, Spec, TrajectoryStore

    limits = RolloutLimits(max_episodes=conc, max_model_calls=calls)
    env = make("swarmgym/Math-v0")
    kw: dict[str, Any] = {}
    if workers is None:
        policy: Any = OpenAIPolicy(url, "fake-model", max_connections=conc)
    else:
        policy = Spec("swarmgym.policies.openai_http:OpenAIPolicy", base_url=url, model="fake-model",
                      max_connections=conc)  # fmt: skip
        kw = {"backend": "ray", "ray_workers": workers}
    with tempfile.TemporaryDirectory() as d:
        warm = RolloutManager(policy, limits, **kw)
        anyio.run(warm.run, env, min(n, 2 * conc))  # starts (and warms) the workers; not timed
        path = os.path.join(d, "run.jsonl")
        store = TrajectoryStore(path)
        mgr = RolloutManager(policy, limits, store=store, **kw)
        if workers is not None:
            mgr._ray = warm._ray  # the same, warm workers
        w0 = anyio.run(warm._ray.infos) if workers is not None else []
        lim = warm._ray.limiter if workers is not None else None
        l0 = anyio.run(_limiter_cpu, lim)
        c0, t0 = time.process_time(), time.perf_counter()
        trajs = anyio.run(mgr.run, env, n)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        if workers is not None:
            w1 = anyio.run(warm._ray.infos)
            res[f"{name}_worker_cpu_ms"] = 1000 * sum(b["cpu_s"] - a["cpu_s"] for a, b in zip(w0, w1)) / n
        if lim is not None:
            res[f"{name}_limiter_cpu_ms"] = 1000 * (anyio.run(_limiter_cpu, lim) - l0) / n
        store.close()
        if workers is not None:
            stored, unique, dup = _count(path)
            res["lost"] = res.get("lost", 0) + (n - unique)
            res["duplicated"] = res.get("duplicated", 0) + dup
            warm._ray.shutdown()
        else:
            anyio.run(policy.aclose)
        ok = sum(t.status == "ok" for t in trajs)
        if ok != n:
            raise RuntimeError(f"{n - ok} of {n} episodes did not end ok")
    res[f"{name}_eps"] = n / wall
    res[f"{name}_driver_cpu_ms"] = 1000 * cpu / n


async def _limiter_cpu(limiter: Any) -> float:
    return 0.0 if limiter is None else float((await limiter.stats.remote())["cpu_s"])


def main(argv: list[str] | None = None) -> int:
    bench = Bench(
        "ray", __doc__, TARGETS,
        describe={
            "local_eps": "in-process episodes/s", "ray1_eps": "1 Ray worker, episodes/s",
            "ray2_eps": "2 Ray workers, episodes/s", "ray_overhead_cpu_ms": "CPU the Ray path adds per episode, ms",
            "ray1_worker_cpu_ms": "1 Ray worker: worker CPU per episode, ms",
            "local_driver_cpu_ms": "in-process CPU per episode, ms",
            "ray2lim_eps": "2 Ray workers, global max_model_calls, episodes/s",
            "limiter_cpu_ms": "CPU a cluster-wide max_model_calls adds per episode (1 call), ms",
        },
    )  # fmt: skip
    bench.parser.add_argument("-n", type=int, default=3000, help="episodes per arm")
    bench.parser.add_argument("--concurrency", type=int, default=64)
    a = bench.parse_args(argv)
    n = 300 if a.quick else a.n

    def measure(res: dict[str, Any]) -> None:
        import ray

        from swarmgym.testing import start_fake_server_process

        ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR")
        try:
            with start_fake_server_process(default_text="\\boxed{0}") as srv:
                with bench.arm("local"):
                    _arm(srv.base_url, n, a.concurrency, None, res, "local")
                for w in (1, 2):
                    with bench.arm(f"ray{w}"):
                        _arm(srv.base_url, n, a.concurrency, w, res, f"ray{w}")
                with bench.arm("ray2lim"):  # a limit that never binds: the limiter's own cost
                    _arm(srv.base_url, n, a.concurrency, 2, res, "ray2lim", calls=4 * a.concurrency)
        finally:
            ray.shutdown()
        if "local_driver_cpu_ms" in res and "ray1_worker_cpu_ms" in res:
            total = res["ray1_driver_cpu_ms"] + res["ray1_worker_cpu_ms"]
            res["ray_overhead_cpu_ms"] = total - res["local_driver_cpu_ms"]
        if "ray2_driver_cpu_ms" in res:
            res["driver_cpu_ms"] = res["ray2_driver_cpu_ms"]
        if "ray2lim_limiter_cpu_ms" in res and "ray2_worker_cpu_ms" in res:
            with_lim = res["ray2lim_driver_cpu_ms"] + res["ray2lim_worker_cpu_ms"] + res["ray2lim_limiter_cpu_ms"]
            res["limiter_cpu_ms"] = with_lim - res["ray2_driver_cpu_ms"] - res["ray2_worker_cpu_ms"]

    return bench.run(measure, title=f"Ray backend vs in-process (N={n}, concurrency {a.concurrency})")


if __name__ == "__main__":
    raise SystemExit(main())
