"""HFPolicy on a tiny random model on CPU (runs in CI: torch is installed there)."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import anyio
import pytest
import torch
from swarmgym.errors import ConfigError
from swarmgym.policies.base import PolicyContext
from swarmgym.policies.hf import HFPolicy
from swarmgym.training import sequence_logprobs, to_batch
from swarmgym.wire import Message, SamplingParams, ToolSpec, Trajectory

TOOLS = [ToolSpec(name="add", parameters={"type": "object", "properties": {"a": {"type": "number"}}})]


async def _episode(policy: HFPolicy, i: int, sampling: SamplingParams, turns: int = 3) -> Trajectory:
    ctx = PolicyContext(state={}, episode_id=f"e{i}")
    msgs = [Message(role="user", content=f"task number {i}")]
    traj = Trajectory(id=f"e{i}", task_id=f"t{i % 2}", reward=float(i % 2))
    for _ in range(turns):
        c = await policy.complete(msgs, TOOLS, sampling, ctx=ctx)
        traj.completions.append(c)
        msgs += [c.message]
        msgs += [Message(role="tool", content="3", tool_call_id=t.id) for t in c.message.tool_calls or []]
        msgs += [Message(role="user", content="continue")]
    traj.messages = msgs
    return traj


def _run_episodes(policy: HFPolicy, n: int, sampling: SamplingParams) -> list[Trajectory]:
    out: dict[int, Trajectory] = {}

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            for i in range(n):

                async def one(i: int = i) -> None:
                    out[i] = await _episode(policy, i, sampling)

                tg.start_soon(one)

    anyio.run(main)
    return [out[i] for i in range(n)]


def test_concurrent_episodes_are_batched_and_token_exact(tok: Any, tiny_model: Any) -> None:
    policy = HFPolicy(tiny_model, tok, batch_window_s=0.02)
    trajs = _run_episodes(policy, 6, SamplingParams(temperature=1.0, max_tokens=12))
    assert policy.batches_run < 6 * 3  # requests of concurrent episodes shared generate calls
    for traj in trajs:
        for c in traj.completions:
            assert c.token_exact and c.logprobs is not None and len(c.logprobs) == len(c.completion_ids or [])
            assert 1 <= len(c.completion_ids or []) <= 12
            assert c.finish_reason in ("stop", "length")
            assert all(lp <= 0.0 for lp in c.logprobs)
    batch = to_batch(trajs, tok)  # raises if any turn did not extend the previous one exactly
    assert len(batch) == 6


def test_sampler_logprobs_match_a_trainer_forward_pass(tok: Any, tiny_model: Any) -> None:
    policy = HFPolicy(tiny_model, tok)
    for temperature in (1.0, 0.7):
        trajs = _run_episodes(policy, 4, SamplingParams(temperature=temperature, max_tokens=10))
        batch = to_batch(trajs, tok)
        trainer = sequence_logprobs(tiny_model, batch.input_ids, batch.attention_mask, temperature=temperature)
        mask = torch.from_numpy(batch.loss_mask).bool()
        gap = (trainer[mask] - torch.from_numpy(batch.old_logprobs)[mask]).abs().max().item()
        assert gap < 1e-3


def test_greedy_matches_model_generate_and_is_deterministic(tok: Any, tiny_model: Any) -> None:
    policy = HFPolicy(tiny_model, tok)
    msgs = [Message(role="user", content="hello")]
    greedy = SamplingParams(temperature=0.0, max_tokens=8)
    a = anyio.run(policy.complete, msgs, [], greedy)
    b = anyio.run(policy.complete, msgs, [], greedy)
    assert a.completion_ids == b.completion_ids
    prompt = torch.tensor([a.prompt_ids])
    ref = tiny_model.generate(
        input_ids=prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=8, do_sample=False,
        eos_token_id=policy.stop_ids, pad_token_id=policy.pad_id,
    )[0, prompt.shape[1]:].tolist()
    # the whole completion, not a prefix: a policy that stopped early must fail here
    assert a.completion_ids == ref, (a.completion_ids, ref, a.finish_reason)
    assert a.finish_reason == ("stop" if ref[-1] in policy.stop_ids else "length")


def test_seed_reproduces_and_limits_apply(tok: Any, tiny_model: Any) -> None:
    policy = HFPolicy(tiny_model, tok)
    msgs = [Message(role="user", content="hello")]
    seeded = SamplingParams(temperature=1.0, max_tokens=16, seed=123)
    a = anyio.run(policy.complete, msgs, [], seeded)
    b = anyio.run(policy.complete, msgs, [], seeded)
    assert a.completion_ids == b.completion_ids and a.logprobs == b.logprobs
    empty = anyio.run(policy.complete, msgs, [], SamplingParams(max_tokens=0))
    assert empty.completion_ids == [] and empty.finish_reason == "length"
    no_lp = anyio.run(policy.complete, msgs, [], SamplingParams(max_tokens=3, logprobs=False, extra={"top_k": 5}))
    assert no_lp.logprobs is None and len(no_lp.completion_ids or []) <= 3
    with pytest.raises(ConfigError, match="does not support sampling.extra keys"):
        anyio.run(policy.complete, msgs, [], SamplingParams(extra={"frequency_penalty": 1.0}))


def test_stop_strings_end_the_completion(tok: Any, tiny_model: Any) -> None:
    policy = HFPolicy(tiny_model, tok)
    msgs = [Message(role="user", content="hello")]
    seeded = SamplingParams(temperature=1.0, max_tokens=24, seed=1)  # same seed, alone: same draws
    free = anyio.run(policy.complete, msgs, [], seeded)
    ids = free.completion_ids or []
    # a stop string that first appears within token k of the greedy output
    k, stop = next(
        (k, tok.decode([ids[k]]).strip())
        for k in range(1, len(ids))
        if tok.decode([ids[k]]).strip() and tok.decode([ids[k]]).strip() not in tok.decode(ids[:k])
    )
    cut = anyio.run(policy.complete, msgs, [], seeded.model_copy(update={"stop": [stop]}))
    assert cut.finish_reason == "stop" and cut.completion_ids == ids[: k + 1]


def test_missing_extra_names_the_install_command(monkeypatch: pytest.MonkeyPatch, tok: Any) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(ConfigError, match=r"pip install 'swarmgym\[hf\]'"):
        HFPolicy(object(), tok)


def test_modules_do_not_import_torch_at_import_time() -> None:
    code = (
        "import sys, swarmgym.policies.hf, swarmgym.training, swarmgym.training.tito, swarmgym.training.batch, "
        "swarmgym.training.export_trl, swarmgym.training.export_verl, swarmgym.training.mismatch; "
        "print('torch' in sys.modules, 'transformers' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
