"""verl adapter: a swarmgym episode as verl's agent-loop output (verl ≥ 0.9, ``AgentLoopOutput``).

verl's agent loops return ``AgentLoopOutput(prompt_ids, response_ids, response_mask, response_logprobs,
reward_score, num_turns, metrics, extra_fields)``: ``response_ids`` hold the model's tokens and the tool tokens
between turns, ``response_mask`` is 1 on model tokens. :func:`to_verl_output` builds exactly those fields as a
dict (no verl import); :func:`to_agent_loop_output` wraps them in verl's class when verl is installed, for a
custom ``AgentLoopBase.run`` that drives a swarmgym env.

verl pads every prompt to ``rollout.prompt_length`` (left) and every response to ``rollout.response_length``
(right) and never truncates there, so a longer row breaks the batch. Both lengths are therefore required:
the response is cut the way verl's ``ToolAgentLoop`` stops (below), and a first prompt longer than
``prompt_length`` is refused (verl itself would left-truncate it, dropping the start of what the model saw).

Example:
    >>> from swarmgym.wire import Completion, Message, Trajectory
    >>> c0 = Completion(message=Message(role="assistant", content="a"), prompt_ids=[1, 2],
    ...                 completion_ids=[3], logprobs=[-0.5], token_exact=True, policy_version=4)
    >>> c1 = Completion(message=Message(role="assistant", content="b"), prompt_ids=[1, 2, 3, 8, 9],
    ...                 completion_ids=[4], logprobs=[-0.1], token_exact=True, policy_version=5)
    >>> msgs = [Message(role="user", content="q"), c0.message, Message(role="tool", content="r"), c1.message]
    >>> out = to_verl_output(Trajectory(reward=0.5, messages=msgs, completions=[c0, c1]),
    ...                      prompt_length=8, response_length=16)
    >>> out["prompt_ids"], out["response_ids"], out["response_mask"], out["reward_score"], out["num_turns"]
    ([1, 2], [3, 8, 9, 4], [1, 0, 0, 1], 0.5, 4)
    >>> out["extra_fields"]["min_global_steps"], out["extra_fields"]["max_global_steps"]
    (4, 5)
"""

from __future__ import annotations

from typing import Any

from ..errors import ConfigError
from ..wire import Trajectory
from .samples import TokenSample, trajectory_samples

__all__ = ["to_verl_output", "to_agent_loop_output"]


def to_verl_output(
    traj: Trajectory, *, prompt_length: int, response_length: int, require_exact: bool = True
) -> dict[str, Any]:
    """The ``AgentLoopOutput`` fields of one token-exact trajectory, as a dict.

    Args:
        traj: the episode (its completions must chain; see :func:`~swarmgym.training.samples.trajectory_samples`).
        prompt_length: verl's ``rollout.prompt_length``; a longer first prompt raises ConfigError.
        response_length: verl's ``rollout.response_length``; the response is cut as ``ToolAgentLoop`` cuts it.
        require_exact: refuse completions that are not token-exact.

    The cut and the turn count follow ``ToolAgentLoop`` (see :func:`_tool_agent_loop_cut`): a model turn
    that reaches the limit is kept and cut at it; tool/environment tokens that would reach it are dropped
    with everything after; ``num_turns`` = model turns + tool rounds kept + 1. ``extra_fields`` carry
    ``min_global_steps``/``max_global_steps`` (the oldest and newest policy version among the kept model
    turns, read by verl's async trainers), ``swarmgym_truncated``, the trajectory id, the judge facets and the
    policy version of each response token. The reward stays the whole episode's.
    """
    if prompt_length < 1 or response_length < 1:
        raise ConfigError(f"prompt_length and response_length must be >= 1, got {prompt_length}, {response_length}")
    samples = trajectory_samples(traj, require_exact=require_exact, include_frozen=True)
    if not samples:
        raise ConfigError(f"trajectory {traj.id} has no completion; verl needs at least one model turn")
    (s,) = samples  # drift raises TokenDriftError above: verl needs one continuous token sequence
    p = s.prompt_len
    if p > prompt_length:
        raise ConfigError(
            f"trajectory {traj.id}: first prompt has {p} tokens > prompt_length={prompt_length} (verl would "
            "left-truncate it, so the trainer would not see what the model saw); raise prompt_length or "
            "shorten the task prompt"
        )
    end, turns, rounds = _tool_agent_loop_cut(s, response_length)
    versions = [traj.completions[t].policy_version for t in range(turns)]
    return {
        "prompt_ids": s.ids[:p],
        "response_ids": s.ids[p:end],
        "response_mask": s.loss_mask[p:end],
        "response_logprobs": s.logprobs[p:end],
        "reward_score": float(traj.reward),
        "num_turns": turns + rounds + 1,
        "metrics": {},
        "extra_fields": {
            "min_global_steps": min(versions),
            "max_global_steps": max(versions),
            "swarmgym_truncated": end < len(s.ids),
            "swarmgym_trajectory_id": traj.id,
            "swarmgym_facets": dict(traj.judge.facets) if traj.judge else {},
            "swarmgym_policy_versions": s.policy_versions[p:end],
        },
    }


def _tool_agent_loop_cut(s: TokenSample, response_length: int) -> tuple[int, int, int]:
    """Where verl's ToolAgentLoop would have stopped on this sequence: (end index in ``s.ids``, model turns,
    tool rounds).

    Mirrors verl 0.9.1 ``verl/experimental/agent_loop/tool_agent_loop.py``: ``_handle_generating_state``
    increments ``assistant_turns`` for every generation, then terminates once
    ``len(response_mask) >= response_length``; ``_handle_processing_tools_state`` terminates *without* adding
    the tool tokens when they would make ``len(response_mask) >= response_length``, else increments
    ``user_turns`` (one per tool round, however many tool messages it has); ``run`` reports
    ``num_turns = user_turns + assistant_turns + 1`` and cuts ``response_ids[:response_length]``.
    """
    p = s.prompt_len
    turns = rounds = 0
    pos = p  # end of the kept response, in ``s.ids``
    for i, (start, stop) in enumerate(s.turn_spans):
        if i > 0:  # the tool/environment tokens between model turn i-1 and i: one tool round
            if start - p >= response_length:
                return pos, turns, rounds
            rounds += 1
        turns += 1
        pos = stop
        if stop - p >= response_length:
            return p + response_length, turns, rounds
    return pos, turns, rounds


def to_agent_loop_output(traj: Trajectory, **kwargs: Any) -> Any:
    """:func:`to_verl_output` as verl's ``AgentLoopOutput`` (needs verl installed)."""
    try:
        from verl.experimental.agent_loop.agent_loop import AgentLoopOutput
    except ImportError as e:
        raise ConfigError(
            "to_agent_loop_output needs verl importable (pip install verl, or see .ci/install-verl.sh)"
        ) from e
    return AgentLoopOutput(**to_verl_output(traj, **kwargs))
