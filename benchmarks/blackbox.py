"""Black-box episodes: the shipped curl agent run as ``BlackBoxEnv`` episodes vs the same program run bare.

Both arms run the same program (``envs/agents/curl_agent.sh``: sh + curl + jq, one chat call) ``-n`` times
on ``--concurrency`` workers against the same fake OpenAI-compatible server, a child process.

- ``direct``: the best plain harness: ``asyncio.create_subprocess_exec`` with the task on stdin and the
  server's URL in the environment, ``communicate()``, nothing recorded. It starts each program in a new
  session, as the env does: measured here, programs left in the harness's own session ran 4.5× slower
  at concurrency 16 (6.5 vs 29.9 runs/s).
- ``env``: ``RolloutManager`` running ``BlackBoxEnv`` episodes. Each one has its own gateway key, a fresh
  work folder and a killed process group at the end; every call is recorded and rebuilt into a trajectory
  and judged (``ExactMatch`` on the program's output).

The arms alternate ``--repeats`` times and the best run of each is kept. ``ratio_vs_direct`` is env
episodes/s ÷ direct programs/s (target ≥ 0.8: what the env adds per episode should stay well below what one
program costs). ``cross_talk`` counts env episodes whose recorded calls carry another episode's marker
(target 0), and ``env_failed`` counts episodes that were not ``ok`` with reward 1 (target 0).

Run: ``swarmgym bench blackbox [-n 300] [--concurrency 32] [--repeats 2] [--json FILE] [--quick] [--no-check]``.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import statistics
import time
from typing import Any

from benchmarks._report import Bench, Target

__all__ = ["TARGETS", "main"]

TARGETS = [
    Target("ratio_vs_direct", ">=", 0.8, what="BlackBoxEnv episodes/s ÷ the same program run bare, per second"),
    Target("cross_talk", "==", 0, what="env episodes whose recorded calls carry another episode's marker"),
    Target("env_failed", "==", 0, what="env episodes not ok with reward 1"),
]
DESCRIBE = {
    "direct_per_s": "bare program runs per second",
    "env_per_s": "BlackBoxEnv episodes per second",
    "direct_wall_p50_ms": "one bare program run, p50, ms",
    "env_wall_p50_ms": "one BlackBoxEnv episode, p50, ms",
}


def _tasks(n: int, run: int) -> list[Any]:
    from swarmgym.wire import Task

    return [Task(id=f"r{run}-t{i}", prompt=f"\\boxed{{m{run}x{i}}}", answer=f"m{run}x{i}") for i in range(n)]


async def _direct(script: str, url: str, tasks: list[Any], conc: int) -> tuple[float, list[float]]:
    sem = asyncio.Semaphore(conc)
    walls: list[float] = []
    env = {"PATH": os.environ.get("PATH", os.defpath), "OPENAI_BASE_URL": url, "OPENAI_API_KEY": "k",
           "OPENAI_MODEL": "fake-model"}

    async def one(t: Any) -> None:
        async with sem:
            t0 = time.perf_counter()
            p = await asyncio.create_subprocess_exec(
                "/bin/sh", script, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE, env=env, start_new_session=True,
            )
            out, _ = await p.communicate(t.prompt.encode())
            walls.append(time.perf_counter() - t0)
            if p.returncode != 0 or out.decode().strip() != t.prompt:
                raise RuntimeError(f"direct run failed: exit {p.returncode}, output {out[:200]!r}")

    t0 = time.perf_counter()
    await asyncio.gather(*(one(t) for t in tasks))
    return len(tasks) / (time.perf_counter() - t0), walls


async def _env(script: str, url: str, tasks: list[Any], conc: int) -> tuple[float, list[float], int, int]:
    from swarmgym.envs.blackbox import BlackBoxEnv
    from swarmgym.judges.rules import ExactMatch
    from swarmgym.policies import OpenAIPolicy
    from swarmgym.rollout import RolloutLimits, RolloutManager

    async with OpenAIPolicy(url, "fake-model", max_retries=0) as pol:
        env = BlackBoxEnv([], ["/bin/sh", script], judge=ExactMatch(), timeout_s=120)
        mgr = RolloutManager(pol, RolloutLimits(max_episodes=conc))
        t0 = time.perf_counter()
        trajs = await mgr.run(env, tasks)
        rate = len(tasks) / (time.perf_counter() - t0)
    by_id = {t.id: t for t in tasks}
    cross = failed = 0
    for tr in trajs:
        own = by_id[tr.task_id].answer
        marks = re.findall(r"m\d+x\d+", json.dumps([m.to_openai() for m in tr.messages]))
        cross += any(m != own for m in marks)
        failed += not (tr.status == "ok" and tr.reward == 1.0)
    return rate, [tr.metrics.get("wall_s", 0.0) for tr in trajs], cross, failed


def main(argv: list[str] | None = None) -> int:
    bench = Bench("blackbox", __doc__, TARGETS, describe=DESCRIBE)
    bench.parser.add_argument("-n", type=int, default=300, help="episodes per arm and repeat")
    bench.parser.add_argument("--concurrency", type=int, default=32)
    bench.parser.add_argument("--repeats", type=int, default=2)
    a = bench.parse_args(argv)
    n, conc, repeats = (60, 16, 1) if a.quick else (a.n, a.concurrency, a.repeats)

    def measure(res: dict[str, Any]) -> None:
        from swarmgym.envs.agents import agent_path
        from swarmgym.testing import start_fake_server_process

        if not shutil.which("curl"):
            raise RuntimeError("the curl agent needs curl (.ci/install-curl.sh)")
        script = agent_path("curl_agent.sh")
        best: dict[str, tuple[float, list[float]]] = {}
        cross = failed = 0
        with start_fake_server_process() as srv:
            for r in range(repeats):
                with bench.arm(f"direct {r + 1}"):
                    rate, walls = asyncio.run(_direct(script, srv.base_url, _tasks(n, 2 * r), conc))
                    if rate > best.get("direct", (0.0, []))[0]:
                        best["direct"] = (rate, walls)
                with bench.arm(f"env {r + 1}"):
                    rate, walls, c, f = asyncio.run(_env(script, srv.base_url, _tasks(n, 2 * r + 1), conc))
                    cross, failed = cross + c, failed + f
                    if rate > best.get("env", (0.0, []))[0]:
                        best["env"] = (rate, walls)
        for arm in ("direct", "env"):
            if arm in best:
                res[f"{arm}_per_s"] = round(best[arm][0], 2)
                res[f"{arm}_wall_p50_ms"] = round(statistics.median(best[arm][1]) * 1000, 2)
        if "env" in best:
            res["cross_talk"], res["env_failed"] = cross, failed
        if "direct" in best and "env" in best:
            res["ratio_vs_direct"] = round(best["env"][0] / best["direct"][0], 3)

    return bench.run(measure, title=f"black-box episodes (N={n}, concurrency {conc}, best of {repeats})")


if __name__ == "__main__":
    raise SystemExit(main())
