"""Agent Swarm on WideSearch: the best single agent vs the swarm under the same limits, over task widths.

What is compared: one WideSearch table per setting (registries of companies × attribute columns, the
entities and answers fixed by the world's seed), solved by

- **single**: the batched single agent (:func:`~swarmgym.envs.widesearch_scripted.batched_agent_step`): it
  searches and opens in parallel (as many calls a turn as the cap allows and a round of results fits in a
  fraction of its window: one per 1,000 tokens of window), opens only the pages a column needs (learned
  from the first entity), writes facts into NOTE lines, and condenses its history with a ``Summary`` context
  strategy (a scripted summariser that keeps the notes; the latest round stays verbatim) past half its
  window;
- **swarm**: an orchestrator with the core toolset and the swarm tools (it finds the registries itself, notes
  their members, then splits the entities over as many sub-agents as one turn's call cap allows, and hides
  old tool results once past half its window) whose sub-agents run that same batched agent with the same
  context strategy.

Both are SCRIPTED BASELINES, not models. Every agent in both arms has the same limits: a context window
(``--window`` tokens of the conversation it is shown plus its tool schemas, estimated at 4 characters a
token; a request over it fails, as a real server's would, and the episode ends in ``error``), the same
per-turn call cap (``--calls-per-turn``, the orchestrator's ``assign_task`` calls included) and the same
step budget (``--steps``, the report's 100 for WideSearch: every tool invocation is a step).

The corpus is the WideSearch world with each entity page padded with prose (so a search snippet does not
show the facts and a page costs context), plus distracting "fan pages" that repeat an entity's name with
stale values; it is the same for every setting. Measured per arm: critical steps (per orchestrator turn its
own steps plus its slowest sub-agent's, tool invocations counted), total steps, item-F1, and also critical
*turns* (every turn one step: the measure under which batching calls helps a single agent).

Keys: ``critical_steps_single``, ``critical_steps_swarm``, ``total_steps_single``, ``total_steps_swarm``,
``item_f1_single``, ``item_f1_swarm`` (the widest setting) and ``sweep`` (every setting, both arms).

A last arm runs one orchestrator episode at full scale (WideSearch-Swarm-v0's scripted orchestrator, one
entity per sub-agent, 100 sub-agents, ≥ 1,500 tool calls): ``scale_*`` keys (wall time, peak RSS).

With ``--real-subagent smollm2`` a last arm puts a REAL model (HFPolicy on SmolLM2-135M-Instruct) in every
sub-agent seat of the scripted orchestrator on small tasks (``real_*`` keys, no target): measured once here
(1 task, 8 sub-agents, greedy, 96 tokens a call): item-F1 0.667, every sub-agent answered in one step without
a single tool call, so the Name column (which the orchestrator notes itself) was right and the attribute
column wrong; 257 s wall on a loaded 2-core machine. A 135M model does not use the search tools.

Run: ``python -m benchmarks.swarm [--quick] [--json FILE] [--real-subagent MODEL]`` or ``swarmgym bench swarm``.
"""

from __future__ import annotations

import json
import random
import time
from typing import Any

from benchmarks._report import Bench, Target

__all__ = ["main", "run_setting"]

# the widest setting's claims; each can fail (see the README for what was measured)
TARGETS = [
    Target("critical_steps_ratio", ">=", 1.0, what="single / swarm critical steps at the widest setting"),
    Target("item_f1_swarm_minus_single", ">=", 0.0, what="the swarm's item-F1 is not below the single agent's"),
    Target("item_f1_single_narrowest", "==", 1.0, what="the single baseline solves the narrowest setting"),
    Target("scale_subagents", ">=", 100, what="sub-agents in the full-scale episode"),
    Target("scale_item_f1", "==", 1.0, what="item-F1 of the full-scale episode"),
]

ATTRS = ["Founded", "Employees", "CEO", "Revenue", "Ticker", "Founder", "Headquarters"]
"""Company attributes in the order the sweep adds them (profile and history pages alternate)."""

SETTINGS = [(1, 1), (1, 3), (2, 3), (4, 5), (8, 7)]
"""(registries, attribute columns) per setting, narrowest first."""

_FILLER = (
    "Local newspapers have covered its affairs for decades", "Visitors often remark on the surrounding streets",
    "Several archives keep letters and photographs about it", "Its name appears in many regional almanacs",
    "Historians disagree about some details of its early years", "A small museum exhibition once featured it",
    "Annual reports are published in the national language", "Its staff describe a long tradition of craft",
)


def _corpus(world: Any, entities: list[str], pad_chars: int) -> list[dict[str, str]]:
    """The world's pages, entity pages padded with prose before their facts, plus a distracting fan page
    (the name three times, stale values) for each of ``entities``."""
    docs = []
    for d in world.docs:
        text = d["text"]
        if d["id"][0] in "ph":
            rng = random.Random(d["id"])
            filler = ". ".join(rng.choice(_FILLER) for _ in range(pad_chars // 48)) + "."
            head, sep, tail = text.partition("\n\n")
            text = f"{head} {filler}{sep}{tail}"
        docs.append({**d, "text": text})
    for i, name in enumerate(entities):
        e = world.entities[name]
        stale = "\n".join(f"{k}: {_stale(v)}" for k, v in list(e.attrs.items())[:3])
        docs.append({"id": f"fan{i:05d}", "title": f"{name} fan page",
                     "text": f"Fans of {name} collect trivia about {name} here. Everything about {name}, "
                             f"some of it out of date.\n\nTrivia\n{stale}"})
    return docs


def _stale(v: str) -> str:
    digits = [c for c in v if c.isdigit()]
    return v.replace(digits[0], str((int(digits[0]) + 3) % 10), 1) if digits else f"formerly {v}"


class Windowed:
    """A policy with a context window: a request whose messages and tool schemas exceed ``window`` tokens
    fails like an over-long request to a real server (a PolicyError: the episode ends in ``error``)."""

    def __init__(self, inner: Any, window: int) -> None:
        self.inner = inner
        self.window = window
        self.peak = 0
        self.overflows = 0

    async def complete(self, messages: Any, tools: Any, sampling: Any, *, ctx: Any = None) -> Any:
        from swarmgym.context import estimate_tokens
        from swarmgym.errors import PolicyError

        n = estimate_tokens(messages) + sum(len(json.dumps(t.parameters)) + len(t.description) for t in tools) // 4
        self.peak = max(self.peak, n)
        if n > self.window:
            self.overflows += 1
            raise PolicyError(f"context window exceeded: the request has ~{n} tokens, the window {self.window}")
        return await self.inner.complete(messages, tools, sampling, ctx=ctx)


def _agent_env(index: Any, a: Any, summarizer: Any, tasks: Any = ()) -> Any:
    from swarmgym.context import Summary
    from swarmgym.envs.core import AgentEnv
    from swarmgym.envs.widesearch import widesearch_judge
    from swarmgym.envs.widesearch_scripted import SINGLE_SYSTEM, batched_agent_step
    from swarmgym.limits import EpisodeLimits
    from swarmgym.toolsets.search import SearchToolset

    c = a.calls_per_turn
    fan_out = max(1, min(c, a.window // 1000))  # its rounds of results fit in a fraction of its window
    return AgentEnv(
        list(tasks),
        toolsets=[SearchToolset(index)],
        judge=widesearch_judge(),
        system_prompt=SINGLE_SYSTEM,
        limits=EpisodeLimits(max_turns=a.steps, max_steps=a.steps, max_tool_calls_per_turn=c),
        context_strategy=Summary(summarizer, threshold_tokens=int(a.window * 0.5), keep_rounds=1),
        oracle=lambda task, messages: batched_agent_step(messages, calls_per_turn=fan_out, max_steps=a.steps),
        env_id="bench/WideSearch-batched",
    )


async def run_setting(task: Any, index: Any, a: Any) -> dict[str, dict[str, float]]:
    """Both arms on one task; per arm: critical/total steps and turns, item-F1, status, window figures."""
    from swarmgym.context import HideToolResults
    from swarmgym.envs.core import AgentEnv
    from swarmgym.envs.widesearch import widesearch_judge
    from swarmgym.envs.widesearch_scripted import ORCHESTRATOR_SYSTEM, notes_summary, orchestrator_step
    from swarmgym.limits import EpisodeLimits
    from swarmgym.loop import run_episode
    from swarmgym.policies.base import PolicyRouter
    from swarmgym.policies.scripted import OraclePolicy, ScriptedPolicy
    from swarmgym.toolsets.python import PythonToolset
    from swarmgym.toolsets.search import SearchToolset
    from swarmgym.toolsets.swarm import StepLimits, SwarmToolset
    from swarmgym.toolsets.swarm_metrics import steps_from_records

    def summarizer() -> Windowed:
        return Windowed(ScriptedPolicy(lambda m, t, c: notes_summary(m)), a.window)

    out: dict[str, dict[str, float]] = {}
    # single
    pol = Windowed(OraclePolicy(), a.window)
    sums = summarizer()
    t0 = time.perf_counter()
    traj = await run_episode(_agent_env(index, a, sums, [task]), pol, task)
    m = traj.metrics
    out["single"] = {
        "critical_steps": m["steps"], "total_steps": m["steps"], "critical_turns": m["turns"],
        "item_f1": traj.judge.facets.get("item_f1", 0.0) if traj.judge else 0.0,
        "ok": float(traj.status == "ok"), "agents": 1.0, "window_peak": float(max(pol.peak, sums.peak)),
        "window_errors": float(pol.overflows + sums.overflows), "wall_s": time.perf_counter() - t0,
    }
    # swarm
    c = a.calls_per_turn
    sub_pol, orch_pol, sub_sums = Windowed(OraclePolicy(), a.window), Windowed(OraclePolicy(), a.window), summarizer()
    sub_env = _agent_env(index, a, sub_sums)
    steps = StepLimits(orchestrator=a.steps, subagent=a.steps, orchestrator_calls_per_turn=c)
    swarm = SwarmToolset(sub_env, steps=steps, max_subagents=100)
    orch_env = AgentEnv(
        [task],
        toolsets=[SearchToolset(index), PythonToolset(), swarm],
        judge=widesearch_judge(),
        system_prompt=ORCHESTRATOR_SYSTEM,
        limits=steps.for_orchestrator(EpisodeLimits()),
        # its registry pages are hidden once it nears its window (the members are noted at dispatch)
        context_strategy=HideToolResults(threshold_tokens=a.window // 2, keep_rounds=1),
        # one dispatch turn: as many sub-agents as the call cap leaves after create_subagent
        oracle=lambda t, msgs: orchestrator_step(msgs, entities_per_agent=1, max_agents=min(100, c - 1)),
        env_id="bench/WideSearch-Swarm-batched",
    )
    router = PolicyRouter(orch_pol, roles={"subagent": sub_pol})
    orch_env.policies = router
    t0 = time.perf_counter()
    traj = await run_episode(orch_env, router, task)
    m = traj.metrics
    records = traj.info.get("subagents") or []
    crit_turns = steps_from_records(int(m["turns"]), [{"turn": r["turn"], "critical_steps": r["steps"],
                                                       "total_steps": r["steps"]} for r in records]).critical
    out["swarm"] = {
        "critical_steps": m.get("critical_steps", m["steps"]), "total_steps": m.get("total_steps", m["steps"]),
        "critical_turns": float(crit_turns),
        "item_f1": traj.judge.facets.get("item_f1", 0.0) if traj.judge else 0.0,
        "ok": float(traj.status == "ok"), "agents": 1.0 + len(records),
        "window_peak": float(max(orch_pol.peak, sub_pol.peak, sub_sums.peak)),
        "window_errors": float(orch_pol.overflows + sub_pol.overflows + sub_sums.overflows),
        "wall_s": time.perf_counter() - t0,
    }
    return out


async def _scale(n_entities: int) -> dict[str, float]:
    import resource

    from swarmgym.envs.widesearch import make_swarm_env
    from swarmgym.envs.widesearch_data import get_world, scale_task
    from swarmgym.loop import run_episode
    from swarmgym.policies.base import PolicyRouter
    from swarmgym.policies.scripted import OraclePolicy

    task = scale_task(get_world(0), n_entities)
    pol = OraclePolicy()
    router = PolicyRouter(pol, roles={"subagent": pol})
    env = make_swarm_env(policies=router, entities_per_agent=1, max_subagents=100)
    t0 = time.perf_counter()
    traj = await run_episode(env, router, task)
    m = traj.metrics
    return {
        "scale_entities": float(task.metadata["n_entities"]),
        "scale_subagents": m.get("subagents", 0.0),
        "scale_max_parallel_subagents": m.get("max_parallel_subagents", 0.0),
        "scale_tool_calls": m["tool_calls"] + m.get("subagent_tool_calls", 0.0),
        "scale_critical_steps": m.get("critical_steps", 0.0),
        "scale_item_f1": traj.judge.facets.get("item_f1", 0.0) if traj.judge else 0.0,
        "scale_wall_s": round(time.perf_counter() - t0, 3),
        "scale_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


async def _real_subagents(model: str, tasks: int, max_tokens: int) -> dict[str, float]:
    """The scripted orchestrator with a REAL model as every sub-agent (``HFPolicy`` on a fetched model, e.g.
    SmolLM2-135M): what a small real model does in the swarm's sub-agent role, whatever it does."""
    from swarmgym.envs.widesearch import make_swarm_env
    from swarmgym.envs.widesearch_data import get_world, make_task
    from swarmgym.loop import run_episode
    from swarmgym.policies.base import PolicyRouter
    from swarmgym.policies.hf import HFPolicy
    from swarmgym.policies.scripted import OraclePolicy
    from swarmgym.wire import SamplingParams

    world = get_world(0)
    sub = HFPolicy(model, default_max_tokens=max_tokens)
    router = PolicyRouter(OraclePolicy(), roles={"subagent": sub})
    env = make_swarm_env(policies=router, entities_per_agent=1, max_subagents=8)
    regs = sorted(label for label in world.groups if world.group_kind[label] == "company")
    f1, ok, subs, sub_calls, sub_tool_calls, crit, t0 = [], 0, 0.0, 0.0, 0.0, [], time.perf_counter()
    for i in range(tasks):
        task = make_task(world, [regs[i % len(regs)]], ["Name", *ATTRS[:1]], task_id=f"bench-swarm-real-{i}")
        traj = await run_episode(env, router, task, sampling=SamplingParams(temperature=0.0, max_tokens=max_tokens))
        m = traj.metrics
        f1.append(traj.judge.facets.get("item_f1", 0.0) if traj.judge else 0.0)
        ok += traj.status == "ok"
        subs += m.get("subagents", 0.0)
        sub_tool_calls += m.get("subagent_tool_calls", 0.0)
        crit.append(m.get("critical_steps", m["steps"]))
        sub_calls += sum(float(r.get("steps", 0)) for r in traj.info.get("subagents") or [])
    return {
        "real_subagent_model": model,
        "real_tasks": float(tasks),
        "real_item_f1": round(sum(f1) / len(f1), 3),
        "real_ok": float(ok),
        "real_subagents": subs,
        "real_subagent_tool_calls": sub_tool_calls,
        "real_subagent_steps": sub_calls,
        "real_critical_steps": round(sum(crit) / len(crit), 2),
        "real_wall_s": round(time.perf_counter() - t0, 1),
    }


def _task(world: Any, registries: list[str], n_attrs: int, i: int) -> Any:
    from swarmgym.envs.widesearch_data import make_task

    return make_task(world, registries, ["Name", *ATTRS[:n_attrs]], task_id=f"bench-swarm-{i}")


def main(argv: list[str] | None = None) -> int:
    bench = Bench("swarm", __doc__, TARGETS)
    p = bench.parser
    p.add_argument("--window", type=int, default=16384, help="context window of every agent, tokens (default 16384)")
    p.add_argument("--calls-per-turn", type=int, default=16, help="per-turn call cap of every agent (default 16)")
    p.add_argument("--steps", type=int, default=100, help="step budget of every agent (default 100)")
    p.add_argument("--pad", type=int, default=1200, help="characters of prose padded into each page (default 1200)")
    p.add_argument("--real-subagent", metavar="MODEL", default=None,
                   help="also run a real model (HFPolicy, e.g. smollm2; `swarmgym models fetch` it first) as every "
                        "sub-agent of the scripted orchestrator, and report what it does (no target)")
    p.add_argument("--real-tasks", type=int, default=3, help="tasks of the real-model arm (default 3)")
    a = bench.parse_args(argv)
    settings = SETTINGS[:3] if a.quick else SETTINGS

    def measure(res: dict[str, Any]) -> None:
        import anyio

        from swarmgym.envs.widesearch_data import get_world
        from swarmgym.toolsets.search import SearchIndex

        world = get_world(0)
        with bench.arm("scale"):  # first: the process's peak RSS right after it is its peak
            res.update(anyio.run(_scale, 500))
        regs = sorted(r for r in world.groups if world.group_kind[r] == "company")[: max(s[0] for s in SETTINGS)]
        entities = [n for r in regs for n in world.groups[r]]
        t0 = time.perf_counter()
        index = SearchIndex(_corpus(world, entities, a.pad))
        index.build()
        res.update({"corpus_pages": len(index), "corpus_build_s": round(time.perf_counter() - t0, 2),
                    "window_tokens": a.window, "calls_per_turn": a.calls_per_turn, "step_budget": a.steps})
        sweep = []
        for i, (n_regs, n_attrs) in enumerate(settings):
            task = _task(world, regs[:n_regs], n_attrs, i)
            with bench.arm(f"setting {i}"):
                arms = anyio.run(run_setting, task, index, a)
                n = task.metadata["n_entities"]
                sweep.append({"entities": n, "attributes": n_attrs, "width": n * n_attrs,
                              **{f"{k}_{arm}": round(v, 4) for arm in ("single", "swarm") for k, v in arms[arm].items()}})
        res["sweep"] = sweep
        if not sweep:
            return
        first, last = sweep[0], sweep[-1]
        for k in ("critical_steps", "total_steps", "critical_turns", "item_f1"):
            for arm in ("single", "swarm"):
                res[f"{k}_{arm}"] = last[f"{k}_{arm}"]
        res["critical_steps_ratio"] = round(last["critical_steps_single"] / last["critical_steps_swarm"], 3)
        res["item_f1_swarm_minus_single"] = round(last["item_f1_swarm"] - last["item_f1_single"], 4)
        res["item_f1_single_narrowest"] = first["item_f1_single"]
        res["widest"] = f"{last['entities']} entities x {last['attributes']} attributes"
        _print_sweep(sweep)
        if a.real_subagent:
            with bench.arm("real subagent"):
                res.update(anyio.run(_real_subagents, a.real_subagent, a.real_tasks, 96))

    title = (f"WideSearch single vs swarm, SCRIPTED BASELINES (window {a.window} tokens, "
             f"{a.calls_per_turn} calls/turn, {a.steps} steps per agent)")
    return bench.run(measure, title=title, hide=("sweep",))


def _print_sweep(sweep: list[dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title="sweep over task widths (same corpus; critical steps count tool invocations)")
    cols = ["entities", "attributes", "critical_steps_single", "critical_steps_swarm", "total_steps_single",
            "total_steps_swarm", "critical_turns_single", "critical_turns_swarm", "item_f1_single",
            "item_f1_swarm", "ok_single", "ok_swarm", "window_peak_single", "window_peak_swarm"]
    for c in cols:
        t.add_column(c.replace("_", " "), justify="right")
    for row in sweep:
        t.add_row(*[f"{row[c]:g}" if isinstance(row[c], float) else str(row[c]) for c in cols])
    Console().print(t)


if __name__ == "__main__":
    raise SystemExit(main())
