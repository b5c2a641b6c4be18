"""Critical steps and total steps on hand-built trajectory trees."""

from __future__ import annotations

import pytest
from swarmgym.toolsets.swarm_metrics import (
    StepCounts,
    critical_steps,
    steps_from_records,
    tree_steps,
)
from swarmgym.wire import Message, Trajectory


def agent(turns: int, tid: str, parent: str | None = None, launches: dict[int, list[str]] | None = None) -> Trajectory:
    """A trajectory with `turns` assistant turns; `launches` maps turn -> child ids launched there."""
    msgs = [Message(role="user", content="task")]
    msgs += [Message(role="assistant", content=f"step {i}") for i in range(turns)]
    records = [{"turn": t, "trajectory_id": c} for t, cs in (launches or {}).items() for c in cs]
    return Trajectory(id=tid, parent_id=parent, messages=msgs, info={"subagents": records} if records else {})


def test_formula():
    assert critical_steps([]) == 0
    assert critical_steps([(1, [])] * 4) == 4
    assert critical_steps([(1, [3, 5, 2]), (1, [4]), (1, [])]) == (1 + 5) + (1 + 4) + 1
    assert critical_steps([(2, [1, 1])]) == 3


def test_single_agent_tree():
    assert tree_steps(agent(7, "root"), []) == StepCounts(7, 7)


def test_two_stages_of_parallel_subagents():
    # turn 1 launches a, b, c (3, 5, 2 steps); turn 2 launches d (4 steps); turn 3 answers
    root = agent(3, "root", launches={1: ["a", "b", "c"], 2: ["d"]})
    kids = [agent(3, "a", "root"), agent(5, "b", "root"), agent(2, "c", "root"), agent(4, "d", "root")]
    assert tree_steps(root, kids) == StepCounts(critical=(1 + 5) + (1 + 4) + 1, total=3 + 3 + 5 + 2 + 4)
    # a mapping works as well as a list
    assert tree_steps(root, {k.id: k for k in kids}) == StepCounts(12, 17)


def test_nested_swarm_uses_the_childs_own_critical_path():
    # child b is itself an orchestrator: 2 turns, its turn 1 launches x (6) and y (1)
    root = agent(2, "root", launches={1: ["a", "b"]})
    b = agent(2, "b", "root", launches={1: ["x", "y"]})
    kids = [agent(4, "a", "root"), b, agent(6, "x", "b"), agent(1, "y", "b")]
    b_crit = (1 + 6) + 1
    assert tree_steps(b, kids) == StepCounts(b_crit, 2 + 6 + 1)
    assert tree_steps(root, kids) == StepCounts((1 + max(4, b_crit)) + 1, 2 + 4 + 9)


def test_records_alone_and_missing_records():
    recs = [{"turn": 1, "steps": 3}, {"turn": 1, "steps": 8}, {"turn": 2, "critical_steps": 2, "total_steps": 5}]
    assert steps_from_records(3, recs) == StepCounts((1 + 8) + (1 + 2) + 1, 3 + 3 + 8 + 5)
    root = agent(2, "root")
    with pytest.raises(ValueError, match="child a of root has no launch record"):
        tree_steps(root, [agent(1, "a", "root")])
