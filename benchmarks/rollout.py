"""Rollout manager benchmark: scale, throughput against verifiers 0.3.1, recursion overhead.

Sections (each runs in its own child process, so peak RSS and GC state belong to that section alone):

- **scale**: ``--scale-n`` (default 100,000) episodes admitted at once into one RolloutManager; an in-process
  policy waits 1–5 s per call (uniform) and plays 3 turns (two ``calculator`` tool calls, then the answer).
  Reports ``concurrent_episodes`` (peak alive at once), ``peak_rss_mb``, wall time and event-loop lag
  p50/p99 (a 20 ms probe timer's lateness). Targets: 100,000 concurrent, RSS ≤ 4 GiB, lag p99 ≤ 50 ms.
  The run is CPU-bound at its peak (more turn work per second than one core does): the manager's time
  slicing (``RolloutLimits.turns_per_tick``) keeps the loop responsive and the backlog shows as turns that
  waited (``turn_wait_p50_ms``/``p99``, ``turns_waited``, ``peak_turn_queue``) and as ``episode_wall_mean_s``
  above the policy's own 9 s mean.
- **http**: the same fake OpenAI-compatible server (aiohttp, **another process**) serves swarmgym and
  verifiers 0.3.1 in the same run: single-turn episodes and 5-tool-call episodes (the server answers with a
  calculator call until it has seen 5 tool results), concurrency 256, ``--http-n`` (default 5,000) episodes
  each. verifiers is installed into its own virtualenv under ``~/.cache/swarmgym/bench`` (never a project
  dependency; ``.ci/install-verifiers.sh`` pre-builds it) and runs with ``AsyncOpenAI``'s defaults (2
  retries) and a 600 s timeout. Each side is an arm: it fails if it errors or if any episode does not
  finish with reward 1.0 (an arm that fails fast would look fast), and a ratio is only computed when both
  arms succeeded; otherwise it is missing, a missed target. Target: ≥ 10× verifiers.
- **recursion**: ``--parents`` (1,000) parents each spawning 8 children concurrently (in-process policy, no
  latency): children/s and the manager's overhead per spawn (child episode time through ``spawn`` minus the
  same child episode run directly with ``run_episode``), with the default limits and without time slicing
  (``spawn_overhead_us_unsliced``: with a zero-latency policy every turn is ready at once, so most wait
  for a later loop iteration; ``recursion_turns_waited`` counts them).

Run: ``swarmgym bench rollout [--json FILE] [--quick] [--no-check] [--only SECTION]`` (``--quick``: scale
5,000, HTTP 500, recursion 100 parents; the same code and checks. ``--only`` checks that section's targets).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks._report import Bench, Target

__all__ = ["SECTION_TARGETS", "TARGETS", "main"]

VERIFIERS_VERSION = "0.3.1"
QUICK_SCALE_N = 5000
# the same cache folder as the CI install scripts (.ci/install-verifiers.sh pre-builds this venv)
_CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "swarmgym" / "bench"
VENV_DIR = Path(os.environ.get("SWARMGYM_BENCH_CACHE") or _CACHE) / f"verifiers-{VERIFIERS_VERSION}"
PROMPT = "What is 17 + 25? Answer with the number only."


# ---------------------------------------------------------------------------------------------- helpers


def _peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _load() -> str:
    try:
        a, b, c = os.getloadavg()
        return f"{a:.2f} {b:.2f} {c:.2f} (cores: {os.cpu_count()})"
    except OSError:
        return "unknown"


class _LazyTasks:
    """N arithmetic tasks made on demand (so 100,000 tasks cost nothing until admitted)."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> Any:
        from swarmgym.wire import Task

        a, b = i % 97, i % 89
        return Task(id=f"t{i}", prompt=f"What is ({a} + {b}) * 2?", answer=str((a + b) * 2))


_REPLIES: dict[tuple[int, str], Any] = {}


def _three_turns(messages: Any, tools: Any, ctx: Any) -> Any:
    """Turn 0: calculator(a+b); turn 1: calculator(result*2); turn 2: the answer.

    Returns Completions built directly, as an in-process model wrapper would, and memoised per (turn, text):
    this stands in for a model, whose own cost is not what the scale section measures (a served model's CPU
    is not in the rollout process at all).
    """
    from swarmgym.wire import Completion, Message, ToolCall

    turn = ctx.turn
    key = (turn, ctx.task.prompt if turn == 0 else messages[-1].text)
    reply = _REPLIES.get(key)
    if reply is None:
        if turn == 0:
            expr = key[1].split("(", 1)[1].split(")", 1)[0]
            call = ToolCall(id="c0", name="calculator", arguments={"expression": expr})
        elif turn == 1:
            call = ToolCall(id="c1", name="calculator", arguments={"expression": f"{key[1]}*2"})
        if turn >= 2:
            reply = Completion(message=Message(role="assistant", content=key[1]))
        else:
            reply = Completion(message=Message(role="assistant", tool_calls=[call]))
        _REPLIES[key] = reply
    return reply


# ---------------------------------------------------------------------------------------------- scale


def section_scale(n: int, lat_lo: float, lat_hi: float) -> dict[str, Any]:
    import anyio

    from swarmgym.envs.core import AgentEnv, EpisodeLimits
    from swarmgym.judges.base import FunctionJudge
    from swarmgym.policies.scripted import ScriptedPolicy
    from swarmgym.rollout import RolloutLimits, RolloutManager
    from swarmgym.toolsets.calculator import CalculatorToolset

    env = AgentEnv(
        _LazyTasks(n),
        toolsets=[CalculatorToolset()],
        judge=FunctionJudge(lambda task, traj: float(traj.final_text == task.answer), name="exact"),
        limits=EpisodeLimits(max_turns=3),
    )
    policy = ScriptedPolicy(_three_turns, latency=(lat_lo, lat_hi), seed=0)
    mgr = RolloutManager(policy, RolloutLimits(max_episodes=n, max_children_per_episode=0))
    counts = {"ok": 0, "reward": 0.0}

    async def go() -> None:
        async for t in mgr.stream(env, n):
            counts["ok"] += t.status == "ok" and t.reward == 1.0
            counts["reward"] += t.reward

    t0 = time.perf_counter()
    c0 = time.process_time()
    anyio.run(go)
    wall = time.perf_counter() - t0
    m = mgr.metrics
    lag = m.hist["loop_lag_s"]
    return {
        "scale_n": n,
        "concurrent_episodes": int(m.gauges["peak_in_flight"]),
        "peak_rss_mb": round(_peak_rss_mb(), 1),
        "scale_wall_s": round(wall, 2),
        "scale_cpu_s": round(time.process_time() - c0, 2),
        "scale_ok": counts["ok"],
        "scale_not_ok": n - counts["ok"],  # episodes that did not finish ok with reward 1.0
        "scale_mean_reward": round(counts["reward"] / max(n, 1), 4),
        "loop_lag_p50_ms": round(lag.quantile(0.5) * 1000, 2),
        "loop_lag_p99_ms": round(lag.quantile(0.99) * 1000, 2),
        "loop_lag_max_ms": round(lag.max * 1000, 2),
        "scale_policy_latency_s": [lat_lo, lat_hi],
        # the CPU-bound backlog: turns that waited for their slice of the loop (RolloutLimits.turns_per_tick),
        # and how much longer than the policy's own waits (3 x 3 s on average) episodes took
        "turn_wait_p50_ms": round(m.hist["turn_wait_s"].quantile(0.5) * 1000, 1),
        "turn_wait_p99_ms": round(m.hist["turn_wait_s"].quantile(0.99) * 1000, 1),
        "turns_waited": m.hist["turn_wait_s"].n,
        "peak_turn_queue": int(m.gauges.get("peak_turn_queue", 0)),
        "episode_wall_mean_s": round(m.hist["episode_wall_s"].mean, 2),
    }


# ---------------------------------------------------------------------------------------------- http


def _tools_responder(req: dict[str, Any]) -> Any:
    """The fake server's side of a 5-tool-call episode: call the calculator until 5 results came back."""
    from swarmgym.testing.fake_server import Reply

    n_tool = sum(1 for m in req.get("messages", ()) if m.get("role") == "tool")
    if n_tool < 5:
        return Reply.tool("calculator", {"expression": f"{n_tool} + 1"}, call_id=f"call_{n_tool}")
    return Reply.text("42")


def serve_tools_server() -> None:
    """Child-process entry: a fake server with the 5-tool-call responder (prints the ready line, stops on stdin EOF)."""
    import asyncio

    from swarmgym.testing.fake_server import READY_PREFIX, FakeOpenAIServer

    async def run() -> None:
        srv = FakeOpenAIServer(responder=_tools_responder, default_text="42", record=False)
        await srv.start()
        print(READY_PREFIX + srv.base_url, flush=True)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, sys.stdin.read)
        await srv.close()

    asyncio.run(run())


class _ServerProc:
    def __init__(self, args: list[str]) -> None:
        from swarmgym.testing.fake_server import READY_PREFIX

        self.proc = subprocess.Popen(
            args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=tempfile.gettempdir()
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().decode()
        if not line.startswith(READY_PREFIX):
            self.close()
            raise RuntimeError(f"fake server did not start: {line!r}")
        self.base_url = line[len(READY_PREFIX) :].strip()

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _swarmgym_http(base_url: str, n: int, concurrency: int, tools: bool, warmup: int) -> dict[str, Any]:
    import anyio

    from swarmgym.envs.core import AgentEnv, EpisodeLimits
    from swarmgym.judges.base import FunctionJudge
    from swarmgym.policies.openai_http import OpenAIPolicy
    from swarmgym.rollout import RolloutLimits, RolloutManager
    from swarmgym.toolsets.calculator import CalculatorToolset
    from swarmgym.wire import SamplingParams, Task

    tasks = [Task(id=f"t{i}", prompt=PROMPT, answer="42") for i in range(n)]
    env = AgentEnv(
        tasks,
        toolsets=[CalculatorToolset()] if tools else [],
        judge=FunctionJudge(lambda task, traj: float(traj.final_text.strip() == "42"), name="exact"),
        limits=EpisodeLimits(max_turns=7 if tools else 1),
    )
    policy = OpenAIPolicy(base_url, "fake-model", max_connections=concurrency)
    sampling = SamplingParams(logprobs=False)
    result: dict[str, Any] = {}

    async def go() -> None:
        try:
            # warm-up (connections opened, caches warm), then the measured run
            await RolloutManager(policy, RolloutLimits(max_episodes=concurrency), sampling=sampling).run(
                env, tasks[:warmup]
            )
            mgr = RolloutManager(policy, RolloutLimits(max_episodes=concurrency), sampling=sampling)
            c0, t0 = time.process_time(), time.perf_counter()
            out = await mgr.run(env)
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            ok = sum(1 for t in out if t.status == "ok" and t.reward == 1.0 and (not tools or t.num_turns == 6))
            result.update(rps=n / wall, cpu_ms=1000 * cpu / n, ok=ok)
        finally:
            await policy.aclose()

    anyio.run(go)
    return result


VERIFIERS_DRIVER = r'''
import asyncio, json, sys, time, resource
mode, base_url, n, conc = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
import verifiers as vf
from datasets import Dataset
from openai import AsyncOpenAI

PROMPT = "What is 17 + 25? Answer with the number only."
ds = Dataset.from_list([{"question": PROMPT, "answer": "42"} for _ in range(n)])

def correct(completion, answer, **kw):
    text = completion[-1]["content"] if isinstance(completion, list) else completion
    return float((text or "").strip() == answer)

def calculator(expression: str) -> str:
    """Evaluate an arithmetic expression.

    Args:
        expression: the expression.
    """
    return str(eval(expression, {"__builtins__": {}}))

rubric = vf.Rubric(funcs=[correct])
if mode == "single":
    env = vf.SingleTurnEnv(dataset=ds, rubric=rubric)
else:
    env = vf.ToolEnv(dataset=ds, tools=[calculator], rubric=rubric, max_turns=7)
from verifiers.clients import OpenAIChatCompletionsClient
# the openai client's defaults (2 retries) with a long timeout: httpx's 5 s connect timeout fails verifiers
# episodes on a busy machine, and a baseline must not lose for want of patience
client = OpenAIChatCompletionsClient(AsyncOpenAI(base_url=base_url, api_key="x", timeout=600.0))
async def run(k):
    return await env.evaluate(client, "fake-model", num_examples=k, rollouts_per_example=1,
                              max_concurrent=conc, on_progress=lambda *a, **kw: None)
async def both():  # one event loop for warm-up and measurement (the client's pool is bound to it)
    await run(min(200, n))
    c0, t0 = time.process_time(), time.perf_counter()
    res = await run(n)
    return res, time.perf_counter() - t0, time.process_time() - c0
res, wall, cpu = asyncio.run(both())
rewards = [o.get("reward") for o in res["outputs"]]
print(json.dumps({"rps": n / wall, "cpu_ms": 1000 * cpu / n, "ok": int(sum(1 for r in rewards if r == 1.0)),
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
'''


def _ensure_verifiers() -> tuple[Path | None, str]:
    """The venv's python with verifiers installed, or (None, why not)."""
    # Every child runs outside the source checkout: its root is the package itself and has a types.py
    # that would shadow the standard library's for `python -c` / `python -m` started there.
    cwd = tempfile.gettempdir()
    py = VENV_DIR / "bin" / "python"
    check = [
        str(py),
        "-c",
        f"import verifiers, importlib.metadata as m; assert m.version('verifiers') == '{VERIFIERS_VERSION}'",
    ]
    if py.exists() and subprocess.run(check, capture_output=True, cwd=cwd).returncode == 0:
        return py, "cached"
    try:
        VENV_DIR.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "venv", str(VENV_DIR)], check=True, capture_output=True, cwd=cwd)
        r = subprocess.run(
            [str(py), "-m", "pip", "install", "-q", f"verifiers=={VERIFIERS_VERSION}"],
            capture_output=True, text=True, timeout=1800, cwd=cwd,
        )  # fmt: skip
        if r.returncode != 0:
            return None, f"pip install verifiers=={VERIFIERS_VERSION} failed: {r.stderr.strip()[-400:]}"
        if subprocess.run(check, capture_output=True, cwd=cwd).returncode != 0:
            return None, f"verifiers=={VERIFIERS_VERSION} installed but does not import"
        return py, "installed"
    except (OSError, subprocess.SubprocessError) as e:
        return None, f"could not create the verifiers virtualenv: {e}"


def _verifiers_http(py: Path, mode: str, base_url: str, n: int, concurrency: int) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
        f.write(VERIFIERS_DRIVER)
        script = f.name
    try:
        r = subprocess.run(
            [str(py), script, mode, base_url, str(n), str(concurrency)],
            capture_output=True,
            text=True,
            timeout=3600,
            cwd=tempfile.gettempdir(),
        )
    finally:
        os.unlink(script)
    if r.returncode != 0:
        return {"error": (r.stderr.strip() or r.stdout.strip())[-800:]}
    return json.loads(r.stdout.strip().splitlines()[-1])


def section_http(n: int, concurrency: int, skip_verifiers: bool) -> dict[str, Any]:
    """Both HTTP modes, swarmgym then verifiers against the same server process.

    Each side of each mode is an arm (``arm_errors``: arm -> error). An arm fails when it raises or when not
    every episode finished ok with reward 1.0: a run that errors out early is fast, so its speed is no
    figure. A ratio is computed only when both of its arms succeeded.
    """
    out: dict[str, Any] = {"http_n": n, "http_concurrency": concurrency}
    errors: dict[str, str | None] = {}
    py, how = (None, "skipped (--no-verifiers)") if skip_verifiers else _ensure_verifiers()
    out["verifiers_status"] = how if py else f"unavailable: {how}"
    warmup = min(500, n)
    for mode, tools in (("single_turn", False), ("tools", True)):
        srv = _ServerProc(_self_command("--serve", "tools" if tools else "single"))
        sw: dict[str, Any] | None = None
        vr: dict[str, Any] | None = None
        try:
            try:
                sw = _swarmgym_http(srv.base_url, n, concurrency, tools, warmup)
            except Exception as e:
                errors[f"swarmgym {mode}"] = f"{type(e).__name__}: {str(e).strip()[:300]}"
            else:
                out[f"rollouts_per_s_{mode}"] = round(sw["rps"], 1)
                out[f"client_cpu_ms_per_rollout_{mode}"] = round(sw["cpu_ms"], 3)
                out[f"ok_{mode}"] = sw["ok"]
                errors[f"swarmgym {mode}"] = None if sw["ok"] == n else f"{n - sw['ok']} of {n} episodes not ok"
            if py is None:
                errors[f"verifiers {mode}"] = out["verifiers_status"]
            else:
                vr = _verifiers_http(py, "single" if not tools else "tools", srv.base_url, n, concurrency)
                if "error" in vr:
                    errors[f"verifiers {mode}"] = vr["error"]
                else:
                    out[f"verifiers_rollouts_per_s_{mode}"] = round(vr["rps"], 1)
                    out[f"verifiers_client_cpu_ms_per_rollout_{mode}"] = round(vr["cpu_ms"], 3)
                    out[f"verifiers_ok_{mode}"] = vr["ok"]
                    ok = vr["ok"] == n
                    errors[f"verifiers {mode}"] = None if ok else f"{n - vr['ok']} of {n} episodes did not score 1.0"
            if sw is not None and vr is not None and not errors[f"swarmgym {mode}"] and not errors[f"verifiers {mode}"]:
                out[f"ratio_vs_verifiers_{mode}"] = round(sw["rps"] / vr["rps"], 2)
        finally:
            srv.close()
    out["arm_errors"] = errors
    return out


# ---------------------------------------------------------------------------------------------- recursion


def _check_recursion(out: list[Any], children: int) -> None:
    bad = [t for t in out if t.status != "ok" or len(t.children) != children]
    if bad:  # timing a run whose episodes failed would be no figure
        raise RuntimeError(f"{len(bad)} of {len(out)} parents failed, e.g. {bad[0].status} {bad[0].error}")


def section_recursion(parents: int, children: int) -> dict[str, Any]:
    import anyio

    from swarmgym.envs.core import AgentEnv
    from swarmgym.judges.base import FunctionJudge
    from swarmgym.loop import run_episode
    from swarmgym.policies.scripted import ScriptedPolicy
    from swarmgym.rollout import RolloutLimits, RolloutManager
    from swarmgym.toolsets.base import ToolContext, Toolset, tool
    from swarmgym.wire import Task

    judge = FunctionJudge(lambda task, traj: 1.0)
    child_env = AgentEnv([Task(id="c", prompt="child")], judge=judge)

    class FanOut(Toolset):
        @tool
        async def fan_out(self, ctx: ToolContext, k: int = 8) -> str:
            """Spawn k sub-agents.

            Args:
                k: how many.
            """
            async with anyio.create_task_group() as tg:
                for i in range(k):
                    tg.start_soon(ctx.spawn, child_env, Task(id=f"{ctx.task.id}-{i}", prompt="child"))
            return "done"

    def script(messages: Any, tools: Any, ctx: Any) -> Any:
        if ctx.role == "main" and ctx.turn == 0:
            return {
                "role": "assistant",
                "content": None,
                "tool_calls": [{"id": "f", "name": "fan_out", "arguments": {"k": children}}],
            }
        return "ok"

    policy = ScriptedPolicy(script)
    env = AgentEnv([Task(id=f"p{i}", prompt="go") for i in range(parents)], toolsets=[FanOut()], judge=judge)
    n_children = parents * children
    res: dict[str, Any] = {}

    async def go() -> None:
        # baseline: the same child episodes run directly (no manager, no spawn), same concurrency shape
        child_task = Task(id="c", prompt="child")

        async def direct() -> None:
            async with anyio.create_task_group() as tg:
                for _ in range(children):
                    tg.start_soon(run_episode, child_env, policy, child_task)

        c0 = time.process_time()
        for _ in range(parents):
            await direct()
        direct_cpu = time.process_time() - c0
        # without time slicing first: this zero-latency policy makes every turn ready at once, so with the
        # default RolloutLimits.turns_per_tick most turns wait for a later loop iteration, which costs CPU
        mgr = RolloutManager(policy, RolloutLimits(max_episodes=256, turns_per_tick=None))
        c0 = time.process_time()
        out = await mgr.run(env)
        unsliced_cpu = time.process_time() - c0
        _check_recursion(out, children)
        mgr = RolloutManager(policy, RolloutLimits(max_episodes=256))
        c0, t0 = time.process_time(), time.perf_counter()
        out = await mgr.run(env)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        _check_recursion(out, children)
        # parents alone (same scripted turns without children) to subtract their share
        solo = AgentEnv([Task(id=f"s{i}", prompt="go") for i in range(parents)], judge=judge)
        c1 = time.process_time()
        await RolloutManager(ScriptedPolicy(["ok"]), RolloutLimits(max_episodes=256)).run(solo)
        parents_cpu = time.process_time() - c1
        res.update(
            recursion_parents=parents,
            recursion_children=n_children,
            recursion_wall_s=round(wall, 3),
            children_per_s=round(n_children / wall, 1),
            child_episode_direct_us=round(1e6 * direct_cpu / n_children, 1),
            spawn_overhead_us=round(1e6 * (cpu - parents_cpu - direct_cpu) / n_children, 1),
            spawn_overhead_us_unsliced=round(1e6 * (unsliced_cpu - parents_cpu - direct_cpu) / n_children, 1),
            recursion_turns_waited=mgr.metrics.hist["turn_wait_s"].n,
        )

    anyio.run(go)
    return res


# ---------------------------------------------------------------------------------------------- driver


def _self_command(*args: str) -> list[str]:
    """This module's main() in a fresh interpreter (run from a temp dir, so the checkout root is put on
    sys.path explicitly, as ``swarmgym bench`` does, for ``import benchmarks``)."""
    root = str(Path(__file__).resolve().parent.parent)
    code = f"import sys; sys.path.insert(0, {root!r}); from benchmarks.rollout import main; sys.exit(main(sys.argv[1:]))"
    return [sys.executable, "-c", code, *args]


def _run_section(args: list[str]) -> dict[str, Any]:
    """Run one section in a fresh child process (its own RSS and GC state); returns its JSON."""
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        out = f.name
    try:
        r = subprocess.run(
            _self_command(*args, "--section-json", out),
            text=True, capture_output=True, cwd=tempfile.gettempdir(),
        )  # fmt: skip
        if r.returncode != 0:
            return {"section_error": (r.stderr or r.stdout).strip()[-1500:]}
        return json.loads(Path(out).read_text())
    finally:
        os.unlink(out)


SECTIONS = ("scale", "http", "recursion")
# every target of this benchmark, by the section that measures it (a run of some sections checks theirs)
SECTION_TARGETS: dict[str, list[Target]] = {
    "scale": [
        Target(
            "concurrent_episodes", ">=", 100_000, quick=QUICK_SCALE_N,
            quick_why=f"quick mode admits {QUICK_SCALE_N:,} episodes", what="most episodes in flight at once",
        ),
        Target("scale_not_ok", "==", 0, what="scale episodes that did not finish ok with reward 1.0"),
        Target("peak_rss_mb", "<=", 4096, what="peak RSS of the scale section, MB"),
        Target("loop_lag_p99_ms", "<=", 50, what="event-loop lag p99 (20 ms probe timer), ms"),
    ],
    "http": [
        Target("ratio_vs_verifiers_single_turn", ">=", 10, what="single-turn rollouts/s ÷ verifiers 0.3.1"),
        Target("ratio_vs_verifiers_tools", ">=", 10, what="5-tool-call rollouts/s ÷ verifiers 0.3.1"),
    ],
    "recursion": [],
}
TARGETS = [t for ts in SECTION_TARGETS.values() for t in ts]
# README rows besides the targets (benchmarks/_readme.py)
DESCRIBE = {
    "rollouts_per_s_single_turn": "swarmgym single-turn rollouts/s (fake server, concurrency 256)",
    "verifiers_rollouts_per_s_single_turn": "verifiers 0.3.1 single-turn rollouts/s, same server",
    "rollouts_per_s_tools": "swarmgym 5-tool-call rollouts/s",
    "verifiers_rollouts_per_s_tools": "verifiers 0.3.1 5-tool-call rollouts/s",
    "client_cpu_ms_per_rollout_single_turn": "swarmgym client CPU per single-turn rollout, ms",
    "verifiers_client_cpu_ms_per_rollout_single_turn": "verifiers client CPU per single-turn rollout, ms",
    "scale_wall_s": "scale: wall time for every episode (policy waits 1–5 s per call, 3 turns), s",
    "loop_lag_p50_ms": "event-loop lag p50, ms",
    "turn_wait_p50_ms": "turns that waited for their slice of the loop: p50 wait, ms",
    "children_per_s": "recursion: children/s (1,000 parents × 8)",
    "spawn_overhead_us": "recursion: manager overhead per spawned child, µs",
}


def main(argv: list[str] | None = None) -> int:
    """Command line: run the sections in child processes; the contract of ``benchmarks/_report.py``."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--only", choices=SECTIONS, action="append")
    sections = p.parse_known_args(argv)[0].only or list(SECTIONS)
    bench = Bench("rollout", __doc__, [t for s in sections for t in SECTION_TARGETS[s]], DESCRIBE)
    p = bench.parser
    p.add_argument("--scale-n", type=int, default=None, help="concurrent episodes of the scale section (100000)")
    p.add_argument("--latency", default="1,5", help="scale section policy latency LOW,HIGH seconds (1,5)")
    p.add_argument("--http-n", type=int, default=None, help="episodes per HTTP mode (5000)")
    p.add_argument("--concurrency", type=int, default=256)
    p.add_argument("--parents", type=int, default=None, help="recursion parents (1000), 8 children each")
    p.add_argument(
        "--no-verifiers", action="store_true",
        help="skip the verifiers arms (their ratios are then missed targets: use with --no-check)",
    )  # fmt: skip
    p.add_argument("--only", choices=SECTIONS, action="append", help="run only these sections (and their targets)")
    # internal: child-process entry points
    p.add_argument("--section", choices=SECTIONS, help=argparse.SUPPRESS)
    p.add_argument("--section-json", help=argparse.SUPPRESS)
    p.add_argument("--serve", choices=["single", "tools"], help=argparse.SUPPRESS)
    a = bench.parse_args(argv)

    scale_n = a.scale_n or (QUICK_SCALE_N if a.quick else 100_000)
    http_n = a.http_n or (500 if a.quick else 5000)
    parents = a.parents or (100 if a.quick else 1000)
    lo, hi = (float(x) for x in a.latency.split(","))

    if a.serve:
        if a.serve == "tools":
            serve_tools_server()
        else:
            from swarmgym.testing.fake_server import serve

            serve(0, default_text="42", stop_on_stdin_eof=True)
        return 0
    if a.section:
        if a.section == "scale":
            res = section_scale(scale_n, lo, hi)
        elif a.section == "http":
            res = section_http(http_n, a.concurrency, a.no_verifiers)
        else:
            res = section_recursion(parents, 8)
        Path(a.section_json).write_text(json.dumps(res))
        return 0

    common = ["--scale-n", str(scale_n), "--latency", a.latency, "--http-n", str(http_n)]
    common += ["--concurrency", str(a.concurrency), "--parents", str(parents)]
    if a.no_verifiers:
        common.append("--no-verifiers")

    def measure(res: dict[str, Any]) -> None:
        res["load_before"] = _load()
        for s in sections:
            r = _run_section(["--section", s, *common])
            bench.record_arm(s, r.pop("section_error", None))
            for arm, err in r.pop("arm_errors", {}).items():
                bench.record_arm(arm, err)
            res.update(r)
        res["load_after"] = _load()

    title = f"swarmgym rollout benchmark ({', '.join(sections)}; scale N={scale_n:,}, HTTP N={http_n:,})"
    return bench.run(measure, title=title)


if __name__ == "__main__":
    raise SystemExit(main())
