"""Generated trajectory store files of any size, written through the real ``TrajectoryStore`` (tests, the
viewer benchmark).

Each group of ``group_size`` top-level episodes shares a task; episodes vary in env, status, reward, judge
outcome and facets; every ``tree_every``-th episode is a swarm tree (an orchestrator with sub-agents, one of
them with its own sub-agent); every ``tokens_every``-th carries token-exact completions (ids, logprobs,
policy versions). ``inject`` puts a string (say, a ``<script>``) into assistant messages, tool arguments,
tool results, task ids and error texts of episodes whose index is divisible by 7.
"""

from __future__ import annotations

import os
import random
from typing import Any

from ..rollout.store import TrajectoryStore
from ..wire import Completion, JudgeResult, Message, ToolCall, ToolSpec, Trajectory

__all__ = ["ENVS", "write_synthetic_run"]

ENVS = ("swarmgym/Math-v0", "swarmgym/ToolMath-v0", "swarmgym/WideSearch-Swarm-v0")
_WORDS = "alpha beta gamma delta epsilon zeta theta kappa lambda sigma omega".split()


def _text(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(words))


def _episode(i: int, rng: random.Random, group_size: int, pad: int, inject: str, tokens: bool) -> Trajectory:
    env = ENVS[(i // group_size) % len(ENVS)]  # a group is one task of one env
    mark = inject if inject and i % 7 == 0 else ""
    task = f"task-{i // group_size:07d}{mark}"
    status = "error" if i % 53 == 0 else "truncated" if i % 31 == 0 else "ok"
    judge_outcome = "error" if i % 97 == 0 else "ok"
    reward = 0.0 if judge_outcome != "ok" or status == "error" else float(rng.random() < 0.4)
    call = ToolCall(id=f"c{i}", name="calculator", arguments={"expression": f"{i} + 1{mark}"})
    messages = [
        Message(role="system", content="Solve the task; use the calculator tool."),
        Message(role="user", content=f"What is {i} + 1? {_text(rng, pad)}"),
        Message(role="assistant", content=f"Let me compute.{mark}", tool_calls=[call]),
        Message(role="tool", content=f"{i + 1}{mark}", tool_call_id=call.id, name="calculator"),
        Message(role="assistant", content=f"The answer is \\boxed{{{i + 1}}}{mark}"),
    ]
    completions: list[Completion] = []
    if tokens:
        prompt = [rng.randrange(50, 1000) for _ in range(12)]
        for turn in (2, 4):
            ids = [rng.randrange(50, 1000) for _ in range(rng.randrange(3, 9))]
            completions.append(Completion(
                message=messages[turn], prompt_ids=list(prompt), completion_ids=ids,
                logprobs=[-rng.random() * 3 for _ in ids], policy_version=turn // 2 - 1 + i % 3,
                token_exact=True, latency_s=rng.random() * 0.5))
            prompt = prompt + ids + [rng.randrange(50, 1000) for _ in range(5)]
    else:
        completions = [Completion(message=messages[t], latency_s=rng.random() * 0.5) for t in (2, 4)]
    return Trajectory(
        id=f"traj_{i:09d}", task_id=task, sample_index=i % group_size, env_id=env, group_id=task,
        messages=messages, completions=completions,
        tools=[ToolSpec(name="calculator", description="evaluate an arithmetic expression")],
        reward=reward, status=status, error=(f"RuntimeError: step {i} failed{mark}" if status == "error" else None),
        judge=JudgeResult(reward=reward, facets={"correct": reward, "format": float(i % 2)}, outcome=judge_outcome,
                          info={"judge_error": "judge crashed"} if judge_outcome != "ok" else {}),
        metrics={"turns": 2.0, "tool_calls": 1.0, "wall_s": 0.5 + rng.random(), "model_time_s": rng.random() * 0.4,
                 "steps": 2.0},
        trainable=judge_outcome == "ok",
    )


def _tree(root: Trajectory, rng: random.Random, width: int) -> list[Trajectory]:
    """Children of ``root`` (returned first, as the manager stores them): ``width`` sub-agents, the first
    with a sub-agent of its own; ``root`` is updated with its children and tree metrics."""
    out: list[Trajectory] = []
    for k in range(width):
        steps = float(2 + (k * 3) % 7)
        child = Trajectory(
            id=f"{root.id}-s{k}", task_id=f"{root.task_id}/researcher-{k}", env_id="swarmgym/WideSearch-Subagent-v0",
            parent_id=root.id, role="subagent", trainable=False,
            messages=[Message(role="user", content=f"look up item {k}"),
                      Message(role="assistant", content=f"item {k}: {_text(rng, 5)}")],
            metrics={"turns": steps, "steps": steps, "wall_s": steps * 0.1})
        if k == 0:
            grand = Trajectory(
                id=f"{child.id}-s0", task_id=f"{child.task_id}/helper", env_id="swarmgym/WideSearch-Subagent-v0",
                parent_id=child.id, role="subagent", trainable=False,
                messages=[Message(role="assistant", content="helper done")],
                metrics={"turns": 9.0, "steps": 9.0, "wall_s": 0.9})
            out.append(grand)
            child.children.append(grand.id)
        out.append(child)
        root.children.append(child.id)
    root.role = "main"
    root.metrics["critical_steps"] = 2.0 + 9.0 + 2.0
    return out


def write_synthetic_run(
    path: str | os.PathLike[str], episodes: int, *, group_size: int = 4, pad_words: int = 20,
    tree_every: int = 10, tree_width: int = 3, tokens_every: int = 5, inject: str = "", seed: int = 0,
    append: bool = False, start: int = 0,
) -> dict[str, Any]:
    """Write ``episodes`` top-level episodes (plus tree children) to ``path``; returns counts.

    Args:
        pad_words: words of filler in each user message (sets the size of a line).
        append: add to an existing file (``resume=True``) instead of creating it.
        start: index of the first episode (to continue a file with new episodes).
    """
    rng = random.Random(seed + start)
    n_children = 0
    with TrajectoryStore(path, resume=append, overwrite=not append, fsync=False, batch_size=4096) as store:
        if not append:
            store.write_manifest({"env_id": "synthetic", "args": {"episodes": episodes}, "seed": seed})
        for i in range(start, start + episodes):
            t = _episode(i, rng, group_size, pad_words, inject, tokens_every > 0 and i % tokens_every == 0)
            if tree_every > 0 and i % tree_every == 0:
                kids = _tree(t, rng, tree_width)
                n_children += len(kids)
                for c in kids:
                    store.append(c)
            store.append(t)
            if store.needs_flush:
                store.flush()
    return {"episodes": episodes, "children": n_children, "bytes": os.path.getsize(path)}
