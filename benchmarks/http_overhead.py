"""HTTP overhead: swarmgym single-turn rollouts vs a bare aiohttp POST loop, same fake server, same run.

The fake OpenAI-compatible server runs in **another process** (so the client under test has its own core);
both modes send the same chat request body, with the same N and concurrency:

- ``bare_aiohttp_calls_per_s``: ``concurrency`` workers doing ``session.post(url, json=body)`` +
  ``resp.json()`` on one shared ``ClientSession``: what a plain aiohttp client pays per call.
- ``http_single_turn_rollouts_per_s``: ``concurrency`` workers each running
  ``swarmgym.loop.run_episode(env, OpenAIPolicy, task)`` on an ``AgentEnv`` with an exact-match judge
  (reset, one model call, step, judge, trajectory). If the loop is unavailable it measures
  ``OpenAIPolicy.complete`` alone and says so in ``http_mode``.

``ratio_vs_bare`` = rollouts/s ÷ bare calls/s (target ≥ 0.8). ``OpenAIPolicy.complete`` alone is measured
as a third mode (``policy_ratio_vs_bare``), so the cost of the HTTP client and of the episode machinery show
separately: swarmgym's HTTP client does not go through ``ClientSession`` (see ``swarmgym.policies._direct``)
and needs about half the CPU of the bare loop, so ``ratio_vs_bare`` exceeds 1; ``episode_ratio_vs_policy``
(rollouts/s ÷ policy calls/s) and ``episode_overhead_us`` (client CPU per rollout minus per policy call) are
what the episode itself costs on top of its model call. Each mode runs ``repeats`` times, alternating, best
kept (the machine is shared; the best run is the least disturbed one). Client CPU per call is reported too
(``time.process_time`` of this process only).

All modes are client-CPU-bound, and with 256 episodes in flight CPython's cyclic GC is a large share of the
client's time (full collections rescan every module object). ``--freeze-gc`` calls ``gc.freeze()`` after
warm-up, as a long-running rollout process can; it is off by default so the headline figures are plain.

Run: ``python -m benchmarks.http_overhead [-n 5000] [--concurrency 256] [--json FILE]`` or
``swarmgym bench http_overhead``; ``benchmarks/overhead.py`` calls :func:`run_http`.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import time
from collections.abc import Awaitable, Callable
from typing import Any

__all__ = ["run_http", "main"]

PROMPT = "What is 17 + 25? Answer with the number only."


async def _drive(n: int, concurrency: int, one: Callable[[], Awaitable[Any]]) -> tuple[float, float]:
    """Run ``one()`` n times on ``concurrency`` workers; returns (wall seconds, client CPU seconds)."""
    remaining = n

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            await one()

    c0, t0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - t0, time.process_time() - c0


async def _bench(base_url: str, n: int, concurrency: int, repeats: int, warmup: int, freeze_gc: bool) -> dict[str, Any]:
    import aiohttp
    from swarmgym.policies.openai_http import OpenAIPolicy
    from swarmgym.wire import Message, SamplingParams, Task

    sampling = SamplingParams()
    policy = OpenAIPolicy(base_url, "fake-model", max_connections=concurrency)
    body = policy.build_request([Message(role="user", content=PROMPT)], (), sampling)
    url = base_url + "/chat/completions"
    task = Task(id="t0", prompt=PROMPT, answer="42")

    messages = [Message(role="user", content=PROMPT)]

    async def policy_call() -> None:
        await policy.complete(messages, (), sampling)

    try:
        from swarmgym.envs.core import AgentEnv
        from swarmgym.judges.rules import ExactMatch
        from swarmgym.loop import run_episode

        env = AgentEnv([task], judge=ExactMatch(answer_format=None))
        mode = "run_episode"

        async def rollout() -> None:
            traj = await run_episode(env, policy, task, sampling=sampling)
            if traj.status != "ok" or traj.reward != 1.0:
                raise RuntimeError(f"rollout failed: {traj.status} {traj.error} reward={traj.reward}")

    except ImportError:  # the loop is not there yet: measure the policy alone, and say so
        mode = "policy.complete"
        rollout = policy_call

    best_wall: dict[str, float] = {}
    best_cpu: dict[str, float] = {}

    def keep(name: str, r: tuple[float, float]) -> None:
        best_wall[name] = min(r[0], best_wall.get(name, r[0]))
        best_cpu[name] = min(r[1], best_cpu.get(name, r[1]))

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def bare() -> None:
            async with session.post(url, json=body) as resp:
                resp.raise_for_status()
                await resp.json()

        modes = {"bare": bare, "rollout": rollout, "policy": policy_call}
        for one in modes.values():
            await _drive(warmup, concurrency, one)
        if freeze_gc:
            # What a long-running rollout process can do once set up: move everything alive now out of the
            # collector's reach, so full collections only scan per-episode garbage.
            gc.collect()
            gc.freeze()
        try:
            for _ in range(repeats):
                for name, one in modes.items():
                    keep(name, await _drive(n, concurrency, one))
        finally:
            if freeze_gc:
                gc.unfreeze()
    await policy.aclose()
    rate = {k: n / v for k, v in best_wall.items()}
    cpu = {k: round(1000 * v / n, 4) for k, v in best_cpu.items()}
    return {
        "bare_aiohttp_calls_per_s": round(rate["bare"], 1),
        "http_single_turn_rollouts_per_s": round(rate["rollout"], 1),
        "ratio_vs_bare": round(rate["rollout"] / rate["bare"], 3),
        "http_policy_calls_per_s": round(rate["policy"], 1),
        "policy_ratio_vs_bare": round(rate["policy"] / rate["bare"], 3),
        # Both modes are client-CPU-bound, so the CPU ratio is what the throughput ratio converges to on an
        # idle machine; unlike wall time it barely moves when other processes compete for the cores.
        "cpu_ratio_vs_bare": round(cpu["bare"] / cpu["rollout"], 3),
        "policy_cpu_ratio_vs_bare": round(cpu["bare"] / cpu["policy"], 3),
        "episode_ratio_vs_policy": round(rate["rollout"] / rate["policy"], 3),
        "episode_overhead_us": round(1000 * (cpu["rollout"] - cpu["policy"]), 1),
        "bare_client_cpu_ms_per_call": cpu["bare"],
        "http_client_cpu_ms_per_rollout": cpu["rollout"],
        "policy_client_cpu_ms_per_call": cpu["policy"],
        "http_mode": mode,
        "http_n": n,
        "http_concurrency": concurrency,
        "http_repeats": repeats,
        "http_gc_frozen": freeze_gc,
    }


def run_http(
    n: int = 5000, concurrency: int = 256, *, repeats: int = 5, warmup: int = 500, freeze_gc: bool = False
) -> dict[str, Any]:
    """Measure swarmgym's HTTP rollout throughput against a bare aiohttp loop (see the module docstring).

    Starts the fake server in a child process, runs both modes in this process and stops the server.

    Args:
        n: calls per mode and repeat.
        concurrency: concurrent workers (and connection-pool size).
        repeats: alternating runs per mode; the best (least disturbed) run of each is kept.
        warmup: calls per mode before measuring (connections opened, caches warm).
        freeze_gc: ``gc.freeze()`` after warm-up (see the module docstring); default off.

    Returns:
        ``bare_aiohttp_calls_per_s``, ``http_single_turn_rollouts_per_s``, ``ratio_vs_bare``, the policy
        alone (``http_policy_calls_per_s``, ``policy_ratio_vs_bare``), client CPU per call for each mode and
        the CPU-based ratios (``cpu_ratio_vs_bare``, ``policy_cpu_ratio_vs_bare``: robust on a busy machine),
        ``http_mode`` ("run_episode" or "policy.complete"), and the settings used.
    """
    from swarmgym.testing.process import start_fake_server_process

    with start_fake_server_process(default_text="42") as srv:
        return asyncio.run(_bench(srv.base_url, n, concurrency, repeats, warmup, freeze_gc))


def main(argv: list[str] | None = None) -> int:
    """Command line: print a table and optionally write the figures as JSON."""
    p = argparse.ArgumentParser(prog="swarmgym bench http_overhead", description=__doc__.split("\n")[0])
    p.add_argument("-n", type=int, default=5000, help="calls per mode (default 5000)")
    p.add_argument("--concurrency", type=int, default=256)
    p.add_argument("--repeats", type=int, default=5, help="alternating runs per mode, best kept (default 5)")
    p.add_argument("--freeze-gc", action="store_true", help="gc.freeze() after warm-up (long-running runner)")
    p.add_argument("--json", metavar="FILE", help="write the results as JSON here")
    a = p.parse_args(argv)
    res = run_http(a.n, a.concurrency, repeats=a.repeats, freeze_gc=a.freeze_gc)

    from benchmarks._report import report

    report(
        f"HTTP overhead (N={a.n}, concurrency {a.concurrency}, fake server in another process)", res, json_path=a.json
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
