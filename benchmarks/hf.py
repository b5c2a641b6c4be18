"""HFPolicy throughput under concurrent episodes vs a plain ``model.generate`` loop, and the logprob gap.

A randomly initialised Qwen2-style model (~10M parameters, tiny local tokenizer, CPU) serves ``--episodes``
concurrent multi-turn episodes through :class:`~swarmgym.policies.hf.HFPolicy` (requests batched across
episodes). The baselines replay the *same prompts* (the ``prompt_ids`` HFPolicy recorded):

- ``generate_loop``: one ``model.generate`` call per prompt, one after another (what a simple local agent
  loop does) — the ratio the issue targets (≥ 0.9×);
- ``generate_batched``: every turn's prompts in one left-padded ``model.generate`` call — the ceiling
  without HFPolicy's queueing, per-row cutting and logprob extraction.

Throughput counts completion tokens (up to each row's end-of-turn token or limit). The logprob gap compares
each sampled token's logprob from HFPolicy with a trainer-style full forward pass over the exported batch
(:func:`~swarmgym.training.logprobs.sequence_logprobs`, same temperature).

Keys: ``params``, ``episodes``, ``turns``, ``hf_policy_tokens_per_s``, ``generate_loop_tokens_per_s``,
``generate_batched_tokens_per_s``, ``ratio_vs_loop``, ``ratio_vs_batched``, ``logprob_gap_mean_abs``,
``logprob_gap_max_abs``, ``logprob_gap_k3_kl``, ``generate_calls``, ``repeats`` (modes alternate, best rate
kept: the machine is shared).

Run: ``python -m benchmarks.hf [--episodes 64] [--turns 2] [--max-tokens 32] [--json FILE]`` or
``swarmgym bench hf``.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

__all__ = ["main", "run"]


def _count(row: list[int], stop_ids: list[int], limit: int) -> int:
    for i, t in enumerate(row[:limit]):
        if t in stop_ids:
            return i + 1
    return min(len(row), limit)


def run(
    episodes: int = 64, turns: int = 2, max_tokens: int = 32, temperature: float = 1.0, repeats: int = 2
) -> dict[str, Any]:
    """Run the benchmark; see the module docstring for the figures."""
    import anyio
    import torch
    from swarmgym.policies.base import PolicyContext
    from swarmgym.policies.hf import HFPolicy
    from swarmgym.training.batch import to_batch
    from swarmgym.training.logprobs import sequence_logprobs
    from swarmgym.training.mismatch import mismatch_stats
    from swarmgym.training.tiny import count_parameters, make_tiny_model, make_tiny_tokenizer
    from swarmgym.wire import Message, SamplingParams, Trajectory

    torch.manual_seed(0)
    tok = make_tiny_tokenizer("chatml_tools")
    model = make_tiny_model(tok, hidden_size=256, num_layers=10, num_heads=8, intermediate_size=1024)
    params = count_parameters(model)
    sampling = SamplingParams(temperature=temperature, max_tokens=max_tokens)
    policy = HFPolicy(model, tok, max_batch=episodes)
    trajs: list[Trajectory] = [Trajectory(id=f"e{i}", task_id=f"t{i // 8}") for i in range(episodes)]

    async def episode(i: int) -> None:
        ctx = PolicyContext(state={}, episode_id=f"e{i}")
        msgs = [Message(role="user", content=f"Episode {i}: add the numbers {i} and {2 * i}, then explain.")]
        for t in range(turns):
            c = await policy.complete(msgs, [], sampling, ctx=ctx)
            trajs[i].completions.append(c)
            msgs += [c.message, Message(role="user", content=f"Observation {t}: the tool returned {i + t}.")]
        trajs[i].messages = msgs

    async def all_episodes() -> None:
        async with anyio.create_task_group() as tg:
            for i in range(episodes):
                tg.start_soon(episode, i)

    gen_kwargs: dict[str, Any] = {
        "max_new_tokens": max_tokens,
        "do_sample": True,
        "temperature": temperature,
        "top_p": 1.0,
        "top_k": 0,
        "eos_token_id": policy.stop_ids,
        "pad_token_id": policy.pad_id,
    }

    def hf_mode() -> tuple[int, float]:
        for tr in trajs:
            tr.completions.clear()
        t0 = time.perf_counter()
        anyio.run(all_episodes)
        return sum(len(c.completion_ids or []) for tr in trajs for c in tr.completions), time.perf_counter() - t0

    def loop_mode(prompts_by_turn: list[list[list[int]]]) -> tuple[int, float]:
        n = 0
        t0 = time.perf_counter()
        with torch.inference_mode():
            for prompts in prompts_by_turn:
                for p in prompts:
                    x = torch.tensor([p])
                    out = model.generate(input_ids=x, attention_mask=torch.ones_like(x), **gen_kwargs)
                    n += _count(out[0, x.shape[1] :].tolist(), policy.stop_ids, max_tokens)
        return n, time.perf_counter() - t0

    def batched_mode(prompts_by_turn: list[list[list[int]]]) -> tuple[int, float]:
        n = 0
        t0 = time.perf_counter()
        with torch.inference_mode():
            for prompts in prompts_by_turn:
                width = max(map(len, prompts))
                x = torch.full((len(prompts), width), policy.pad_id)
                m = torch.zeros_like(x)
                for i, p in enumerate(prompts):
                    x[i, width - len(p) :] = torch.tensor(p)
                    m[i, width - len(p) :] = 1
                out = model.generate(input_ids=x, attention_mask=m, **gen_kwargs)
                n += sum(_count(row, policy.stop_ids, max_tokens) for row in out[:, width:].tolist())
        return n, time.perf_counter() - t0

    # Warm up kernels for the batch shapes first (the first large generate is several times slower), then
    # alternate the modes and keep each one's best rate: the machine is shared, so single runs are noisy.
    warm = [[tok.encode(f"warm up {i}", add_special_tokens=False) for i in range(episodes)]]
    batched_mode(warm)
    anyio.run(_warmup, policy)
    best: dict[str, float] = {"hf": 0.0, "loop": 0.0, "batched": 0.0}
    calls = 0
    prompts_by_turn: list[list[list[int]]] = []
    for r in range(repeats):
        before = policy.batches_run
        n, s = hf_mode()
        calls = policy.batches_run - before
        best["hf"] = max(best["hf"], n / s)
        if r == 0:
            prompts_by_turn = [[tr.completions[t].prompt_ids or [] for tr in trajs] for t in range(turns)]
        n, s = loop_mode(prompts_by_turn)
        best["loop"] = max(best["loop"], n / s)
        n, s = batched_mode(prompts_by_turn)
        best["batched"] = max(best["batched"], n / s)

    batch = to_batch(trajs, tok)
    trainer = sequence_logprobs(model, batch.input_ids, batch.attention_mask, temperature=temperature)
    gap = mismatch_stats(trainer.numpy(), batch.old_logprobs, batch.loss_mask)
    hf_tps, loop_tps, batched_tps = best["hf"], best["loop"], best["batched"]
    return {
        "params": params,
        "episodes": episodes,
        "turns": turns,
        "max_tokens": max_tokens,
        "hf_policy_tokens_per_s": hf_tps,
        "generate_loop_tokens_per_s": loop_tps,
        "generate_batched_tokens_per_s": batched_tps,
        "ratio_vs_loop": hf_tps / loop_tps,
        "ratio_vs_batched": hf_tps / batched_tps,
        "generate_calls": calls,
        "repeats": repeats,
        "logprob_gap_mean_abs": gap["mean_abs_log_ratio"],
        "logprob_gap_max_abs": gap["max_abs_log_ratio"],
        "logprob_gap_k3_kl": gap["k3_kl"],
        "logprob_tokens": int(gap["tokens"]),
        "device": str(policy.device),
    }


async def _warmup(policy: Any) -> None:
    from swarmgym.wire import Message, SamplingParams

    await policy.complete([Message(role="user", content="warm up")], [], SamplingParams(max_tokens=4))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="swarmgym bench hf", description=__doc__.splitlines()[0])
    p.add_argument("--episodes", type=int, default=64)
    p.add_argument("--turns", type=int, default=2)
    p.add_argument("--max-tokens", type=int, default=32)
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--repeats", type=int, default=2, help="alternate the modes this often, keep each best")
    p.add_argument("--json", metavar="FILE", help="write the results as JSON here")
    a = p.parse_args(argv)
    res = run(a.episodes, a.turns, a.max_tokens, a.temperature, a.repeats)

    from benchmarks._report import report

    report(
        f"HFPolicy: {res['params'] / 1e6:.1f}M-param random model on {res['device']}, "
        f"{a.episodes} concurrent episodes × {a.turns} turns, ≤{a.max_tokens} tokens/turn",
        res,
        json_path=a.json,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
