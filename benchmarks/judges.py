"""Judge throughput per kind (calls/s) and the code judge's latency per HumanEval problem.

Every judge kind scores the same realistic response ``n`` times in one event loop, one call at a time
(judges are CPU-bound, so concurrency would only interleave them); the first call is a warm-up that pays the
lazy imports (scipy, math-verify, rapidfuzz, shapely) and is not counted. Rubric uses an in-process
``ScriptedPolicy`` as its judge model, so the figure is the judge's own overhead (prompt building, JSON
validation), not a model's latency. Toggle caches its base judge's result per trajectory id, so
``toggle_overhead`` (the same trajectory every call) is the cost Toggle adds on top of its base judge.

The code judge runs HumanEval canonical solutions in fresh isolated subprocesses (no sandbox):
sequential latency per problem (mean, p50, p95 over ``--code-problems`` problems) and the throughput of all
164 problems with ``--code-concurrency`` runs in flight.

Run: ``python -m benchmarks.judges [-n 300] [--code-problems 40] [--json FILE]`` or ``swarmgym bench judges``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from typing import Any

__all__ = ["main", "run"]


def _cases() -> dict[str, tuple[Any, Any, str]]:
    """kind -> (judge, task, response text)."""
    import random

    from swarmgym.judges.agent import parse_verdict  # noqa: F401  (import cost outside the timed loop)
    from swarmgym.judges.base import FunctionJudge
    from swarmgym.judges.budget import ToggleJudge
    from swarmgym.judges.f1 import ItemF1
    from swarmgym.judges.math_answer import MathJudge
    from swarmgym.judges.rubric import Rubric, RubricJudge
    from swarmgym.judges.rules import (
        ExactMatch,
        MultipleChoice,
        NumericMatch,
        RegexMatch,
    )
    from swarmgym.judges.visual import VisualJudge
    from swarmgym.policies.scripted import ScriptedPolicy
    from swarmgym.prompts.compose import compose_response
    from swarmgym.prompts.instructions import InstructionEnhancer
    from swarmgym.wire import Task

    reasoning = "Let me think step by step. " * 40
    T = lambda answer, **md: Task(id="t", prompt="q", answer=answer, metadata=md)
    table = [{"name": f"Entity {i}", "year": 1900 + i, "city": f"City {i % 7}"} for i in range(20)]
    md_rows = "\n".join(f"| Entity {i} | {1900 + i} | City {i % 7} |" for i in range(19))
    md_table = "| name | year | city |\n|---|---|---|\n" + md_rows + "\n| Entity 99 | 1999 | Nowhere |"
    boxes = [[10 * i, 10 * i, 10 * i + 30, 10 * i + 20] for i in range(10)]
    pboxes = [[x1 + 2, y1 + 1, x2 + 2, y2 + 1] for x1, y1, x2, y2 in reversed(boxes)]
    pts = [[15 * i, 7 * i] for i in range(10)]
    square = [[5, 5], [50, 5], [50, 50], [5, 50]]
    ifenh = InstructionEnhancer(3)
    iftask = ifenh.enhance(Task(id="if", prompt="Write a short blog post about city gardens."), random.Random(3))
    rubrics = [Rubric(name="correct", criterion="Right."), Rubric(name="clear", criterion="Clear.")]
    verdict = json.dumps({"scores": [{"rubric": "correct", "score": 8, "reason": "ok"},
                                     {"rubric": "clear", "score": 7, "reason": "ok"}]})
    base = FunctionJudge(lambda task, traj: float("Paris" in traj.final_text), name="correct")
    return {
        "exact": (ExactMatch(), T("Paris"), reasoning + "\\boxed{Paris}"),
        "regex": (RegexMatch(answer_format="last_line"), T(r"\d{3}-\d{4}"), reasoning + "\n555-1234"),
        "multiple_choice": (MultipleChoice(), T("C"), reasoning + "\nAnswer: (C)"),
        "numeric": (NumericMatch(rel_tol=1e-4), T(3.14159), reasoning + "\\boxed{3.1416}"),
        "math_verify_symbolic": (MathJudge(), T("x^2+2x+1"), reasoning + "\\boxed{(x+1)^2}"),
        "math_fast_path": (MathJudge(), T("3/4"), reasoning + "\\boxed{\\frac{3}{4}}"),
        "item_f1_table_20x3": (ItemF1(), T(table), reasoning + "\n" + md_table),
        "boxes_f1_10": (VisualJudge("boxes"), T(boxes), f"<answer>{json.dumps(pboxes)}</answer>"),
        "points_f1_10": (VisualJudge("points"), T(pts), f"<answer>{json.dumps(pts[::-1])}</answer>"),
        "polygon_iou_64px": (VisualJudge("polygon"), T(square, height=64, width=64),
                             "<answer>[[6, 5], [50, 6], [49, 50], [5, 49]]</answer>"),
        "ocr": (VisualJudge("ocr"), T("The quick brown fox jumps over the lazy dog"),
                "<answer>The quick brwn fox jumps over the lazy dog.</answer>"),
        "count": (VisualJudge("count"), T(12), "I count 11 apples."),
        "instructions_k3": (ifenh.judge, iftask, compose_response(iftask.metadata["constraints"], 3)),
        "rubric_scripted": (RubricJudge(ScriptedPolicy([verdict], cycle=True), rubrics), T("Paris"),
                            reasoning + " Paris."),
        "toggle_overhead": (ToggleJudge(base), T("Paris"), reasoning + " Paris."),
    }


async def _throughput(n: int, only: list[str] | None) -> dict[str, float]:
    from swarmgym.judges.base import JudgeContext
    from swarmgym.wire import Message, Trajectory

    out: dict[str, float] = {}
    for kind, (judge, task, text) in _cases().items():
        if only and kind not in only:
            continue
        traj = Trajectory(messages=[Message(role="user", content="q"), Message(role="assistant", content=text)])
        ctx = JudgeContext()
        first = await judge.score(task, traj, ctx)  # warm-up: lazy imports, caches
        if first.reward <= 0:
            raise RuntimeError(f"benchmark case {kind} scored {first.reward}: the case is wrong")
        t0 = time.perf_counter()
        for _ in range(n):
            await judge.score(task, traj, ctx)
        out[kind] = n / (time.perf_counter() - t0)
    return out


async def _code(problems: int, concurrency: int, all_164: bool) -> dict[str, float]:
    import anyio
    from swarmgym.envs.humaneval import HumanEvalTasks, humaneval_oracle
    from swarmgym.judges.base import JudgeContext
    from swarmgym.judges.code import CodeTestJudge
    from swarmgym.wire import Message, Trajectory

    tasks = HumanEvalTasks()
    judge = CodeTestJudge(mode="all")

    def traj(i: int) -> Trajectory:
        return Trajectory(messages=[Message(role="assistant", content=humaneval_oracle(tasks[i], []))])

    await judge.score(tasks[0], traj(0), JudgeContext())  # warm-up
    lat: list[float] = []
    for i in range(min(problems, len(tasks))):
        t0 = time.perf_counter()
        r = await judge.score(tasks[i], traj(i), JudgeContext())
        lat.append(time.perf_counter() - t0)
        if r.reward != 1.0:
            raise RuntimeError(f"canonical solution of {tasks[i].id} scored {r.reward}: {r.info}")
    lat.sort()
    res = {
        "code_latency_mean_ms": 1000 * statistics.fmean(lat),
        "code_latency_p50_ms": 1000 * lat[len(lat) // 2],
        "code_latency_p95_ms": 1000 * lat[min(len(lat) - 1, int(0.95 * len(lat)))],
        "code_latency_problems": float(len(lat)),
    }
    if all_164:
        lim = anyio.CapacityLimiter(concurrency)
        passed = 0

        async def one(i: int) -> None:
            nonlocal passed
            async with lim:
                r = await judge.score(tasks[i], traj(i), JudgeContext())
            passed += r.reward == 1.0  # after the await: `passed += await …` would lose updates

        t0 = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for i in range(len(tasks)):
                tg.start_soon(one, i)
        dt = time.perf_counter() - t0
        res.update({"humaneval_164_wall_s": dt, "humaneval_164_problems_per_s": len(tasks) / dt,
                    "humaneval_164_passed": float(passed), "humaneval_concurrency": float(concurrency)})
    return res


def run(n: int = 300, code_problems: int = 40, code_concurrency: int = 4, all_164: bool = True,
        only: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark; returns the figures (``calls_per_s`` per judge kind, code latencies)."""
    import anyio

    thr = anyio.run(_throughput, n, only)
    code = anyio.run(_code, code_problems, code_concurrency, all_164) if code_problems > 0 else {}
    return {
        "benchmark": "judges",
        "n_per_kind": n,
        "cpu_count": os.cpu_count(),
        "calls_per_s": {k: round(v, 1) for k, v in thr.items()},
        **{k: round(v, 2) for k, v in code.items()},
    }


def main(argv: list[str] | None = None) -> int:
    """Command line: print a table and optionally write the figures as JSON."""
    p = argparse.ArgumentParser(prog="swarmgym bench judges", description=__doc__.split("\n")[0])
    p.add_argument("-n", type=int, default=300, help="calls per judge kind (default 300)")
    p.add_argument("--code-problems", type=int, default=40, help="HumanEval problems timed one by one (0 = skip)")
    p.add_argument("--code-concurrency", type=int, default=4, help="runs in flight for the 164-problem pass")
    p.add_argument("--no-all-164", action="store_true", help="skip the concurrent pass over all 164 problems")
    p.add_argument("--only", nargs="*", help="judge kinds to time (default: all)")
    p.add_argument("--json", metavar="FILE", help="write the results as JSON here")
    a = p.parse_args(argv)
    res = run(a.n, a.code_problems, a.code_concurrency, not a.no_all_164, a.only)

    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"Judge throughput (n={a.n} per kind, one call at a time, {res['cpu_count']} CPUs)")
    t.add_column("judge kind")
    t.add_column("calls/s", justify="right")
    for k, v in res["calls_per_s"].items():
        t.add_row(k, f"{v:,.1f}")
    Console().print(t)
    code = {k: v for k, v in res.items() if k.startswith(("code_", "humaneval_"))}
    if code:
        t2 = Table(title="Code-test judge (HumanEval canonical solutions, isolated subprocess)")
        t2.add_column("metric")
        t2.add_column("value", justify="right")
        for k, v in code.items():
            t2.add_row(k, f"{v:,}")
        Console().print(t2)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
