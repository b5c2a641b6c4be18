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


def _hand_gradient(trainer: torch.Tensor, sampler: torch.Tensor, adv: torch.Tensor, mask: torch.Tensor,
                   alpha: float, beta: float, tau: float) -> torch.Tensor:
    """d loss / d logp_trainer, derived by hand from loss = mean_t[-keep r A l + tau/2 (l - s)^2] (r constant)."""
    lr = (trainer - sampler).detach()
    r = lr.exp()
    keep = ((r >= alpha) & (r <= beta)).float()
    return mask * (-keep * r * adv + tau * lr) / mask.sum()


@pytest.mark.parametrize("tau", [0.0, 0.1, 1.0])
def test_gradient_inside_and_outside_the_band_matches_the_hand_derivation(tau: float) -> None:
    gen = torch.Generator().manual_seed(1)
    sampler = torch.log(torch.rand(3, 40, generator=gen) * 0.9 + 0.05)
    trainer = (sampler + torch.randn(3, 40, generator=gen) * 0.8).requires_grad_()
    adv = torch.randn(3, 40, generator=gen)
    mask = (torch.rand(3, 40, generator=gen) < 0.8).float()
    r = (trainer - sampler).detach().exp()
    inside, outside = (r >= 0.5) & (r <= 2.0) & (mask > 0), ((r < 0.5) | (r > 2.0)) & (mask > 0)
    assert inside.sum() > 10 and outside.sum() > 10  # both regions are exercised
    loss = corrected_pg_loss(trainer, sampler, adv, mask, alpha=0.5, beta=2.0, tau=tau)
    loss.backward()
    assert trainer.grad is not None
    expected = _hand_gradient(trainer, sampler, adv, mask, 0.5, 2.0, tau)
    assert torch.allclose(trainer.grad, expected, atol=1e-6)
    # outside the band only the tau term is left, whatever the advantage
    assert torch.allclose(trainer.grad[outside], (tau * (trainer - sampler).detach() / mask.sum())[outside], atol=1e-7)
    # numpy gives the same value
    np_loss = corrected_pg_loss(*(x.detach().numpy() for x in (trainer, sampler, adv, mask)), tau=tau)
    assert abs(float(np_loss) - loss.item()) < 1e-5


def test_cap_never_changes_the_gradient_inside_the_band() -> None:
    sampler = torch.log(torch.tensor([0.5, 0.25, 0.5]))
    trainer = torch.log(torch.tensor([0.5, 0.45, 0.9])).requires_grad_()  # r = 1.0, 1.8, 1.8: all inside [0.5, 2]
    grads = []
    for cap in (None, 2.0, 50.0):
        trainer.grad = None
        corrected_pg_loss(trainer, sampler, torch.ones(3), torch.ones(3), beta=2.0, cap=cap).backward()
        assert trainer.grad is not None
        grads.append(trainer.grad.clone())
    # -r/n with r the (untruncated) ratio: cap=None is importance weighting, not "no weighting"
    assert torch.allclose(grads[0], torch.tensor([-1.0, -1.8, -1.8]) / 3, atol=1e-6)
    assert all(torch.equal(g, grads[0]) for g in grads)
    with pytest.raises(ConfigError, match="cap=1.5 < beta=2.0"):
        corrected_pg_loss(trainer, sampler, torch.ones(3), torch.ones(3), beta=2.0, cap=1.5)
    with pytest.raises(ConfigError, match="tau"):
        corrected_pg_loss(trainer, sampler, torch.ones(3), torch.ones(3), tau=-0.1)


def test_huge_ratios_stay_finite() -> None:
    sampler = torch.tensor([-80.0, -1.0])
    trainer = torch.tensor([-0.1, -1.0], requires_grad=True)  # r = e^79.9 on the first token
    loss = corrected_pg_loss(trainer, sampler, torch.ones(2), torch.ones(2), tau=0.01)
    loss.backward()
    assert trainer.grad is not None and torch.isfinite(loss) and torch.isfinite(trainer.grad).all()
    assert torch.allclose(trainer.grad, torch.tensor([0.01 * 79.9 / 2, -1.0 / 2]), atol=1e-5)


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
