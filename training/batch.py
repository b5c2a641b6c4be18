"""Padded training batches from trajectories: numpy arrays, with a torch view on demand.

Alignment: every ``[B, L]`` array is aligned with ``input_ids``; ``old_logprobs[b, i]`` is the sampler's
logprob of ``input_ids[b, i]``, i.e. what a trainer gets from the logits at position ``i - 1``. Sequences are
right-padded (the usual layout for a training forward pass).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from typing import Any, Literal

import numpy as np

from ..errors import ConfigError
from ..wire import Trajectory
from .mismatch import group_advantages
from .samples import ENV_VERSION, TokenSample, tree_samples

__all__ = ["Batch", "to_batch"]


@dataclass(slots=True)
class Batch:
    """A padded batch (``B`` samples, ``L`` positions).

    Attributes:
        input_ids: ``[B, L]`` int64, padded with the tokenizer's pad id.
        attention_mask: ``[B, L]`` int64, 1 on real tokens.
        loss_mask: ``[B, L]`` float32, 1 on tokens sampled by a trainable policy.
        old_logprobs: ``[B, L]`` float32, sampler logprobs (0 off the loss mask).
        advantages: ``[B, L]`` float32, the sample's advantage on loss tokens, 0 elsewhere.
        policy_versions: ``[B, L]`` int64, version that sampled each token (-1 elsewhere and on padding).
        rewards: ``[B]`` float32.
        sample_advantages: ``[B]`` float32 (group-normalised rewards).
        group_ids: ``[B]`` int64 index into ``group_names``.
        prompt_lens: ``[B]`` int64, length of each sample's first prompt.
        truncated: ``[B]`` bool, the sample was longer than ``max_len`` and was cut.
        group_names: the group key of each group index.
        trajectory_ids: the trajectory of each row.
    """

    input_ids: np.ndarray
    attention_mask: np.ndarray
    loss_mask: np.ndarray
    old_logprobs: np.ndarray
    advantages: np.ndarray
    policy_versions: np.ndarray
    rewards: np.ndarray
    sample_advantages: np.ndarray
    group_ids: np.ndarray
    prompt_lens: np.ndarray
    truncated: np.ndarray
    group_names: list[str]
    trajectory_ids: list[str]

    def __len__(self) -> int:
        return int(self.input_ids.shape[0])

    def arrays(self) -> dict[str, np.ndarray]:
        """The array fields by name."""
        return {f.name: getattr(self, f.name) for f in fields(self) if isinstance(getattr(self, f.name), np.ndarray)}

    def to_torch(self, device: Any = "cpu") -> dict[str, Any]:
        """The array fields as torch tensors on ``device`` (needs torch)."""
        import torch

        return {k: torch.from_numpy(np.ascontiguousarray(v)).to(device) for k, v in self.arrays().items()}


def to_batch(
    trajectories: Iterable[Trajectory] | Sequence[TokenSample],
    tokenizer: Any = None,
    max_len: int | None = None,
    *,
    pad_id: int | None = None,
    normalize_std: bool = False,
    on_drift: Literal["raise", "split"] = "raise",
    on_overflow: Literal["truncate", "drop", "raise"] = "truncate",
    require_exact: bool = True,
) -> Batch:
    """Pad the token-exact samples of ``trajectories`` into arrays.

    Args:
        trajectories: trajectories (every trainable one in a swarm tree gives a sample; frozen ones none), or
            samples from :func:`~swarmgym.training.samples.tree_samples`.
        tokenizer: supplies the pad id (``pad_token_id``, else ``eos_token_id``) unless ``pad_id`` is given.
        max_len: pad/truncate to this length (default: the longest sample).
        pad_id: explicit pad id.
        normalize_std: GRPO std normalisation of advantages (default: mean baseline only).
        on_drift: see :func:`~swarmgym.training.samples.trajectory_samples`.
        on_overflow: a sample longer than ``max_len`` is cut (``truncated`` set, tokens past the cut lose
            their loss), dropped, or raises ConfigError.
        require_exact: refuse completions that are not token-exact.

    Returns:
        A :class:`Batch`.

    Example:
        >>> from swarmgym.wire import Completion, Message, Trajectory
        >>> def traj(reward):
        ...     c = Completion(message=Message(role="assistant", content="a"), prompt_ids=[5, 6],
        ...                    completion_ids=[7, 8], logprobs=[-0.1, -0.2], token_exact=True)
        ...     return Trajectory(task_id="t", reward=reward, completions=[c])
        >>> b = to_batch([traj(1.0), traj(0.0)], pad_id=0, max_len=6)
        >>> b.input_ids.tolist()[0], b.loss_mask.tolist()[0]
        ([5, 6, 7, 8, 0, 0], [0.0, 0.0, 1.0, 1.0, 0.0, 0.0])
        >>> b.advantages[:, 2].tolist(), b.group_ids.tolist()
        ([0.5, -0.5], [0, 0])
    """
    items = list(trajectories)
    if items and isinstance(items[0], TokenSample):
        samples: list[TokenSample] = items  # type: ignore[assignment]
    else:
        samples = tree_samples(items, on_drift=on_drift, require_exact=require_exact)  # type: ignore[arg-type]
    if pad_id is None:
        pad_id = getattr(tokenizer, "pad_token_id", None)
        if pad_id is None:
            pad_id = getattr(tokenizer, "eos_token_id", None)
        if pad_id is None:
            raise ConfigError("to_batch needs a pad id: pass a tokenizer with pad_token_id, or pad_id=...")
    longest = max((len(s) for s in samples), default=0)
    length = max_len if max_len is not None else longest
    if on_overflow == "drop":
        samples = [s for s in samples if len(s) <= length]
    elif on_overflow == "raise" and longest > length:
        raise ConfigError(f"a sample has {longest} tokens > max_len={length}; raise max_len or on_overflow='truncate'")

    b = len(samples)
    input_ids = np.full((b, length), pad_id, dtype=np.int64)
    attention = np.zeros((b, length), dtype=np.int64)
    loss = np.zeros((b, length), dtype=np.float32)
    old_lp = np.zeros((b, length), dtype=np.float32)
    versions = np.full((b, length), ENV_VERSION, dtype=np.int64)
    truncated = np.zeros(b, dtype=bool)
    for i, s in enumerate(samples):
        n = min(len(s), length)
        truncated[i] = len(s) > length
        input_ids[i, :n] = s.ids[:n]
        attention[i, :n] = 1
        loss[i, :n] = s.loss_mask[:n]
        old_lp[i, :n] = s.logprobs[:n]
        versions[i, :n] = s.policy_versions[:n]

    names: list[str] = []
    index: dict[str, int] = {}
    gids = np.zeros(b, dtype=np.int64)
    for i, s in enumerate(samples):
        gids[i] = index.setdefault(s.group_id, len(index))
        if gids[i] == len(names):
            names.append(s.group_id)
    rewards = np.asarray([s.reward for s in samples], dtype=np.float32)
    sample_adv = group_advantages(rewards, gids, normalize_std=normalize_std) if b else np.zeros(0, np.float32)
    return Batch(
        input_ids=input_ids,
        attention_mask=attention,
        loss_mask=loss,
        old_logprobs=old_lp,
        advantages=(sample_adv[:, None] * loss).astype(np.float32),
        policy_versions=versions,
        rewards=rewards,
        sample_advantages=sample_adv,
        group_ids=gids,
        prompt_lens=np.asarray([s.prompt_len for s in samples], dtype=np.int64),
        truncated=truncated,
        group_names=names,
        trajectory_ids=[s.trajectory_id for s in samples],
    )
