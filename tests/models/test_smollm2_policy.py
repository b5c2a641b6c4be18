"""HFPolicy on the real SmolLM2: its own chat template, tool calls through the text prompt, per-row seeds."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio

from swarmgym.policies.base import PolicyContext
from swarmgym.wire import Message, SamplingParams, ToolCall


def _policy(smollm2: tuple[Any, Any], **kw: Any) -> Any:
    from swarmgym.policies.hf import HFPolicy

    model, tok = smollm2
    return HFPolicy(model, tok, **kw)


def test_greedy_answer_and_token_exact_ids(smollm2: tuple[Any, Any]) -> None:
    policy = _policy(smollm2)
    _, tok = smollm2
    msgs = [Message(role="user", content="What is 2+3? Answer with a number.")]
    c = anyio.run(policy.complete, msgs, [], SamplingParams(temperature=0.0, max_tokens=16))
    assert "5" in (c.message.content or "")
    # the prompt is exactly what the model's own (GGUF-shipped) template renders
    ref = tok.apply_chat_template([{"role": "user", "content": msgs[0].content}], add_generation_prompt=True,
                                  tokenize=True, return_dict=False)  # fmt: skip
    assert c.prompt_ids == list(ref)
    assert len(c.logprobs) == len(c.completion_ids) and all(lp <= 0 for lp in c.logprobs)


def test_a_seeded_row_samples_the_same_alone_and_in_a_batch(smollm2: tuple[Any, Any]) -> None:
    policy = _policy(smollm2, batch_window_s=0.05)
    prompts = ["Name a fruit.", "Write one word about the sea, then explain it at length.", "Count to five.", "Hi!"]
    seeds = [11, 22, 33, 44]

    def sampling(seed: int) -> SamplingParams:
        return SamplingParams(temperature=1.0, top_p=0.95, max_tokens=20, seed=seed)

    alone = [
        anyio.run(policy.complete, [Message(role="user", content=p)], [], sampling(s)).completion_ids
        for p, s in zip(prompts, seeds)
    ]
    together: list[Any] = [None] * len(prompts)

    async def all_at_once() -> None:
        async def one(i: int) -> None:
            c = await policy.complete([Message(role="user", content=prompts[i])], [], sampling(seeds[i]))
            together[i] = c.completion_ids

        async with anyio.create_task_group() as tg:
            for i in range(len(prompts)):
                tg.start_soon(one, i)

    before = policy.batches_run
    anyio.run(all_at_once)
    assert policy.batches_run - before == 1  # different seeds, one batch
    assert together == alone
    assert len({tuple(x) for x in alone}) == len(alone)  # the seeds do differ
    other = anyio.run(policy.complete, [Message(role="user", content=prompts[1])], [], sampling(99))
    assert other.completion_ids != alone[1]  # the seed matters, so the equality above is not vacuous


def test_tool_prompt_conversation_matches_the_real_template(smollm2: tuple[Any, Any]) -> None:
    """A ToolMath-style episode: tools described in the system prompt, a tool call written as text, the result
    as a user turn; the token-exact prompt ids decode to the template's own render of that conversation."""
    from swarmgym.envs.registry import make

    policy = _policy(smollm2)
    _, tok = smollm2
    assert policy.tool_prompt is not None  # SmolLM2's template ignores a tools list
    env = make("swarmgym/ToolMath-v0", size=4)
    tools = list(env.tool_specs)
    ctx = PolicyContext(state={}, episode_id="e0")
    msgs = [Message(role="system", content="Solve it with the calculator."), Message(role="user", content="12*7?")]
    sampling = SamplingParams(temperature=0.0, max_tokens=24)
    c0 = anyio.run(lambda: policy.complete(msgs, tools, sampling, ctx=ctx))
    system_text = tok.decode(c0.prompt_ids)
    assert "calculator(expression: string)" in system_text and "<tool_call>" in system_text
    # the next turn: whatever the model said, continue as if it had called the tool
    call = Message(role="assistant", content=None,
                   tool_calls=[ToolCall(id="c1", name="calculator", arguments={"expression": "12*7"})])  # fmt: skip
    msgs2 = [*msgs, c0.message if c0.message.tool_calls else call, Message(role="tool", content="84", tool_call_id="c1")]
    c1 = anyio.run(lambda: policy.complete(msgs2, tools, sampling, ctx=ctx))
    assert c1.prompt_ids[: len(c0.prompt_ids) + len(c0.completion_ids)] == c0.prompt_ids + c0.completion_ids
    tail = tok.decode(c1.prompt_ids[len(c0.prompt_ids) + len(c0.completion_ids) :])
    assert tail.endswith("<|im_start|>user\n<tool_response>84</tool_response><|im_end|>\n<|im_start|>assistant\n")
    # everything before the sampled ids is the template's own render of the rewritten conversation
    rewritten = policy.tool_prompt.apply(msgs, tools)
    ref = tok.apply_chat_template([{"role": m.role, "content": m.content} for m in rewritten],
                                  add_generation_prompt=True, tokenize=False)  # fmt: skip
    assert tok.decode(c0.prompt_ids) == ref


def test_tool_call_text_from_the_model_is_parsed(smollm2: tuple[Any, Any]) -> None:
    policy = _policy(smollm2)
    _, tok = smollm2
    ids = tok.encode('<tool_call>{"name": "calculator", "arguments": {"expression": "3*4"}}</tool_call><|im_end|>',
                     add_special_tokens=False)  # fmt: skip
    m = policy.conversation.parse(ids, None, remember=False)
    assert [(c.name, c.arguments) for c in m.tool_calls] == [("calculator", {"expression": "3*4"})]


def test_cli_runs_toolmath_with_hf_smollm2(smollm2_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "x.jsonl"
    cmd = [sys.executable, "-P", "-m", "swarmgym.cli", "run", "swarmgym/ToolMath-v0", "--policy", "hf:smollm2",
           "-n", "2", "--max-tokens", "24", "--max-turns", "2", "--no-live", "--out", str(out)]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stderr[-2000:]
    from swarmgym.rollout.store import read_trajectories

    trajs = list(read_trajectories(out))
    assert len(trajs) == 2
    for t in trajs:
        assert t.status in ("ok", "truncated"), t.error
        assert t.completions and all(c.token_exact and c.completion_ids for c in t.completions)
