"""Property check: over 10,000 generated episodes, exported ids are the sampled ids bit for bit."""

from __future__ import annotations

import random
from typing import Any

import pytest
from swarmgym.training.samples import trajectory_samples
from swarmgym.training.synthetic import synthetic_episode
from swarmgym.training.tito import TokenizedConversation

EPISODES = 10_000


def check_episode(traj: Any) -> None:
    (s,) = trajectory_samples(traj)
    assert len(s.turn_spans) == len(traj.completions)
    expected_mask = [0] * len(s.ids)
    for (start, end), c in zip(s.turn_spans, traj.completions):
        assert s.ids[start:end] == c.completion_ids  # bit for bit
        assert s.logprobs[start:end] == c.logprobs
        assert s.ids[: len(c.prompt_ids)] == c.prompt_ids and start == len(c.prompt_ids)
        expected_mask[start:end] = [1] * (end - start)
    assert s.loss_mask == expected_mask  # the mask covers exactly the sampled tokens


@pytest.mark.slow
def test_ten_thousand_episodes_are_token_exact(tokenizers: dict[str, Any]) -> None:
    convs = [TokenizedConversation(tokenizers[n]) for n in ("chatml_tools", "qwen3_like", "llama_like")]
    rng = random.Random(1234)
    turns = 0
    for e in range(EPISODES):
        traj = synthetic_episode(convs[e % len(convs)], rng, episode=e)
        turns += len(traj.completions)
        check_episode(traj)
    assert turns > 2 * EPISODES  # multi-turn on average


def test_property_smoke_with_both_handover_paths(tokenizers: dict[str, Any]) -> None:
    conv = TokenizedConversation(tokenizers["qwen3_like"])
    rng = random.Random(7)
    for e in range(200):
        check_episode(synthetic_episode(conv, rng, episode=e, use_record=bool(e % 2)))
