"""Code judge: the process boundary (tests on the judge's side) against the single-process harness it replaced.

Both arms judge the HumanEval canonical solutions with the same limits, in the same run, interleaved
problem by problem (the order of the two arms alternates), so a shared machine slows both alike:

- ``old``: the single-process harness of commit 23f77fd (``benchmarks/_single_process_judge.py``): one
  ``python -I -S`` process runs the solution *and* the tests and prints the result (forgeable);
- ``new``: :func:`swarmgym.judges.code.run_tests`: the candidate in its own ``python -I -S`` process, each
  ``candidate(...)`` call a round trip, the asserts in a worker thread of the judge.

Figures: latency per problem (mean, p50, p99, one problem at a time), throughput over the problems with
``--concurrency`` runs in flight, problems passed per arm; and, when bubblewrap works here, the same two
arms inside one real local sandbox (old: harness files + ``exec``; new: the sandbox's Python kernel).

Run: ``swarmgym bench code_judge [--problems N] [--concurrency C] [--json FILE] [--quick] [--no-check]``.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

from benchmarks._report import Bench, Target

__all__ = ["main"]

_NOISY = "20 problems on a shared 2-core machine: ratios move by ±30% between runs"
TARGETS = [
    Target("throughput_new_vs_old", ">=", 0.8, quick=0.6, quick_why=_NOISY,
           what="problems/s, new ÷ old (within 20%)"),
    Target("p50_new_vs_old", "<=", 1.25, quick=1.6, quick_why=_NOISY, what="p50 latency, new ÷ old"),
    Target("passed_new", "==", 1.0, what="share of canonical solutions passing (new)"),
    Target("passed_old", "==", 1.0, what="share of canonical solutions passing (old)"),
    Target("sandbox_passed_new", "==", 1.0, what="share passing in a real bwrap sandbox (new)"),
]


def _q(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


async def _measure(problems: int, concurrency: int, sandbox_problems: int) -> dict[str, Any]:
    import anyio

    from benchmarks._single_process_judge import run_tests_single_process
    from swarmgym.envs.humaneval import HumanEvalTasks
    from swarmgym.judges.code import run_tests

    tasks = HumanEvalTasks()
    n = min(problems, len(tasks))

    def args(i: int) -> tuple[str, dict[str, Any], str]:
        md = tasks[i].metadata
        return md["prefix"] + md["canonical_solution"], md["check"], md["prefix"]

    async def old(i: int, sandbox: Any = None) -> bool:
        sol, check, _ = args(i)
        r = await run_tests_single_process(sol, check=check, sandbox=sandbox)
        return r.total > 0 and r.n_passed == r.total

    async def new(i: int, sandbox: Any = None) -> bool:
        sol, check, prefix = args(i)
        r = await run_tests(sol, check=check, prefix=prefix, sandbox=sandbox)
        return r.total > 0 and r.n_passed == r.total

    arms = {"old": old, "new": new}
    for f in arms.values():  # warm-up: imports, the interpreter's page cache
        await f(0)
    lat: dict[str, list[float]] = {k: [] for k in arms}
    passed = {k: 0 for k in arms}
    for i in range(n):
        order = ("old", "new") if i % 2 == 0 else ("new", "old")
        for k in order:
            t0 = time.perf_counter()
            ok = await arms[k](i)
            lat[k].append(time.perf_counter() - t0)
            passed[k] += ok
    res: dict[str, Any] = {"problems": n}
    for k in arms:
        res[f"{k}_latency_mean_ms"] = 1000 * statistics.fmean(lat[k])
        res[f"{k}_latency_p50_ms"] = 1000 * _q(lat[k], 0.5)
        res[f"{k}_latency_p99_ms"] = 1000 * _q(lat[k], 0.99)
        res[f"passed_{k}"] = passed[k] / n
    res["p50_new_vs_old"] = res["new_latency_p50_ms"] / res["old_latency_p50_ms"]

    async def throughput(k: str) -> float:
        lim = anyio.CapacityLimiter(concurrency)

        async def one(i: int) -> None:
            async with lim:
                await arms[k](i)

        t0 = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for i in range(n):
                tg.start_soon(one, i)
        return n / (time.perf_counter() - t0)

    thr: dict[str, list[float]] = {"old": [], "new": []}
    for rnd in range(2):  # two rounds, alternating which arm goes first
        for k in (("old", "new") if rnd == 0 else ("new", "old")):
            thr[k].append(await throughput(k))
    for k in arms:
        res[f"{k}_problems_per_s"] = statistics.fmean(thr[k])
    res["throughput_new_vs_old"] = res["new_problems_per_s"] / res["old_problems_per_s"]
    res["concurrency"] = concurrency

    from swarmgym.errors import SandboxError
    from swarmgym.toolsets.sandbox.factory import create_sandbox

    try:
        sb = await create_sandbox("local")
    except SandboxError as e:
        res["sandbox"] = f"unavailable: {e}"
        return res
    try:
        m = min(sandbox_problems, len(tasks))
        slat: dict[str, list[float]] = {k: [] for k in arms}
        spassed = {k: 0 for k in arms}
        for f in arms.values():
            await f(0, sb)
        for i in range(m):
            for k in (("old", "new") if i % 2 == 0 else ("new", "old")):
                t0 = time.perf_counter()
                spassed[k] += await arms[k](i, sb)
                slat[k].append(time.perf_counter() - t0)
        res["sandbox_problems"] = m
        for k in arms:
            res[f"sandbox_{k}_latency_p50_ms"] = 1000 * _q(slat[k], 0.5)
            res[f"sandbox_{k}_latency_p99_ms"] = 1000 * _q(slat[k], 0.99)
            res[f"sandbox_passed_{k}"] = spassed[k] / m
    finally:
        await sb.close()
    return res


def main(argv: list[str] | None = None) -> int:
    """Command line (see the module docstring)."""
    import anyio

    bench = Bench("code_judge", __doc__, TARGETS)
    bench.parser.add_argument("--problems", type=int, default=164, help="HumanEval problems per arm (default 164)")
    bench.parser.add_argument("--concurrency", type=int, default=4, help="runs in flight for the throughput pass")
    bench.parser.add_argument("--sandbox-problems", type=int, default=164, help="problems in the sandbox arms")
    a = bench.parse_args(argv)
    problems = 20 if a.quick else a.problems
    sandbox_problems = 20 if a.quick else a.sandbox_problems

    def measure(res: dict[str, Any]) -> None:
        with bench.arm("humaneval"):
            res.update(anyio.run(_measure, problems, a.concurrency, sandbox_problems))

    return bench.run(measure, title=f"code judge, old single process vs process boundary ({problems} problems)")


if __name__ == "__main__":
    raise SystemExit(main())
