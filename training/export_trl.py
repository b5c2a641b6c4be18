"""TRL adapter: swarmgym episodes as the output of a ``GRPOTrainer`` ``rollout_func`` (TRL ≥ 1.16).

TRL's hook is ``GRPOTrainer(..., rollout_func=f)`` with ``f(prompts, trainer) -> dict``: required keys
``prompt_ids``, ``completion_ids`` and ``logprobs`` (one float per completion token); an ``env_mask`` key
(1 = model token, 0 = environment token) becomes the loss mask; every other key is forwarded to the reward
functions as a keyword argument, one value per completion. A multi-turn episode maps onto it as: the first
prompt → ``prompt_ids``; everything after it (sampled turns and the tool/user tokens between them) →
``completion_ids``, with ``env_mask`` marking which of those tokens the model sampled. The hook is marked
experimental by TRL; this module touches only its dict contract, so it does not import TRL.

Example (runnable without TRL; with TRL pass ``rollout_func=rollout`` and ``reward_funcs=[env_reward]``):
    >>> from swarmgym.wire import Completion, Message, Trajectory
    >>> c0 = Completion(message=Message(role="assistant", content="a"), prompt_ids=[1, 2],
    ...                 completion_ids=[3, 4], logprobs=[-0.5, -0.25], token_exact=True)
    >>> c1 = Completion(message=Message(role="assistant", content="b"), prompt_ids=[1, 2, 3, 4, 9],
    ...                 completion_ids=[5], logprobs=[-1.0], token_exact=True)
    >>> episode = Trajectory(task_id="t1", reward=1.0, completions=[c0, c1])
    >>> out = to_trl_rollout([episode])
    >>> out["prompt_ids"], out["completion_ids"], out["env_mask"], out["logprobs"]
    ([[1, 2]], [[3, 4, 9, 5]], [[1, 1, 0, 1]], [[-0.5, -0.25, 0.0, -1.0]])
    >>> rollout = make_rollout_func(lambda prompts, trainer: [episode for _ in prompts])
    >>> env_reward(completions=["..."], **{k: v for k, v in rollout(["q"], None).items() if k == "env_reward"})
    [1.0]
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

from ..errors import ConfigError
from ..wire import Trajectory
from .samples import trajectory_samples

__all__ = ["to_trl_rollout", "make_rollout_func", "env_reward"]


def to_trl_rollout(
    trajectories: Sequence[Trajectory], *, require_exact: bool = True, max_completion_length: int | None = None
) -> dict[str, list[Any]]:
    """One TRL rollout row per trajectory (pass the main trajectory of each episode, in prompt order).

    Args:
        trajectories: the episodes, one per prompt TRL handed over.
        require_exact: refuse completions that are not token-exact.
        max_completion_length: cut each row's completion (sampled + environment tokens) to TRL's
            ``max_completion_length``, so an over-long multi-turn episode keeps the trainer's row width.

    Returns:
        ``prompt_ids``, ``completion_ids``, ``logprobs``, ``env_mask`` (TRL's keys) plus ``env_reward``,
        ``num_turns`` and ``trajectory_id`` for reward functions and logging. A frozen trajectory gives a row
        with an all-zero ``env_mask``.

    Raises:
        TokenDriftError: a trajectory is not token-exact or its turns do not chain (TRL needs one sequence
            per completion, so drift cannot be split here).
        ConfigError: a trajectory has no completion (an empty row would turn TRL's padded ids float).
    """
    keys = ("prompt_ids", "completion_ids", "logprobs", "env_mask", "env_reward", "num_turns", "trajectory_id")
    out: dict[str, list[Any]] = {k: [] for k in keys}
    for traj in trajectories:
        (s,) = trajectory_samples(traj, require_exact=require_exact, include_frozen=True) or [None]
        if s is None:
            # An empty row becomes torch.tensor([]) (float32) in TRL and turns the padded ids float: refuse it.
            raise ConfigError(
                f"trajectory {traj.id} has no completion (the episode ended before the model was called); "
                "TRL needs at least one completion token per row: rerun or drop such episodes in run()"
            )
        p = s.prompt_len
        end = None if max_completion_length is None else p + max_completion_length
        out["prompt_ids"].append(s.ids[:p])
        out["completion_ids"].append(s.ids[p:end])
        out["logprobs"].append(s.logprobs[p:end])
        out["env_mask"].append(s.loss_mask[p:end])
        out["env_reward"].append(float(traj.reward))
        out["num_turns"].append(traj.num_turns)
        out["trajectory_id"].append(traj.id)
    return out


def make_rollout_func(
    run: Callable[[list[Any], Any], Any], *, require_exact: bool = True
) -> Callable[[list[Any], Any], dict[str, list[Any]]]:
    """Wrap ``run(prompts, trainer) -> list[Trajectory]`` (sync or async) as a TRL ``rollout_func``.

    ``run`` must return exactly one main trajectory per element of ``prompts``, in order. TRL already repeats
    each prompt ``num_generations`` times before calling the hook, so do not multiply them again (extra rows
    break TRL's row-by-row merge). An async ``run`` is driven with ``anyio.run`` — TRL calls the hook
    synchronously.
    """
    if not callable(run):
        raise ConfigError("make_rollout_func needs a callable run(prompts, trainer) -> list[Trajectory]")

    def rollout_func(prompts: list[Any], trainer: Any) -> dict[str, list[Any]]:
        result = run(prompts, trainer)
        if inspect.isawaitable(result):
            import anyio

            async def _await() -> Any:
                return await result

            result = anyio.run(_await)
        return to_trl_rollout(list(result), require_exact=require_exact)

    return rollout_func


def env_reward(completions: Sequence[Any], env_reward: Sequence[float] | None = None, **_: Any) -> list[float]:
    """A TRL reward function returning swarmgym's own episode rewards (the ``env_reward`` rollout key)."""
    if env_reward is None:
        raise ConfigError("env_reward needs the 'env_reward' key: use it with make_rollout_func / to_trl_rollout")
    return [float(r) for r in env_reward]
