"""Critical steps and total steps of a swarm episode (the latency and cost measures of the K2.5 report).

A **step** is one environment interaction, not one turn: every tool invocation counts one, and a turn
without tool calls (the answer) counts one, so a turn that fans out five searches spends five steps
(:func:`own_steps`). ``assign_task`` calls are the exception: what they cost is their sub-agents' steps.
A **stage** is one turn of an orchestrator together with the sub-agents that turn launched in parallel.
Sub-agents run concurrently, so the latency of a stage is the orchestrator's own steps in that turn (1
for a turn that only dispatches) plus its *slowest* sub-agent::

    CriticalSteps = Σ_t ( S_main(t) + max_i S_sub,i(t) )        TotalSteps = Σ over every agent of its steps

A sub-agent that is itself an orchestrator contributes its own critical / total steps (recursively).

Where the launch turns come from: the :class:`~swarmgym.toolsets.swarm.SwarmToolset` appends one small
record per sub-agent to the orchestrator trajectory's ``info["subagents"]`` (``turn``, ``trajectory_id``,
``steps``, ``critical_steps``, ``total_steps`` …), so the measures can be recomputed later from stored
trajectories without keeping any sub-agent context in memory.

Example:
    >>> critical_steps([(1, []), (1, [3, 5, 2]), (1, [])])
    8
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..wire import Trajectory

__all__ = [
    "DISPATCH_TOOLS",
    "StepCounts",
    "critical_steps",
    "own_steps",
    "steps_from_records",
    "trajectory_steps",
    "tree_steps",
    "turn_steps",
]

DISPATCH_TOOLS = frozenset({"assign_task"})
"""Tool calls whose cost is their sub-agent's steps, not a step of the caller."""


@dataclass(frozen=True, slots=True)
class StepCounts:
    """Critical (latency) and total (cost) steps of an episode tree."""

    critical: int
    total: int


def critical_steps(stages: Iterable[tuple[int, Sequence[int]]]) -> int:
    """Σ over stages of ``main_steps + max(sub_steps)`` (a stage without sub-agents adds ``main_steps``).

    Args:
        stages: ``(S_main(t), [S_sub,1(t), S_sub,2(t), …])`` per stage.
    """
    return sum(int(m) + (max(subs) if subs else 0) for m, subs in stages)


def own_steps(message: Any) -> int:
    """Steps of one assistant turn: its tool calls other than ``assign_task`` (at least 1)."""
    n = 0
    for c in message.tool_calls or ():
        if c.name not in DISPATCH_TOOLS:
            n += 1
    return n or 1


def turn_steps(traj: Trajectory) -> list[int]:
    """The agent's own steps per turn: exact from ``info["turn_steps"]`` (written by an env with a step
    budget, which knows which calls it did not run), otherwise from the calls each completion asked for."""
    recorded = traj.info.get("turn_steps")
    if recorded is not None:
        return [int(x) for x in recorded]
    if traj.completions:
        return [own_steps(c.message) for c in traj.completions]
    t = traj.metrics.get("turns")
    return [1] * (int(t) if t is not None else traj.num_turns)


def steps_from_records(main_steps: int | Sequence[int], records: Iterable[Mapping[str, Any]]) -> StepCounts:
    """Critical and total steps from an orchestrator's own steps and its sub-agent records.

    Args:
        main_steps: the orchestrator's own steps per turn (:func:`turn_steps`), or a number of turns of one
            step each.
        records: one per sub-agent: ``turn`` (1-based orchestrator turn that launched it) and
            ``critical_steps`` / ``total_steps`` (or just ``steps``) of the sub-agent. Records launched at a
            turn beyond the last (cannot happen in a real episode) still count, in their own stage.
    """
    own = [1] * int(main_steps) if isinstance(main_steps, int) else [int(x) for x in main_steps]
    main_turns = len(own)
    per_turn: dict[int, int] = {}
    total = sum(own)
    for r in records:
        steps = int(r.get("steps", 0))
        crit = int(r.get("critical_steps", steps))
        total += int(r.get("total_steps", steps))
        t = int(r.get("turn", 0))
        per_turn[t] = max(per_turn.get(t, 0), crit)
    stages = [(own[t - 1], [per_turn[t]] if t in per_turn else []) for t in range(1, main_turns + 1)]
    stages += [(0, [c]) for t, c in per_turn.items() if not 1 <= t <= main_turns]
    return StepCounts(critical_steps(stages), total)


def trajectory_steps(traj: Trajectory) -> StepCounts:
    """Steps of one trajectory from its own steps and its sub-agent records (without sub-agents: its own
    steps, twice)."""
    return steps_from_records(turn_steps(traj), traj.info.get("subagents") or ())


def tree_steps(root: Trajectory, children: Mapping[str, Trajectory] | Iterable[Trajectory]) -> StepCounts:
    """Critical and total steps of a whole trajectory tree, recomputed from the trajectories themselves.

    Each sub-agent's steps come from its own trajectory (recursively, so nested swarms work); its launch
    turn comes from the parent's ``info["subagents"]`` record with the same ``trajectory_id``.

    Args:
        root: the orchestrator trajectory.
        children: every descendant trajectory, as a list or a mapping id → trajectory.

    Raises:
        ValueError: a child of ``root`` (``parent_id`` or ``root.children``) has no launch record.
    """
    by_id = dict(children) if isinstance(children, Mapping) else {c.id: c for c in children}
    kids: dict[str, list[Trajectory]] = {}
    for c in by_id.values():
        if c.parent_id is not None:
            kids.setdefault(c.parent_id, []).append(c)

    def visit(t: Trajectory) -> StepCounts:
        turn_of = {r["trajectory_id"]: int(r["turn"]) for r in t.info.get("subagents") or () if "trajectory_id" in r}
        mine = {c.id: c for c in kids.get(t.id, [])}
        mine.update({cid: by_id[cid] for cid in t.children if cid in by_id})
        records = []
        for cid, c in mine.items():
            if cid not in turn_of:
                raise ValueError(
                    f"child {cid} of {t.id} has no launch record in info['subagents']; "
                    "record {'trajectory_id': ..., 'turn': ...} for it"
                )
            s = visit(c)
            records.append({"turn": turn_of[cid], "critical_steps": s.critical, "total_steps": s.total})
        return steps_from_records(turn_steps(t), records)

    return visit(root)
