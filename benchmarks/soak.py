"""Soak: a long run at full concurrency with tools, sandboxes, judges and child episodes; resources must stay flat.

One process runs, for ``--minutes`` M, back-to-back rollouts through one :class:`RolloutManager` of four
built-in envs with their oracle policies (latency 5–50 ms per call, so many episodes are in flight at once):

- ``ToolMath-v0`` (calculator tool calls),
- ``PythonMath-v0`` (a stateful python tool in a bubblewrap sandbox pool),
- ``HumanEval-v0`` (code judged in a sandbox),
- ``WideSearch-Swarm-v0`` (an orchestrator spawning sub-agent child episodes; search over a corpus).

Every ``--sample-s`` seconds it samples the process's RSS, open file descriptors, threads, live sandbox
processes (``bwrap`` children) and swarmgym containers, and the event loop's lag (p99 of a 10 ms ticker
over the window). After a warm-up (the first quarter of the samples), each series gets a least-squares
slope per minute; the targets say the slopes are flat. One hour is the run the issue asks for; quick mode
(CI) runs 40 s with relaxed bounds because a slope over seconds is mostly start-up noise.

Run: ``swarmgym bench soak [--minutes M] [--sample-s S] [--json FILE] [--quick] [--no-check]``.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from typing import Any

from benchmarks._report import Bench, Target

__all__ = ["TARGETS", "main", "slope_per_min"]

# Quick mode (CI) only proves the benchmark runs and every episode finishes cleanly: over 40 s the slopes
# are start-up (pools filling, caches warming), so their quick bounds are loose on purpose.
_QUICK_WHY = "a 40 s run measures start-up, not drift"
TARGETS = [
    Target("rss_mb_per_min", "<=", 2.0, quick=500.0, quick_why=_QUICK_WHY, what="RSS slope (MB/min)"),
    Target("fds_per_min", "<=", 0.5, quick=500.0, quick_why=_QUICK_WHY, what="open file descriptors slope (/min)"),
    Target("threads_per_min", "<=", 0.5, quick=500.0, quick_why=_QUICK_WHY, what="threads slope (/min)"),
    Target("sandbox_procs_per_min", "<=", 0.5, quick=500.0, quick_why=_QUICK_WHY, what="live sandbox processes slope (/min)"),
    Target("containers_per_min", "<=", 0.5, quick=500.0, quick_why=_QUICK_WHY, what="swarmgym containers slope (/min)"),
    Target("lag_p99_ms_per_min", "<=", 1.0, quick=10000.0, quick_why=_QUICK_WHY, what="loop-lag p99 slope (ms/min)"),
    Target("episodes", ">=", 100, quick=20, quick_why="a short run finishes fewer episodes", what="episodes finished"),
    Target("episode_errors", "<=", 0, what="episodes that ended in an error"),
]

ENVS = ("swarmgym/ToolMath-v0", "swarmgym/PythonMath-v0", "swarmgym/HumanEval-v0", "swarmgym/WideSearch-Swarm-v0")


def slope_per_min(ts: list[float], ys: list[float]) -> float:
    """Least-squares slope of ``ys`` over ``ts`` (seconds), per minute; 0 for fewer than 2 points."""
    n = len(ts)
    if n < 2:
        return 0.0
    mt, my = sum(ts) / n, sum(ys) / n
    var = sum((t - mt) ** 2 for t in ts)
    if var == 0:
        return 0.0
    return 60.0 * sum((t - mt) * (y - my) for t, y in zip(ts, ys)) / var


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _sandbox_procs() -> int:
    """Processes on the host whose command is bwrap (local sandboxes; each owns one)."""
    n = 0
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/comm") as f:
                    n += f.read().strip() == "bwrap"
            except OSError:
                pass
    return n


def _containers() -> int:
    try:
        from swarmgym.toolsets.sandbox.docker import list_containers

        return len(list_containers(all_owners=False))
    except Exception:  # no engine here: the series stays 0 and says so in the results
        return -1


async def _soak(seconds: float, sample_s: float, concurrency: int) -> dict[str, Any]:
    import anyio

    from swarmgym import make
    from swarmgym.policies.scripted import OraclePolicy
    from swarmgym.rollout.limits import RolloutLimits
    from swarmgym.rollout.manager import RolloutManager
    from swarmgym.rollout.store import TrajectoryStore

    envs = [make(e) for e in ENVS]
    tmp = tempfile.TemporaryDirectory(prefix="swarmgym-soak-")
    # an on-disk store as in a real long run (a MemoryStore would grow RSS by design, not by a leak)
    manager = RolloutManager(
        OraclePolicy(latency=(0.005, 0.05), seed=0),
        limits=RolloutLimits(max_episodes=concurrency, episode_timeout_s=120),
        store=TrajectoryStore(os.path.join(tmp.name, "soak.jsonl")),
    )
    samples: list[dict[str, float]] = []
    lags: list[float] = []
    counts = {"episodes": 0, "errors": 0, "children": 0}
    errors: list[str] = []
    stop = anyio.Event()
    t0 = time.monotonic()

    async def ticker() -> None:
        while not stop.is_set():
            t = time.monotonic()
            await anyio.sleep(0.01)
            lags.append(max(0.0, time.monotonic() - t - 0.01) * 1000)

    async def sampler() -> None:
        while not stop.is_set():
            await anyio.sleep(sample_s)
            window = sorted(lags)
            lags.clear()
            samples.append(
                {
                    "t": time.monotonic() - t0,
                    "rss_mb": _rss_mb(),
                    "fds": float(len(os.listdir("/proc/self/fd"))),
                    "threads": float(threading.active_count()),
                    "sandbox_procs": float(_sandbox_procs()),
                    "containers": float(await anyio.to_thread.run_sync(_containers)),
                    "lag_p99_ms": window[int(0.99 * (len(window) - 1))] if window else 0.0,
                    "episodes": float(counts["episodes"]),
                }
            )

    async def drive(env: Any, k: int) -> None:
        seed = k * 1_000_000
        batch = max(1, concurrency // len(envs))
        source, start = env.tasks, 0
        while time.monotonic() - t0 < seconds:
            seed += 1
            # fresh (task, sample) pairs every round: the store skips pairs it has finished (resume), so
            # re-running the same tasks would run nothing and this loop would spin
            tasks = [source[(start + i) % len(source)] for i in range(batch)]
            tasks = [t.model_copy(update={"id": f"{t.id}#{seed}"}) for t in tasks]
            start += batch
            ran = 0
            async for traj in manager.stream(env, tasks, seed=seed):
                ran += 1
                counts["episodes"] += 1
                if traj.status == "error":
                    counts["errors"] += 1
                    if len(errors) < 5:
                        errors.append(f"{traj.env_id}: {traj.error}")
            if ran == 0:
                raise RuntimeError(f"a round of {env.env_id} ran no episode (the soak would spin)")

    async def driver() -> None:
        async with anyio.create_task_group() as envs_tg:  # all envs at once: full concurrency
            for k, env in enumerate(envs):
                envs_tg.start_soon(drive, env, k)
        stop.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(ticker)
        tg.start_soon(sampler)
        await driver()
        tg.cancel_scope.cancel()
    for env in envs:
        close = getattr(env, "aclose", None)
        if close is not None:
            await close()
    tmp.cleanup()
    keep = samples[len(samples) // 4 :] if len(samples) >= 4 else samples
    ts = [s["t"] for s in keep]
    out: dict[str, Any] = {
        "minutes": seconds / 60,
        "episodes": counts["episodes"],
        "episode_errors": counts["errors"],
        "error_examples": errors,
        "samples": samples,
    }
    for key, name in (
        ("rss_mb", "rss_mb_per_min"),
        ("fds", "fds_per_min"),
        ("threads", "threads_per_min"),
        ("sandbox_procs", "sandbox_procs_per_min"),
        ("containers", "containers_per_min"),
        ("lag_p99_ms", "lag_p99_ms_per_min"),
    ):
        out[name] = round(slope_per_min(ts, [s[key] for s in keep]), 4)
        out[f"{key}_last"] = keep[-1][key] if keep else None
    return out


def main(argv: list[str] | None = None) -> int:
    bench = Bench("soak", __doc__, TARGETS)
    bench.parser.add_argument("--minutes", type=float, default=60.0)
    bench.parser.add_argument("--sample-s", type=float, default=60.0)
    bench.parser.add_argument("--concurrency", type=int, default=64)
    a = bench.parse_args(argv)
    seconds = 40.0 if a.quick else a.minutes * 60
    sample_s = 4.0 if a.quick else a.sample_s

    def measure(res: dict[str, Any]) -> None:
        import anyio

        with bench.arm("soak"):
            res.update(anyio.run(_soak, seconds, sample_s, a.concurrency))

    return bench.run(measure, title=f"soak ({seconds / 60:g} min, concurrency {a.concurrency})")


if __name__ == "__main__":
    raise SystemExit(main())
