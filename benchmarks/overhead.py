"""Foundation overhead: import time, loop CPU per step, and HTTP rollouts vs a bare aiohttp loop.

All figures come from one run of this script (ratios are only meaningful within one run on a shared
machine):

- ``import_s``: ``import swarmgym`` in a fresh interpreter, best of 5 (target ≤ 0.3 s).
- ``loop_cpu_us_per_step``: process CPU per env step of ``run_episode`` with a scripted policy and the
  calculator tool (one tool call per turn, 8 turns, judge included), no HTTP (target ≤ 20 µs).
- the HTTP figures and targets of :mod:`benchmarks.http_overhead` (N=5000, concurrency 256, fake server in
  another process; the bare arm is aiohttp + orjson): ``ratio_vs_bare`` (target ≥ 0.8) and
  ``episode_ratio_vs_policy`` (target ≥ 0.8).

Run: ``swarmgym bench overhead [--json FILE] [-n N] [--concurrency C] [--quick] [--no-check]``.
"""

from __future__ import annotations

import subprocess
import sys
import time
from typing import Any

from benchmarks import http_overhead
from benchmarks._report import Bench, Target

__all__ = ["TARGETS", "measure_import", "measure_loop", "main"]

TURNS = 8

TARGETS = [
    Target("import_s", "<=", 0.3, what="`import swarmgym` in a fresh interpreter, best of 5, s"),
    Target("loop_cpu_us_per_step", "<=", 20.0, what="loop CPU per step (scripted policy, calculator, judge, no HTTP), µs"),
    *http_overhead.TARGETS,
]


def measure_import(repeats: int = 5) -> float:
    """Best wall time of ``import swarmgym`` in a fresh interpreter."""
    code = "import time; t=time.perf_counter(); import swarmgym; print(time.perf_counter()-t)"
    best = float("inf")
    for _ in range(repeats):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        best = min(best, float(out.stdout.strip()))
    return best


def measure_loop(episodes: int = 3000, repeats: int = 3) -> dict[str, float]:
    """CPU µs per step and per episode of the loop with a scripted policy and the calculator tool."""
    import anyio

    from swarmgym.envs.core import AgentEnv, EpisodeLimits
    from swarmgym.judges.base import FunctionJudge
    from swarmgym.loop import run_episode
    from swarmgym.policies.scripted import ScriptedPolicy, to_completion
    from swarmgym.toolsets.calculator import CalculatorToolset
    from swarmgym.wire import Task

    call = to_completion(
        {"role": "assistant", "tool_calls": [{"id": "c1", "name": "calculator", "arguments": {"expression": "2+3*4"}}]}
    )
    policy = ScriptedPolicy([call] * (TURNS - 1) + [to_completion("\\boxed{14}")])
    env = AgentEnv(
        [Task(id="t", prompt="compute 2+3*4", answer="14")],
        toolsets=[CalculatorToolset()],
        judge=FunctionJudge(lambda task, traj: float(traj.final_text == "\\boxed{14}")),
        limits=EpisodeLimits(max_turns=TURNS),
    )
    task = env.tasks[0]

    async def run(n: int) -> float:
        t0 = time.process_time()
        for _ in range(n):
            traj = await run_episode(env, policy, task)
            if traj.reward != 1.0 or traj.metrics["tool_calls"] != TURNS - 1:  # timing a broken loop is no figure
                raise RuntimeError(f"scripted episode failed: {traj.status} {traj.error} reward={traj.reward}")
        return time.process_time() - t0

    anyio.run(run, 300)
    best = min(anyio.run(run, episodes) for _ in range(repeats))
    return {
        "loop_cpu_us_per_step": round(best / (episodes * TURNS) * 1e6, 2),
        "loop_cpu_us_per_episode": round(best / episodes * 1e6, 2),
    }


def main(argv: list[str] | None = None) -> int:
    bench = Bench("overhead", __doc__, TARGETS, http_overhead.DESCRIBE)
    p = bench.parser
    p.add_argument("-n", type=int, default=5000, help="HTTP calls per mode (default 5000)")
    p.add_argument("--concurrency", type=int, default=256)
    p.add_argument("--repeats", type=int, default=5, help="alternating runs per HTTP mode, best kept (default 5)")
    a = bench.parse_args(argv)
    http_kw = dict(http_overhead.QUICK) if a.quick else {"n": a.n, "concurrency": a.concurrency, "repeats": a.repeats}
    episodes = 500 if a.quick else 3000

    def measure(res: dict[str, Any]) -> None:
        with bench.arm("import"):
            res["import_s"] = round(measure_import(), 4)
        with bench.arm("loop"):
            res.update(measure_loop(episodes))
        res.update(http_overhead.run_http(**http_kw))
        http_overhead.record_arms(bench, res)

    title = f"swarmgym overhead (loop: {episodes} episodes; HTTP: N={http_kw['n']}, concurrency {http_kw['concurrency']})"
    return bench.run(measure, title=title)


if __name__ == "__main__":
    raise SystemExit(main())
