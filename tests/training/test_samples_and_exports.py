from __future__ import annotations

import random
from typing import Any

import numpy as np
import pytest
from swarmgym.errors import ConfigError, TokenDriftError
from swarmgym.training import (
    env_reward,
    make_rollout_func,
    to_batch,
    to_trl_rollout,
    to_verl_output,
    trajectory_samples,
    tree_samples,
)
from swarmgym.training.synthetic import synthetic_episode
from swarmgym.training.tito import TokenizedConversation
from swarmgym.wire import Completion, Message, Trajectory


def _c(prompt: list[int], comp: list[int], version: int = 0, exact: bool = True) -> Completion:
    return Completion(
        message=Message(role="assistant", content="x"),
        prompt_ids=prompt,
        completion_ids=comp,
        logprobs=[-0.5] * len(comp),
        policy_version=version,
        token_exact=exact,
    )


def _two_turns(**kw: Any) -> Trajectory:
    return Trajectory(completions=[_c([1, 2], [3, 4]), _c([1, 2, 3, 4, 5, 6], [7], version=1)], **kw)


def test_masks_logprobs_and_versions_are_aligned() -> None:
    (s,) = trajectory_samples(_two_turns(task_id="t", reward=1.0))
    assert s.ids == [1, 2, 3, 4, 5, 6, 7]
    assert s.loss_mask == [0, 0, 1, 1, 0, 0, 1]
    assert s.logprobs == [0.0, 0.0, -0.5, -0.5, 0.0, 0.0, -0.5]
    assert s.policy_versions == [-1, -1, 0, 0, -1, -1, 1]
    assert s.turn_spans == [(2, 4), (6, 7)] and s.prompt_len == 2 and s.group_id == "t"


def test_swarm_tree_gives_one_sample_per_trainable_trajectory() -> None:
    parent = _two_turns(id="p", group_id="g")
    trainable_child = _two_turns(id="c1", parent_id="p", role="worker")
    frozen_child = _two_turns(id="c2", parent_id="p", role="subagent", trainable=False)
    samples = tree_samples([parent, trainable_child, frozen_child])
    assert [s.trajectory_id for s in samples] == ["p", "c1"]
    (frozen,) = trajectory_samples(frozen_child, include_frozen=True)
    assert frozen.num_sampled == 0 and not frozen.trainable


def test_drift_between_turns_raises_or_splits() -> None:
    traj = Trajectory(id="t9", completions=[_c([1, 2], [3, 4]), _c([1, 2, 3, 99, 5], [7])])
    with pytest.raises(TokenDriftError, match=r"trajectory t9 turn 1: .*first difference at token 3"):
        trajectory_samples(traj)
    a, b = trajectory_samples(traj, on_drift="split")
    assert a.ids == [1, 2, 3, 4] and b.ids == [1, 2, 3, 99, 5, 7] and b.segment == 1 and b.prompt_len == 5


def test_inexact_or_missing_ids_are_refused() -> None:
    with pytest.raises(TokenDriftError, match="not token-exact"):
        trajectory_samples(Trajectory(completions=[_c([1], [2], exact=False)]))
    (s,) = trajectory_samples(Trajectory(completions=[_c([1], [2], exact=False)]), require_exact=False)
    assert s.ids == [1, 2]
    no_ids = Completion(message=Message(role="assistant", content="x"))
    with pytest.raises(TokenDriftError, match="no token ids"):
        trajectory_samples(Trajectory(completions=[no_ids]))
    bad = Completion(
        message=Message(role="assistant"), prompt_ids=[1], completion_ids=[2, 3], logprobs=[-1.0], token_exact=True
    )
    with pytest.raises(TokenDriftError, match="1 logprobs for 2 completion ids"):
        trajectory_samples(Trajectory(completions=[bad]))


def test_to_batch_pads_truncates_and_normalises() -> None:
    trajs = [_two_turns(task_id="a", reward=r) for r in (1.0, 0.0)] + [_two_turns(task_id="b", reward=2.0)]
    b = to_batch(trajs, pad_id=0)
    assert b.input_ids.shape == (3, 7) and b.input_ids.dtype == np.int64
    assert b.group_ids.tolist() == [0, 0, 1] and b.group_names == ["a", "b"]
    assert b.sample_advantages.tolist() == [0.5, -0.5, 0.0]
    assert (b.advantages[0] == 0.5 * b.loss_mask[0]).all()
    cut = to_batch(trajs, pad_id=0, max_len=5)
    assert cut.input_ids.shape == (3, 5) and cut.truncated.all() and cut.loss_mask[0].tolist() == [0, 0, 1, 1, 0]
    assert len(to_batch(trajs, pad_id=0, max_len=5, on_overflow="drop")) == 0
    with pytest.raises(ConfigError, match="max_len"):
        to_batch(trajs, pad_id=0, max_len=5, on_overflow="raise")
    with pytest.raises(ConfigError, match="pad id"):
        to_batch(trajs)
    std = to_batch(trajs, pad_id=0, normalize_std=True)
    assert np.allclose(std.sample_advantages, [1.0, -1.0, 0.0], atol=1e-4)
    torch_view = b.to_torch()
    assert torch_view["input_ids"].shape == (3, 7) and set(torch_view) == set(b.arrays())


def test_to_batch_uses_tokenizer_pad_and_keeps_sampled_ids(tok: Any) -> None:
    conv, rng = TokenizedConversation(tok), random.Random(5)
    trajs = [synthetic_episode(conv, rng, episode=i) for i in range(20)]
    b = to_batch(trajs, tok)
    for row, traj in enumerate(trajs):
        sampled = [i for c in traj.completions for i in c.completion_ids or []]
        assert b.input_ids[row][b.loss_mask[row] == 1].tolist() == sampled
        sampled_lps = [x for c in traj.completions for x in c.logprobs or []]
        assert np.allclose(b.old_logprobs[row][b.loss_mask[row] == 1], sampled_lps)
        assert (b.input_ids[row][b.attention_mask[row] == 0] == tok.pad_token_id).all()


def test_trl_rollout_dict_has_the_hook_keys() -> None:
    out = to_trl_rollout([_two_turns(reward=1.0), _two_turns(reward=0.0, trainable=False)])
    assert {"prompt_ids", "completion_ids", "logprobs"} <= set(out) and "env_mask" in out
    assert out["prompt_ids"] == [[1, 2], [1, 2]]
    assert out["completion_ids"][0] == [3, 4, 5, 6, 7]
    assert out["env_mask"] == [[1, 1, 0, 0, 1], [0, 0, 0, 0, 0]]
    for key in ("completion_ids", "logprobs", "env_mask"):
        assert [len(x) for x in out[key]] == [5, 5]
    assert env_reward(completions=["a", "b"], env_reward=out["env_reward"]) == [1.0, 0.0]
    with pytest.raises(ConfigError, match="env_reward"):
        env_reward(completions=["a"])


def test_trl_rollout_func_accepts_async_runs() -> None:
    async def run(prompts: list[Any], trainer: Any) -> list[Trajectory]:
        return [_two_turns(reward=float(i)) for i, _ in enumerate(prompts)]

    out = make_rollout_func(run)(["p0", "p1", "p2"], None)
    assert out["env_reward"] == [0.0, 1.0, 2.0] and len(out["prompt_ids"]) == 3


def test_verl_output_fields() -> None:
    turns = (("user", "q"), ("assistant", "a"), ("tool", "r"), ("assistant", "b"))
    msgs = [Message(role=r, content=c) for r, c in turns]
    out = to_verl_output(_two_turns(messages=msgs, reward=0.25), prompt_length=2, response_length=8)
    assert out["prompt_ids"] == [1, 2] and out["response_ids"] == [3, 4, 5, 6, 7]
    assert out["response_mask"] == [1, 1, 0, 0, 1] and len(out["response_logprobs"]) == 5
    # ToolAgentLoop: 2 generations + 1 tool round + 1
    assert out["reward_score"] == 0.25 and out["num_turns"] == 4
    ef = out["extra_fields"]
    assert ef["swarmgym_policy_versions"] == [0, 0, -1, -1, 1] and not ef["swarmgym_truncated"]
    assert (ef["min_global_steps"], ef["max_global_steps"]) == (0, 1)


@pytest.mark.parametrize(
    ("response_length", "response", "num_turns", "versions"),
    [
        (1, [3], 2, (0, 0)),  # the first generation reaches the limit: kept, cut
        (2, [3, 4], 2, (0, 0)),  # exactly at the limit after a generation: stop there
        (3, [3, 4], 2, (0, 0)),  # the tool tokens would reach the limit: dropped, with everything after
        (4, [3, 4], 2, (0, 0)),
        (5, [3, 4, 5, 6, 7], 4, (0, 1)),  # the second generation reaches it: kept
    ],
)
def test_verl_cut_follows_tool_agent_loop(
    response_length: int, response: list[int], num_turns: int, versions: tuple[int, int]
) -> None:
    out = to_verl_output(_two_turns(), prompt_length=4, response_length=response_length)
    assert out["response_ids"] == response and len(out["response_mask"]) == len(response)
    assert out["num_turns"] == num_turns
    assert (out["extra_fields"]["min_global_steps"], out["extra_fields"]["max_global_steps"]) == versions
    assert out["extra_fields"]["swarmgym_truncated"] == (len(response) < 5)


def test_verl_refuses_long_prompts_split_and_empty_episodes() -> None:
    with pytest.raises(ConfigError, match="prompt_length=1"):
        to_verl_output(_two_turns(), prompt_length=1, response_length=8)
    with pytest.raises(ConfigError, match="no completion"):
        to_verl_output(Trajectory(completions=[]), prompt_length=4, response_length=8)
    drifted = Trajectory(completions=[_c([1, 2], [3, 4]), _c([1, 2, 3, 99, 5], [7])])
    with pytest.raises(TokenDriftError):
        to_verl_output(drifted, prompt_length=4, response_length=8)
    with pytest.raises(ConfigError, match="response_length"):
        to_verl_output(_two_turns(), prompt_length=4, response_length=0)


def test_trl_refuses_an_episode_without_completion_and_cuts_long_ones() -> None:
    from swarmgym.errors import ConfigError
    from swarmgym.training.export_trl import to_trl_rollout
    from swarmgym.wire import Completion, Message, Trajectory

    with pytest.raises(ConfigError, match="no completion"):
        to_trl_rollout([Trajectory(task_id="t", reward=0.0, completions=[])])
    c0 = Completion(message=Message(role="assistant", content="a"), prompt_ids=[1, 2],
                    completion_ids=[3, 4, 5], logprobs=[-0.1, -0.2, -0.3], token_exact=True)
    out = to_trl_rollout([Trajectory(task_id="t", reward=1.0, completions=[c0])], max_completion_length=2)
    assert out["completion_ids"] == [[3, 4]] and out["env_mask"] == [[1, 1]] and out["logprobs"] == [[-0.1, -0.2]]
    assert all(isinstance(i, int) for row in out["completion_ids"] for i in row)
