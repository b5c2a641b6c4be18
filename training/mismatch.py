"""Train–inference mismatch correction (Kimi K2.5 style) and group-normalised advantages.

The sampler (vLLM, SGLang, an in-process model) and the trainer compute slightly different probabilities
for the same ids (kernels, precision, batch shapes). Per token, with ``r = exp(logp_trainer - logp_sampler)``:

- :func:`log_ratio` — the per-token log-ratio (0 where the mask is 0);
- :func:`token_clip_mask` — keeps only tokens with ``alpha <= r <= beta``; outside that band the token's
  policy-gradient term is zeroed *whatever the sign of its advantage* (unlike PPO clipping, which only stops
  one side), because such a token's sample is no longer evidence about the trained policy;
- :func:`truncated_importance_weights` — ``min(r, cap)``, a constant (no gradient) per-token weight;
- :func:`corrected_pg_loss` — the K2.5 token-level objective as a loss (see there): the band-masked,
  importance-weighted policy gradient plus the ``tau/2 * (log r)**2`` pull of the trainer towards the sampler.

Every function takes numpy arrays or torch tensors and returns the same kind (torch is imported only when a
tensor is passed). Shapes are ``[batch, seq]`` or ``[seq]``; masks are 0/1 of the same shape.

Example:
    >>> import numpy as np
    >>> trainer = np.log(np.array([0.5, 0.5, 0.9, 0.1]))
    >>> sampler = np.log(np.array([0.5, 0.1, 0.3, 0.5]))
    >>> mask = np.array([1, 1, 1, 0])
    >>> lr = log_ratio(trainer, sampler, mask)
    >>> np.round(np.exp(lr), 3).tolist()
    [1.0, 5.0, 3.0, 1.0]
    >>> token_clip_mask(lr, mask, alpha=0.5, beta=4.0).tolist()
    [1.0, 0.0, 1.0, 0.0]
    >>> truncated_importance_weights(lr, mask, cap=2.0).tolist()
    [1.0, 2.0, 2.0, 0.0]
    >>> group_advantages([1.0, 0.0, 1.0, 3.0], ["a", "a", "b", "b"]).tolist()
    [0.5, -0.5, -1.0, 1.0]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = [
    "log_ratio",
    "token_clip_mask",
    "truncated_importance_weights",
    "corrected_pg_loss",
    "mismatch_stats",
    "group_advantages",
]


def _is_torch(x: Any) -> bool:
    return type(x).__module__.startswith("torch")


def _float(x: Any, like: Any) -> Any:
    if _is_torch(like):
        import torch

        return x.to(torch.float32) if _is_torch(x) else torch.as_tensor(x, dtype=torch.float32, device=like.device)
    if _is_torch(x):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float32)


def log_ratio(trainer_logprobs: Any, sampler_logprobs: Any, mask: Any) -> Any:
    """``logp_trainer - logp_sampler`` per token, 0 where ``mask`` is 0."""
    m = _float(mask, trainer_logprobs)
    return (_float(trainer_logprobs, trainer_logprobs) - _float(sampler_logprobs, trainer_logprobs)) * m


def token_clip_mask(log_ratio: Any, mask: Any, *, alpha: float = 0.5, beta: float = 2.0) -> Any:
    """1.0 for masked-in tokens whose ratio ``exp(log_ratio)`` lies in ``[alpha, beta]``, else 0.0.

    Multiply the per-token loss by this mask: tokens outside the band get no gradient for either sign of
    the advantage. ``alpha``/``beta`` are ratios (K2.5 uses a band around 1, e.g. 0.5 and 2).
    """
    if not 0.0 < alpha <= 1.0 <= beta:
        from ..errors import ConfigError

        raise ConfigError(f"need 0 < alpha <= 1 <= beta, got alpha={alpha}, beta={beta}")
    m = _float(mask, log_ratio)
    lo, hi = float(np.log(alpha)), float(np.log(beta))
    inside = (log_ratio >= lo) & (log_ratio <= hi)
    return inside * m if _is_torch(log_ratio) else inside.astype(np.float32) * m


def truncated_importance_weights(log_ratio: Any, mask: Any, *, cap: float = 2.0) -> Any:
    """``min(exp(log_ratio), cap)`` per token (0 where masked out); no gradient flows through it."""
    m = _float(mask, log_ratio)
    if _is_torch(log_ratio):
        import torch

        return torch.clamp(log_ratio.detach().exp(), max=cap) * m
    return np.minimum(np.exp(log_ratio), cap).astype(np.float32) * m


def corrected_pg_loss(
    trainer_logprobs: Any,
    sampler_logprobs: Any,
    advantages: Any,
    mask: Any,
    *,
    alpha: float = 0.5,
    beta: float = 2.0,
    tau: float = 0.0,
    cap: float | None = None,
) -> Any:
    """The K2.5 token-level RL objective as a loss (mean over masked-in tokens).

    Per token, with ``l = logp_trainer``, ``log r = l - logp_sampler``, ``keep`` the band mask of
    :func:`token_clip_mask` and ``w = r`` held constant::

        loss_t = -keep * w * A * l + (tau / 2) * (log r) ** 2
        d loss_t / d l = -keep * r * A + tau * log r

    Inside ``[alpha, beta]`` the gradient is the importance-weighted policy gradient ``r * A`` (what
    ``Clip(r, alpha, beta) * A`` differentiates to); outside it the policy-gradient part is 0 for either sign
    of ``A``. The ``tau`` term (Kimi K2.5's ``tau/2 * (log pi_theta/pi_old)^2``, with the sampler as
    ``pi_old``) applies to every masked-in token, inside and outside the band, and pulls the trainer's
    logprob back towards the sampler's; ``tau=0`` turns it off.

    ``cap`` only exists to make a truncation explicit: ``w`` is ``min(r, cap)``, and since tokens with
    ``r > beta`` are masked out, a cap ``>= beta`` never binds and ``None`` (no cap) is the same objective. A
    cap ``< beta`` would replace ``r`` by ``cap`` for tokens inside the band, silently changing their
    gradient, so it raises ConfigError (to shrink the band, lower ``beta``).

    Args:
        trainer_logprobs: the trainer's logprobs of the sampled ids (with grad for torch).
        sampler_logprobs: the sampler's logprobs of the same ids.
        advantages: per-token advantages (broadcast a per-sample advantage over its tokens).
        mask: the loss mask (1 on sampled tokens).
        alpha, beta: the ratio band of :func:`token_clip_mask`.
        tau: weight of the squared log-ratio term (>= 0).
        cap: None, or an importance-weight cap ``>= beta`` (no effect; see above).

    Returns:
        A scalar (0-d array or tensor): the sum over tokens divided by the number of masked-in tokens.

    Raises:
        ConfigError: ``cap < beta``, ``tau < 0``, or a band not containing 1.
    """
    if cap is not None and cap < beta:
        from ..errors import ConfigError

        raise ConfigError(
            f"cap={cap} < beta={beta} would change the gradient of tokens inside the band (their weight r "
            "would become cap); use cap=None (or >= beta), and lower beta to keep fewer tokens"
        )
    if tau < 0:
        from ..errors import ConfigError

        raise ConfigError(f"tau must be >= 0, got {tau}")
    # with grad (torch) for the tau term; the band and the weight use a detached copy
    lr_grad = log_ratio(trainer_logprobs, sampler_logprobs, mask)
    lr = lr_grad.detach() if _is_torch(lr_grad) else lr_grad
    keep = token_clip_mask(lr, mask, alpha=alpha, beta=beta)
    # min(r, beta) * keep == r * keep (tokens above beta are out), and it cannot overflow where r is huge
    w = truncated_importance_weights(lr, mask, cap=beta)
    adv = _float(advantages, trainer_logprobs)
    per_token = -w * keep * adv * _float(trainer_logprobs, trainer_logprobs)
    if tau:
        per_token = per_token + 0.5 * tau * lr_grad * lr_grad
    denom = _float(mask, trainer_logprobs).sum()
    if _is_torch(per_token):
        return per_token.sum() / denom.clamp(min=1.0)
    return per_token.sum() / max(float(denom), 1.0)


def mismatch_stats(
    trainer_logprobs: Any, sampler_logprobs: Any, mask: Any, *, alpha: float = 0.5, beta: float = 2.0
) -> dict[str, float]:
    """Summary of the train–inference gap over masked tokens.

    Returns:
        ``mean_abs_log_ratio``, ``max_abs_log_ratio``, ``k3_kl`` (the low-variance estimator of
        KL(sampler‖trainer): ``E[r - 1 - log r]``), ``clipped_fraction`` (tokens outside ``[alpha, beta]``)
        and ``tokens``.
    """
    lr = log_ratio(trainer_logprobs, sampler_logprobs, mask)
    if _is_torch(lr):
        lr = lr.detach().cpu().numpy()
    m = np.asarray(mask.detach().cpu().numpy() if _is_torch(mask) else mask, dtype=np.float64)
    lr = np.asarray(lr, dtype=np.float64)
    n = float(m.sum())
    if n == 0:
        return dict.fromkeys(("mean_abs_log_ratio", "max_abs_log_ratio", "k3_kl", "clipped_fraction", "tokens"), 0.0)
    a = np.abs(lr) * m
    keep = token_clip_mask(lr, m, alpha=alpha, beta=beta)
    return {
        "mean_abs_log_ratio": float(a.sum() / n),
        "max_abs_log_ratio": float(a.max()),
        "k3_kl": float(((np.exp(lr) - 1.0 - lr) * m).sum() / n),
        "clipped_fraction": float(1.0 - keep.sum() / n),
        "tokens": n,
    }


def group_advantages(
    rewards: Any, group_ids: Sequence[Any] | Any, *, normalize_std: bool = False, eps: float = 1e-6
) -> Any:
    """Per-sample advantage: reward minus its group's mean (optionally divided by the group's std).

    Args:
        rewards: one reward per sample (list, numpy array or torch tensor).
        group_ids: one hashable group key per sample (samples of the same task share a group).
        normalize_std: divide by the group's (population) std + ``eps`` (GRPO); off gives Dr.GRPO-style
            mean-baseline advantages.
        eps: keeps a zero-variance group finite (its advantages are then 0).

    Returns:
        Advantages of the same kind as ``rewards`` (numpy float32 for lists).
    """
    is_t = _is_torch(rewards)
    r = rewards.detach().cpu().numpy() if is_t else np.asarray(rewards, dtype=np.float64)
    keys = group_ids.tolist() if hasattr(group_ids, "tolist") else list(group_ids)
    if len(keys) != len(r):
        from ..errors import ConfigError

        raise ConfigError(f"{len(r)} rewards but {len(keys)} group ids")
    index: dict[Any, list[int]] = {}
    for i, k in enumerate(keys):
        index.setdefault(k, []).append(i)
    adv = np.zeros(len(r), dtype=np.float64)
    for members in index.values():
        g = r[members]
        a = g - g.mean()
        if normalize_std:
            a = a / (g.std() + eps)
        adv[members] = a
    out = adv.astype(np.float32)
    if is_t:
        import torch

        return torch.as_tensor(out, device=rewards.device)
    return out
