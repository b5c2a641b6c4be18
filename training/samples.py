"""Trajectories → token-exact training samples with loss masks, sampler logprobs and policy versions.

A sample is the token sequence one trainable episode produced: the first prompt, then for every turn the
ids the model sampled (``loss_mask`` 1) and the template/environment ids between turns (``loss_mask`` 0).
Each turn's ``Completion.prompt_ids`` must extend the previous turn's prompt + sampled ids exactly — that is
what the model actually saw — and this is checked here, so a trainer never learns from ids nobody sampled.

In a swarm tree every trajectory is its own sample: a trainable sub-agent's episode is a sample of its own,
a frozen one's (``trainable=False``) yields none (or an all-zero mask with ``include_frozen=True``), and
what a child returned to its parent appears in the parent's sample as environment tokens (mask 0).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from ..errors import TokenDriftError
from ..wire import Trajectory

__all__ = ["TokenSample", "trajectory_samples", "tree_samples"]

ENV_VERSION = -1
"""Policy version recorded for tokens no policy sampled (prompt, template, tool output)."""


@dataclass(slots=True)
class TokenSample:
    """One training sequence, every per-token list aligned with ``ids``.

    Attributes:
        trajectory_id: the trajectory this sample comes from.
        group_id: GRPO group (the trajectory's ``group_id``, else its ``task_id``).
        ids: prompt, then sampled and environment tokens in order.
        loss_mask: 1 on tokens sampled by a trainable policy, 0 elsewhere.
        logprobs: sampler logprob of each sampled token (0.0 elsewhere).
        policy_versions: weight version that sampled each token (-1 for tokens nobody sampled).
        prompt_len: length of the first prompt (everything after it is the "response").
        reward: the trajectory's reward.
        turn_spans: ``(start, end)`` of each turn's sampled ids in ``ids``.
        segment: index of this sample within its trajectory (>0 only after drift with ``on_drift="split"``).
        trainable: whether the trajectory was trainable.
    """

    trajectory_id: str
    group_id: str
    ids: list[int]
    loss_mask: list[int]
    logprobs: list[float]
    policy_versions: list[int]
    prompt_len: int
    reward: float
    turn_spans: list[tuple[int, int]] = field(default_factory=list)
    segment: int = 0
    trainable: bool = True

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def num_sampled(self) -> int:
        """Number of tokens with loss."""
        return sum(self.loss_mask)


def trajectory_samples(
    traj: Trajectory,
    *,
    on_drift: Literal["raise", "split"] = "raise",
    require_exact: bool = True,
    include_frozen: bool = False,
) -> list[TokenSample]:
    """The training samples of one trajectory (one, unless drift splits it).

    Args:
        traj: a finished trajectory whose completions carry ``prompt_ids``/``completion_ids``.
        on_drift: when a turn's prompt does not extend the previous turn's ids, ``"raise"`` a
            TokenDriftError naming the turn, or ``"split"`` into a new sample from that turn on.
        require_exact: refuse completions not marked ``token_exact`` (ids re-tokenised from text).
        include_frozen: return an all-zero-mask sample for ``trainable=False`` trajectories instead of none.

    Raises:
        TokenDriftError: missing or inexact ids, misaligned logprobs, or (``on_drift="raise"``) a turn whose
            prompt is not an exact extension.
    """
    if not traj.trainable and not include_frozen:
        return []
    mask_value = 1 if traj.trainable else 0
    group = traj.group_id or traj.task_id
    samples: list[TokenSample] = []
    cur: TokenSample | None = None
    for t, c in enumerate(traj.completions):
        where = f"trajectory {traj.id} turn {t}"
        if c.prompt_ids is None or c.completion_ids is None:
            raise TokenDriftError(
                f"{where} has no token ids (a text-mode server?); use a token-mode policy for training data"
            )
        if require_exact and not c.token_exact:
            raise TokenDriftError(
                f"{where} is not token-exact (ids were re-tokenised from text); use a token-mode policy, or "
                "pass require_exact=False to accept approximate ids"
            )
        comp = c.completion_ids
        lps = c.logprobs if c.logprobs is not None else [0.0] * len(comp)
        if len(lps) != len(comp):
            raise TokenDriftError(f"{where}: {len(lps)} logprobs for {len(comp)} completion ids")
        prompt = c.prompt_ids
        if cur is not None:
            n = len(cur.ids)
            if len(prompt) >= n and prompt[:n] == cur.ids:
                _append(cur, prompt[n:], 0, None, ENV_VERSION)
            elif on_drift == "raise":
                raise TokenDriftError(
                    f"{where}: the prompt is not the previous prompt + sampled ids + new tokens "
                    f"(first difference at token {_first_diff(prompt, cur.ids)} of {n}); build prompts with "
                    "TokenizedConversation, or export with on_drift='split'"
                )
            else:
                samples.append(cur)
                cur = None
        if cur is None:
            cur = TokenSample(
                trajectory_id=traj.id,
                group_id=group,
                ids=[],
                loss_mask=[],
                logprobs=[],
                policy_versions=[],
                prompt_len=len(prompt),
                reward=traj.reward,
                segment=len(samples),
                trainable=traj.trainable,
            )
            _append(cur, prompt, 0, None, ENV_VERSION)
        start = len(cur.ids)
        _append(cur, comp, mask_value, lps, c.policy_version)
        cur.turn_spans.append((start, len(cur.ids)))
    if cur is not None:
        samples.append(cur)
    return samples


def tree_samples(
    trajectories: Iterable[Trajectory],
    *,
    on_drift: Literal["raise", "split"] = "raise",
    require_exact: bool = True,
    include_frozen: bool = False,
) -> list[TokenSample]:
    """Samples of every trajectory of a swarm tree (or any collection): one per trainable trajectory.

    Children are separate trajectories (their ``parent_id`` points up), so a trainable sub-agent yields its
    own sample and a frozen one yields none; their results are environment tokens in the parent's sample.
    """
    out: list[TokenSample] = []
    for traj in trajectories:
        out += trajectory_samples(
            traj, on_drift=on_drift, require_exact=require_exact, include_frozen=include_frozen
        )
    return out


def _append(s: TokenSample, ids: list[int], mask: int, lps: list[float] | None, version: int) -> None:
    n = len(ids)
    s.ids += ids
    s.loss_mask += [mask] * n
    s.logprobs += lps if lps is not None else [0.0] * n
    s.policy_versions += [version] * n


def _first_diff(a: list[int], b: list[int]) -> int:
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return min(len(a), len(b))
