"""HTTP overhead: swarmgym single-turn rollouts vs a bare aiohttp POST loop, same fake server, same run.

The fake OpenAI-compatible server runs in **another process** (so the client under test has its own core);
both modes send the same chat request body, with the same N and concurrency:

- ``bare_aiohttp_calls_per_s``: ``concurrency`` workers doing ``session.post(url, data=orjson.dumps(body))``
  + ``orjson.loads(await resp.read())`` and reading the answer's text, on one shared ``ClientSession``: the
  best plain client a user would write, with the same JSON library the policy uses (the standard library's
  ``json`` would cost the bare arm ~20 µs per call and flatter the ratio).
- ``http_single_turn_rollouts_per_s``: ``concurrency`` workers each running
  ``swarmgym.loop.run_episode(env, OpenAIPolicy, task)`` on an ``AgentEnv`` with an exact-match judge
  (reset, one model call, step, judge, trajectory). If the loop is unavailable it measures
  ``OpenAIPolicy.complete`` alone and says so in ``http_mode``.

``ratio_vs_bare`` = rollouts/s ÷ bare calls/s (target ≥ 0.8): a whole episode against the plain call a user
would otherwise make. ``OpenAIPolicy.complete`` alone is measured as a third mode (``policy_ratio_vs_bare``),
so the cost of the HTTP client and of the episode machinery show separately: swarmgym's HTTP client does not
go through ``ClientSession.post`` (see ``swarmgym.policies._direct``) and needs less CPU than the bare loop,
so ``ratio_vs_bare`` can exceed 1 while the episode still costs something. ``episode_ratio_vs_policy``
(rollouts/s ÷ policy calls/s, target ≥ 0.8) and ``episode_overhead_us`` (client CPU per rollout minus per
policy call) are what the episode itself costs on top of its model call. Each mode runs ``repeats`` times, alternating, best
kept (the machine is shared; the best run is the least disturbed one). Client CPU per call is reported too
(``time.process_time`` of this process only).

All modes are client-CPU-bound, and with 256 episodes in flight CPython's cyclic GC is a large share of the
client's time (full collections rescan every module object). ``--freeze-gc`` calls ``gc.freeze()`` after
warm-up, as a long-running rollout process can; it is off by default so the headline figures are plain.

A mode that raises is recorded as a failed arm (``arm_errors``) and left out of later repeats; the ratios
that need it are then missing, which the contract (``benchmarks/_report.py``) counts as missed targets.

Run: ``swarmgym bench http_overhead [-n 5000] [--concurrency 256] [--json FILE] [--quick] [--no-check]``;
``benchmarks/overhead.py`` calls :func:`run_http` and checks :data:`TARGETS` too.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Awaitable, Callable
from typing import Any

from benchmarks._report import Bench, Target

__all__ = ["QUICK", "TARGETS", "run_http", "main"]

PROMPT = "What is 17 + 25? Answer with the number only."

TARGETS = [
    Target("ratio_vs_bare", ">=", 0.8, what="single-turn rollouts/s ÷ bare aiohttp+orjson calls/s"),
    Target("episode_ratio_vs_policy", ">=", 0.8, what="single-turn rollouts/s ÷ OpenAIPolicy.complete calls/s"),
]
# README rows besides the targets (benchmarks/_readme.py)
DESCRIBE = {
    "bare_aiohttp_calls_per_s": "bare arm: aiohttp `session.post` + orjson, calls/s",
    "http_policy_calls_per_s": "`OpenAIPolicy.complete` alone, calls/s",
    "http_single_turn_rollouts_per_s": "single-turn rollouts through `run_episode` (reset, call, judge), /s",
    "bare_client_cpu_ms_per_call": "client CPU per bare call, ms",
    "policy_client_cpu_ms_per_call": "client CPU per policy call, ms",
    "http_client_cpu_ms_per_rollout": "client CPU per single-turn rollout, ms",
    "episode_overhead_us": "the episode's own CPU on top of its model call, µs",
}
# --quick: the same modes and checks on fewer calls (enough to fill the pool a few times over)
QUICK = {"n": 600, "concurrency": 64, "repeats": 2, "warmup": 200}


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

    import orjson

    headers = {"Content-Type": "application/json"}
    connector = aiohttp.TCPConnector(limit=concurrency)
    errors: dict[str, str] = {}
    async with aiohttp.ClientSession(connector=connector) as session:

        async def bare() -> None:
            async with session.post(url, data=orjson.dumps(body), headers=headers) as resp:
                resp.raise_for_status()
                text = orjson.loads(await resp.read())["choices"][0]["message"]["content"]
            if text != "42":
                raise RuntimeError(f"bare call: unexpected answer {text!r}")

        modes = {"bare": bare, "rollout": rollout, "policy": policy_call}

        async def attempt(name: str, count: int) -> tuple[float, float] | None:
            try:
                return await _drive(count, concurrency, modes[name])
            except Exception as e:  # a failed arm is reported, and the others still run
                errors[name] = f"{type(e).__name__}: {str(e).strip()[:300]}"
                return None

        for name in modes:
            await attempt(name, warmup)
        if freeze_gc:
            # What a long-running rollout process can do once set up: move everything alive now out of the
            # collector's reach, so full collections only scan per-episode garbage.
            gc.collect()
            gc.freeze()
        try:
            for _ in range(repeats):
                for name in modes:
                    if name not in errors and (r := await attempt(name, n)) is not None:
                        keep(name, r)
        finally:
            if freeze_gc:
                gc.unfreeze()
    await policy.aclose()
    for name in errors:  # a mode that failed in a later repeat keeps no figure from an earlier one
        best_wall.pop(name, None)
        best_cpu.pop(name, None)
    rate = {k: n / v for k, v in best_wall.items()}
    cpu = {k: round(1000 * v / n, 4) for k, v in best_cpu.items()}
    res: dict[str, Any] = {}

    def put(key: str, need: tuple[str, ...], value: Callable[[], float]) -> None:
        if all(m in rate for m in need):  # a figure that needs a failed arm is left out (a missed target)
            res[key] = value()

    put("bare_aiohttp_calls_per_s", ("bare",), lambda: round(rate["bare"], 1))
    put("http_single_turn_rollouts_per_s", ("rollout",), lambda: round(rate["rollout"], 1))
    put("ratio_vs_bare", ("rollout", "bare"), lambda: round(rate["rollout"] / rate["bare"], 3))
    put("http_policy_calls_per_s", ("policy",), lambda: round(rate["policy"], 1))
    put("policy_ratio_vs_bare", ("policy", "bare"), lambda: round(rate["policy"] / rate["bare"], 3))
    # All modes are client-CPU-bound, so the CPU ratio is what the throughput ratio converges to on an idle
    # machine; unlike wall time it barely moves when other processes compete for the cores.
    put("cpu_ratio_vs_bare", ("rollout", "bare"), lambda: round(cpu["bare"] / cpu["rollout"], 3))
    put("policy_cpu_ratio_vs_bare", ("policy", "bare"), lambda: round(cpu["bare"] / cpu["policy"], 3))
    put("episode_ratio_vs_policy", ("rollout", "policy"), lambda: round(rate["rollout"] / rate["policy"], 3))
    put("episode_overhead_us", ("rollout", "policy"), lambda: round(1000 * (cpu["rollout"] - cpu["policy"]), 1))
    put("bare_client_cpu_ms_per_call", ("bare",), lambda: cpu["bare"])
    put("http_client_cpu_ms_per_rollout", ("rollout",), lambda: cpu["rollout"])
    put("policy_client_cpu_ms_per_call", ("policy",), lambda: cpu["policy"])
    return {
        **res,
        "arm_errors": errors,
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
        ``arm_errors`` (mode -> error, empty when every mode ran), ``bare_aiohttp_calls_per_s``, ``http_single_turn_rollouts_per_s``, ``ratio_vs_bare``, the policy
        alone (``http_policy_calls_per_s``, ``policy_ratio_vs_bare``), client CPU per call for each mode and
        the CPU-based ratios (``cpu_ratio_vs_bare``, ``policy_cpu_ratio_vs_bare``: robust on a busy machine),
        ``http_mode`` ("run_episode" or "policy.complete"), and the settings used.
    """
    from swarmgym.testing.process import start_fake_server_process

    with start_fake_server_process(default_text="42") as srv:
        return asyncio.run(_bench(srv.base_url, n, concurrency, repeats, warmup, freeze_gc))


def record_arms(bench: Bench, res: dict[str, Any]) -> None:
    """Turn :func:`run_http`'s ``arm_errors`` into the benchmark's arms (a failed mode is a missed target)."""
    errors = res.pop("arm_errors")
    for name in ("bare", "rollout", "policy"):
        bench.record_arm(f"http {name}", errors.get(name))


def main(argv: list[str] | None = None) -> int:
    """Command line: the contract of ``benchmarks/_report.py`` (table, JSON, exit code)."""
    bench = Bench("http_overhead", __doc__, TARGETS, DESCRIBE)
    p = bench.parser
    p.add_argument("-n", type=int, default=5000, help="calls per mode (default 5000)")
    p.add_argument("--concurrency", type=int, default=256)
    p.add_argument("--repeats", type=int, default=5, help="alternating runs per mode, best kept (default 5)")
    p.add_argument("--freeze-gc", action="store_true", help="gc.freeze() after warm-up (long-running runner)")
    a = bench.parse_args(argv)
    kw = dict(QUICK) if a.quick else {"n": a.n, "concurrency": a.concurrency, "repeats": a.repeats}

    def measure(res: dict[str, Any]) -> None:
        res.update(run_http(**kw, freeze_gc=a.freeze_gc))
        record_arms(bench, res)

    title = f"HTTP overhead (N={kw['n']}, concurrency {kw['concurrency']}, fake server in another process)"
    return bench.run(measure, title=title)


if __name__ == "__main__":
    raise SystemExit(main())
