"""verl adapter: a swarmgym episode as verl's agent-loop output (verl ≥ 0.9, ``AgentLoopOutput``).

verl's agent loops return ``AgentLoopOutput(prompt_ids, response_ids, response_mask, response_logprobs,
reward_score, num_turns, metrics, extra_fields)``: ``response_ids`` hold the model's tokens and the tool tokens
between turns, ``response_mask`` is 1 on model tokens. :func:`to_verl_output` builds exactly those fields as a
dict (no verl import); :func:`to_agent_loop_output` wraps them in verl's class when verl is installed, for a
custom ``AgentLoopBase.run`` that drives a swarmgym env.

Example:
    >>> from swarmgym.wire import Completion, Message, Trajectory
    >>> c0 = Completion(message=Message(role="assistant", content="a"), prompt_ids=[1, 2],
    ...                 completion_ids=[3], logprobs=[-0.5], token_exact=True)
    >>> c1 = Completion(message=Message(role="assistant", content="b"), prompt_ids=[1, 2, 3, 8, 9],
    ...                 completion_ids=[4], logprobs=[-0.1], token_exact=True)
    >>> msgs = [Message(role="user", content="q"), c0.message, Message(role="tool", content="r"), c1.message]
    >>> out = to_verl_output(Trajectory(reward=0.5, messages=msgs, completions=[c0, c1]))
    >>> out["prompt_ids"], out["response_ids"], out["response_mask"], out["reward_score"], out["num_turns"]
    ([1, 2], [3, 8, 9, 4], [1, 0, 0, 1], 0.5, 3)
"""

from __future__ import annotations

from typing import Any

from ..errors import ConfigError
from ..wire import Trajectory
from .samples import trajectory_samples

__all__ = ["to_verl_output", "to_agent_loop_output"]


def to_verl_output(
    traj: Trajectory, *, response_length: int | None = None, require_exact: bool = True
) -> dict[str, Any]:
    """The ``AgentLoopOutput`` fields of one token-exact trajectory, as a dict.

    Args:
        traj: the episode (its completions must chain; see :func:`~swarmgym.training.samples.trajectory_samples`).
        response_length: cut the response to verl's configured ``response_length``.
        require_exact: refuse completions that are not token-exact.

    ``num_turns`` follows verl's count (user turns + assistant turns; the first prompt counts as one user
    turn). ``extra_fields`` carry the trajectory id, the judge facets and the policy version of each response
    token.
    """
    samples = trajectory_samples(traj, require_exact=require_exact, include_frozen=True)
    if len(samples) != 1:
        raise ConfigError(f"trajectory {traj.id} has {len(traj.completions)} completions; verl needs one or more")
    s = samples[0]
    p = s.prompt_len
    end = None if response_length is None else p + response_length
    users = sum(1 for m in traj.messages if m.role == "user")
    return {
        "prompt_ids": s.ids[:p],
        "response_ids": s.ids[p:end],
        "response_mask": s.loss_mask[p:end],
        "response_logprobs": s.logprobs[p:end],
        "reward_score": float(traj.reward),
        "num_turns": traj.num_turns + max(users, 1),
        "metrics": {},
        "extra_fields": {
            "swarmgym_trajectory_id": traj.id,
            "swarmgym_facets": dict(traj.judge.facets) if traj.judge else {},
            "swarmgym_policy_versions": s.policy_versions[p:end],
        },
    }


def to_agent_loop_output(traj: Trajectory, **kwargs: Any) -> Any:
    """:func:`to_verl_output` as verl's ``AgentLoopOutput`` (needs verl installed)."""
    try:
        from verl.experimental.agent_loop.agent_loop import AgentLoopOutput
    except ImportError as e:
        raise ConfigError("to_agent_loop_output needs verl installed (pip install verl)") from e
    return AgentLoopOutput(**to_verl_output(traj, **kwargs))
