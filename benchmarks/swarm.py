"""Agent Swarm on WideSearch: single agent vs swarm (critical steps, total steps, item-F1, wall time), and one
episode at full scale (100 sub-agents, ≥ 1,500 tool calls: wall time, peak RSS).

The agents are the SCRIPTED BASELINES of :mod:`swarmgym.envs.widesearch_scripted` (the sequential single
agent and the scripted orchestrator whose sub-agents run the same single-agent logic), driven two ways:

- ``scripted``: in-process ``OraclePolicy`` with a simulated model latency per call;
- ``fake_server``: the same decisions served over HTTP by ``FakeOpenAIServer`` (with the same simulated
  latency) and called through ``OpenAIPolicy``, as a real model server would be.

Both modes run the same tasks; ``--concurrency`` episodes are in flight at once. Wall time is per episode
(``metrics["wall_s"]``), so it mirrors latency, which critical steps predict. Ratios are single / swarm
within one run.

Run: ``python -m benchmarks.swarm [--tasks 20] [--latency 0.05] [--json FILE]`` or ``swarmgym bench swarm``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import time
from typing import Any

__all__ = ["main", "run"]


def _rss_mb() -> float:
    """Current resident set size (Linux /proc; 0 elsewhere)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def _episodes(env: Any, policy: Any, tasks: list[Any], concurrency: int) -> list[Any]:
    import anyio
    from swarmgym.loop import run_episode

    out: list[Any] = [None] * len(tasks)
    sem = anyio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with sem:
            out[i] = await run_episode(env, policy, tasks[i])

    async with anyio.create_task_group() as tg:
        for i in range(len(tasks)):
            tg.start_soon(one, i)
    return out


def _summary(trajs: list[Any]) -> dict[str, float]:
    def mean(xs: list[float]) -> float:
        return round(statistics.fmean(xs), 4) if xs else 0.0

    return {
        "critical_steps": mean([t.metrics.get("critical_steps", t.metrics["turns"]) for t in trajs]),
        "total_steps": mean([t.metrics.get("total_steps", t.metrics["turns"]) for t in trajs]),
        "tool_calls": mean([t.metrics["tool_calls"] + t.metrics.get("subagent_tool_calls", 0.0) for t in trajs]),
        "item_f1": mean([t.judge.facets.get("item_f1", 0.0) if t.judge else 0.0 for t in trajs]),
        "row_f1": mean([t.judge.facets.get("row_f1", 0.0) if t.judge else 0.0 for t in trajs]),
        "wall_s": mean([t.metrics["wall_s"] for t in trajs]),
        "ok": float(sum(t.status == "ok" for t in trajs)),
    }


async def _compare(mode: str, n_tasks: int, latency: float, concurrency: int) -> dict[str, dict[str, float]]:
    from swarmgym.envs.widesearch import make_env, make_swarm_env
    from swarmgym.policies.base import PolicyRouter
    from swarmgym.policies.scripted import OraclePolicy

    single_env = make_env()
    tasks = [single_env.tasks[i] for i in range(n_tasks)]
    if mode == "scripted":
        single_pol: Any = OraclePolicy(latency=latency, seed=1)
        router = PolicyRouter(OraclePolicy(latency=latency, seed=2))
        swarm_env = make_swarm_env(policies=router)
        single = await _episodes(single_env, single_pol, tasks, concurrency)
        swarm = await _episodes(swarm_env, router, tasks, concurrency)
    else:
        from swarmgym.envs.widesearch_scripted import fake_server_responder
        from swarmgym.policies.openai_http import OpenAIPolicy
        from swarmgym.testing.fake_server import FakeOpenAIServer

        server = FakeOpenAIServer(responder=fake_server_responder(), latency=latency, record=False)
        async with server as srv, OpenAIPolicy(srv.base_url, "fake-model") as model:
            router = PolicyRouter(model, roles={"subagent": model})
            swarm_env = make_swarm_env(policies=router)
            single = await _episodes(single_env, model, tasks, concurrency)
            swarm = await _episodes(swarm_env, router, tasks, concurrency)
    return {"single": _summary(single), "swarm": _summary(swarm)}


async def _scale(n_entities: int, latency: float, mode: str) -> dict[str, float]:
    from swarmgym.envs.widesearch import make_swarm_env
    from swarmgym.envs.widesearch_data import get_world, scale_task
    from swarmgym.loop import run_episode
    from swarmgym.policies.base import PolicyRouter
    from swarmgym.policies.scripted import OraclePolicy

    task = scale_task(get_world(0), n_entities)
    rss0 = _rss_mb()
    t0 = time.perf_counter()
    if mode == "scripted":
        router = PolicyRouter(OraclePolicy(latency=latency, seed=3))
        env = make_swarm_env(policies=router, entities_per_agent=1, max_subagents=100)
        traj = await run_episode(env, router, task)
    else:
        from swarmgym.envs.widesearch_scripted import fake_server_responder
        from swarmgym.policies.openai_http import OpenAIPolicy
        from swarmgym.testing.fake_server import FakeOpenAIServer

        responder = fake_server_responder(entities_per_agent=1, max_agents=100)
        server = FakeOpenAIServer(responder=responder, latency=latency, record=False)
        async with server as srv, OpenAIPolicy(srv.base_url, "fake-model") as model:
            router = PolicyRouter(model, roles={"subagent": model})
            env = make_swarm_env(policies=router, entities_per_agent=1, max_subagents=100)
            traj = await run_episode(env, router, task)
    wall = time.perf_counter() - t0
    m = traj.metrics
    return {
        "status_ok": float(traj.status == "ok"),
        "entities": float(task.metadata["n_entities"]),
        "subagents": m.get("subagents", 0.0),
        "subagents_finished": m.get("subagents_finished", 0.0),
        "max_parallel_subagents": m.get("max_parallel_subagents", 0.0),
        "tool_calls": m["tool_calls"] + m.get("subagent_tool_calls", 0.0),
        "critical_steps": m.get("critical_steps", 0.0),
        "total_steps": m.get("total_steps", 0.0),
        "item_f1": traj.judge.facets.get("item_f1", 0.0) if traj.judge else 0.0,
        "wall_s": round(wall, 3),
        "rss_before_mb": round(rss0, 1),
        "rss_after_mb": round(_rss_mb(), 1),
    }


def run(tasks: int = 20, latency: float = 0.05, concurrency: int = 4, scale_entities: int = 500,
        fake_server: bool = True) -> dict[str, Any]:
    """Run the comparison (both modes) and the scale episode; returns the JSON figures."""
    import anyio

    async def go() -> dict[str, Any]:
        from swarmgym.envs.widesearch_data import get_world

        t0 = time.perf_counter()
        get_world(0).index.build()
        res: dict[str, Any] = {"corpus_build_s": round(time.perf_counter() - t0, 3),
                               "corpus_pages": len(get_world(0).docs)}
        # the scale episodes run first, so the process peak right after them is their peak
        res["scale"] = await _scale(scale_entities, latency, "scripted")
        res["scale"]["peak_rss_mb_so_far"] = round(_peak_rss_mb(), 1)
        if fake_server:
            res["scale_fake_server"] = await _scale(scale_entities, latency, "fake_server")
            res["scale_fake_server"]["peak_rss_mb_so_far"] = round(_peak_rss_mb(), 1)
        res["scripted"] = await _compare("scripted", tasks, latency, concurrency)
        if fake_server:
            res["fake_server"] = await _compare("fake_server", tasks, latency, concurrency)
        return res

    raw = anyio.run(go)
    s, w = raw["scripted"]["single"], raw["scripted"]["swarm"]
    out: dict[str, Any] = {
        "tasks": tasks,
        "latency_s": latency,
        "concurrency": concurrency,
        "cpu_count": os.cpu_count(),
        "critical_steps_single": s["critical_steps"],
        "critical_steps_swarm": w["critical_steps"],
        "critical_steps_ratio": round(s["critical_steps"] / w["critical_steps"], 3) if w["critical_steps"] else 0.0,
        "total_steps_single": s["total_steps"],
        "total_steps_swarm": w["total_steps"],
        "item_f1_single": s["item_f1"],
        "item_f1_swarm": w["item_f1"],
        "wall_s_single": s["wall_s"],
        "wall_s_swarm": w["wall_s"],
        "wall_ratio": round(s["wall_s"] / w["wall_s"], 3) if w["wall_s"] else 0.0,
        "scale_subagents": raw["scale"]["subagents"],
        "scale_tool_calls": raw["scale"]["tool_calls"],
        "scale_wall_s": raw["scale"]["wall_s"],
        "scale_peak_rss_mb": raw["scale"]["peak_rss_mb_so_far"],
        "peak_rss_mb": round(_peak_rss_mb(), 1),
        "detail": raw,
    }
    if "fake_server" in raw:
        fs, fw = raw["fake_server"]["single"], raw["fake_server"]["swarm"]
        out.update({
            "fake_server_critical_steps_single": fs["critical_steps"],
            "fake_server_critical_steps_swarm": fw["critical_steps"],
            "fake_server_item_f1_single": fs["item_f1"],
            "fake_server_item_f1_swarm": fw["item_f1"],
            "fake_server_wall_s_single": fs["wall_s"],
            "fake_server_wall_s_swarm": fw["wall_s"],
            "fake_server_wall_ratio": round(fs["wall_s"] / fw["wall_s"], 3) if fw["wall_s"] else 0.0,
            "scale_fake_server_wall_s": raw["scale_fake_server"]["wall_s"],
            "scale_fake_server_peak_rss_mb": raw["scale_fake_server"]["peak_rss_mb_so_far"],
        })
    return out


def main(argv: list[str] | None = None) -> int:
    """Command line: print tables and optionally write the figures as JSON."""
    p = argparse.ArgumentParser(prog="swarmgym bench swarm", description=__doc__.split("\n")[0])
    p.add_argument("--tasks", type=int, default=20, help="WideSearch tasks per arm (default 20)")
    p.add_argument("--latency", type=float, default=0.05, help="simulated model latency per call, s (default 0.05)")
    p.add_argument("--concurrency", type=int, default=4, help="episodes in flight (default 4)")
    p.add_argument("--scale-entities", type=int, default=500, help="entities in the scale episode (default 500)")
    p.add_argument("--no-fake-server", action="store_true", help="skip the runs through the fake HTTP server")
    p.add_argument("--json", metavar="FILE", help="write the results as JSON here")
    a = p.parse_args(argv)
    res = run(a.tasks, a.latency, a.concurrency, a.scale_entities, not a.no_fake_server)

    from rich.console import Console
    from rich.table import Table

    con = Console()
    t = Table(title=f"WideSearch, SCRIPTED BASELINES: single agent vs swarm ({a.tasks} tasks, "
                    f"{a.latency:g} s simulated latency per model call, means per episode)")
    for col in ("policy", "arm", "critical steps", "total steps", "tool calls", "item-F1", "row-F1", "wall s", "ok"):
        t.add_column(col, justify="left" if col in ("policy", "arm") else "right")
    for mode in ("scripted", "fake_server"):
        if mode not in res["detail"]:
            continue
        for arm in ("single", "swarm"):
            r = res["detail"][mode][arm]
            t.add_row(mode, arm, f"{r['critical_steps']:.1f}", f"{r['total_steps']:.1f}", f"{r['tool_calls']:.1f}",
                      f"{r['item_f1']:.3f}", f"{r['row_f1']:.3f}", f"{r['wall_s']:.2f}", f"{r['ok']:.0f}")
    con.print(t)
    con.print(f"critical-steps ratio single/swarm: {res['critical_steps_ratio']:.2f}x; "
              f"wall-time ratio: {res['wall_ratio']:.2f}x (scripted)"
              + (f", {res['fake_server_wall_ratio']:.2f}x (fake server)" if "fake_server_wall_ratio" in res else ""))
    t2 = Table(title="One orchestrator episode at full scale (scripted orchestrator, 1 entity per sub-agent)")
    t2.add_column("metric")
    for mode in ("scale", "scale_fake_server"):
        if mode in res["detail"]:
            t2.add_column(mode.replace("scale_", "").replace("scale", "scripted"), justify="right")
    keys = res["detail"]["scale"].keys()
    for k in keys:
        t2.add_row(k, *[f"{res['detail'][m][k]:,}" for m in ("scale", "scale_fake_server") if m in res["detail"]])
    con.print(t2)
    con.print(f"peak RSS of the whole benchmark process: {res['peak_rss_mb']:.0f} MB")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
