from __future__ import annotations

import numpy as np
import pytest
import torch
from swarmgym.errors import ConfigError
from swarmgym.training.mismatch import (
    corrected_pg_loss,
    group_advantages,
    log_ratio,
    mismatch_stats,
    token_clip_mask,
    truncated_importance_weights,
)

RNG = np.random.default_rng(0)
SAMPLER = np.log(RNG.uniform(0.05, 1.0, size=(4, 16))).astype(np.float32)
TRAINER = (SAMPLER + RNG.normal(0, 0.6, size=(4, 16))).astype(np.float32)
MASK = (RNG.uniform(size=(4, 16)) < 0.7).astype(np.float32)


def test_numpy_and_torch_agree() -> None:
    lr_np = log_ratio(TRAINER, SAMPLER, MASK)
    lr_t = log_ratio(torch.from_numpy(TRAINER), torch.from_numpy(SAMPLER), torch.from_numpy(MASK))
    assert isinstance(lr_t, torch.Tensor) and np.allclose(lr_np, lr_t.numpy(), atol=1e-6)
    assert np.allclose(token_clip_mask(lr_np, MASK), token_clip_mask(lr_t, torch.from_numpy(MASK)).numpy())
    w_np = truncated_importance_weights(lr_np, MASK, cap=1.5)
    w_t = truncated_importance_weights(lr_t, torch.from_numpy(MASK), cap=1.5)
    assert np.allclose(w_np, w_t.numpy(), atol=1e-6) and w_np.max() <= 1.5
    adv = RNG.normal(size=(4, 16)).astype(np.float32)
    l_np = corrected_pg_loss(TRAINER, SAMPLER, adv, MASK)
    tensors = [torch.from_numpy(x) for x in (TRAINER, SAMPLER, adv, MASK)]
    l_t = corrected_pg_loss(*tensors)
    assert abs(float(l_np) - float(l_t)) < 1e-5


def test_clipped_tokens_get_no_gradient_for_either_advantage_sign() -> None:
    sampler = torch.log(torch.tensor([0.5, 0.5, 0.5, 0.5]))
    # ratios 1.0 (kept), 3.0 (above beta), 0.2 (below alpha), 1.5 (kept)
    trainer = (sampler + torch.log(torch.tensor([1.0, 3.0, 0.2, 1.5]))).requires_grad_()
    mask = torch.ones(4)
    for sign in (1.0, -1.0):
        trainer.grad = None
        loss = corrected_pg_loss(trainer, sampler, torch.full((4,), sign), mask, alpha=0.5, beta=2.0, cap=None)
        loss.backward()
        grad = trainer.grad
        assert grad is not None
        assert grad[1] == 0 and grad[2] == 0
        assert grad[0] != 0 and grad[3] != 0 and torch.sign(grad[0]) == -sign


def test_importance_weights_are_constants_in_the_gradient() -> None:
    sampler = torch.log(torch.tensor([0.5, 0.25]))
    trainer = torch.log(torch.tensor([0.5, 0.5])).requires_grad_()
    loss = corrected_pg_loss(trainer, sampler, torch.ones(2), torch.ones(2), alpha=0.1, beta=10.0, cap=1.5)
    loss.backward()
    assert trainer.grad is not None
    # d/dlogp of -(w * A * logp)/n with w = min(r, 1.5) held constant: -w/n
    assert torch.allclose(trainer.grad, torch.tensor([-1.0 / 2, -1.5 / 2]))


def test_stats_and_bad_band() -> None:
    stats = mismatch_stats(SAMPLER, SAMPLER, MASK)
    assert stats["mean_abs_log_ratio"] == 0.0 and stats["clipped_fraction"] == 0.0 and stats["tokens"] == MASK.sum()
    stats = mismatch_stats(TRAINER, SAMPLER, MASK)
    assert stats["k3_kl"] > 0 and 0 < stats["clipped_fraction"] < 1
    assert mismatch_stats(TRAINER, SAMPLER, np.zeros_like(MASK))["tokens"] == 0.0
    with pytest.raises(ConfigError, match="alpha"):
        token_clip_mask(np.zeros(2), np.ones(2), alpha=2.0, beta=3.0)


def test_group_advantages() -> None:
    adv = group_advantages([1.0, 0.0, 1.0, 1.0], ["a", "a", "b", "b"], normalize_std=True)
    assert np.allclose(adv, [1.0, -1.0, 0.0, 0.0], atol=1e-4)
    t = group_advantages(torch.tensor([2.0, 4.0]), [0, 0])
    assert isinstance(t, torch.Tensor) and t.tolist() == [-1.0, 1.0]
    with pytest.raises(ConfigError, match="group ids"):
        group_advantages([1.0], ["a", "b"])
