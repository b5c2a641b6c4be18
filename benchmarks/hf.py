"""HFPolicy on the real SmolLM2-135M: tokens/s with concurrent ToolMath episodes vs plain ``model.generate``.

``--episodes`` (16) concurrent ``swarmgym/ToolMath-v0`` episodes, each with **its own sampling seed**, run
through :class:`~swarmgym.policies.hf.HFPolicy` on SmolLM2-135M-Instruct (CPU, fp32; ``swarmgym models fetch
smollm2`` first). Every batch HFPolicy decodes is recorded (its rows' prompt ids); the baseline replays
exactly those batches — same prompts, same batch composition, same ``--max-tokens``, same temperature —
through one left-padded ``model.generate(do_sample=True)`` call each: the best plain loop under the same
limits (batched the way HFPolicy found them; ``generate`` cannot give rows their own seeds, so it gets no
seeds at all, which only helps it).

Throughput counts completion tokens up to each row's end-of-turn token or limit. The HFPolicy arm's wall
time is the whole run (templating, tool calls, judging included); the baseline's is its generate calls only.
``decode_ratio_vs_generate`` counts only the time inside HFPolicy's decode calls, to show where a gap is.
Modes alternate ``--repeats`` times and each keeps its best rate (the machine is shared).

Keys: ``tokens_per_s`` (HFPolicy), ``generate_tokens_per_s``, ``ratio_vs_generate``, ``episodes``,
``batches``, ``mean_rows_per_batch``, ``completion_tokens``, ``max_tokens``, ``repeats``, and the logprob gap
between HFPolicy's sampled-token logprobs and a trainer-style forward pass over the exported batch
(``logprob_gap_mean_abs``, ``logprob_gap_max_abs``, ``logprob_tokens``).
"""

from __future__ import annotations

import time
from typing import Any

from benchmarks._report import Bench, Target

__all__ = ["main", "TARGETS"]

TARGETS = [
    Target("ratio_vs_generate", ">=", 1.0, what="HFPolicy tokens/s ÷ plain batched generate on the same batches"),
]


def _count(row: list[int], stop_ids: list[int], limit: int) -> int:
    for i, t in enumerate(row[:limit]):
        if t in stop_ids:
            return i + 1
    return min(len(row), limit)


def _measure(res: dict[str, Any], bench: Bench, episodes: int, max_tokens: int, turns: int, repeats: int) -> None:
    import anyio
    import torch

    from swarmgym import models
    from swarmgym.envs.core import EpisodeLimits
    from swarmgym.envs.registry import make
    from swarmgym.loop import run_episode
    from swarmgym.policies.hf import HFPolicy
    from swarmgym.wire import SamplingParams

    model, tok = models.load("smollm2")
    model.eval()
    policy = HFPolicy(model, tok, max_batch=episodes, batch_window_s=0.02)
    env = make("swarmgym/ToolMath-v0", size=episodes, seed=0, limits=EpisodeLimits(max_turns=turns))
    batches: list[list[list[int]]] = []
    generate_rows = policy._generate  # record each batch's prompts for the baseline (same composition)

    decode_s = [0.0]

    def recording(batch: list[Any]) -> Any:
        batches.append([list(r.prompt) for r in batch])
        t0 = time.perf_counter()
        try:
            return generate_rows(batch)
        finally:
            decode_s[0] += time.perf_counter() - t0

    policy._generate = recording  # type: ignore[method-assign]

    trajs: list[Any] = [None] * episodes
    tasks = [env.tasks[i] for i in range(episodes)]  # generated outside the timed runs

    async def run_all() -> int:
        out: list[int] = [0] * episodes

        async def one(i: int) -> None:
            sampling = SamplingParams(temperature=1.0, max_tokens=max_tokens, seed=1000 + i)  # per-episode seeds
            t = await run_episode(env, policy, tasks[i], sampling=sampling, sample_index=i)
            if t.status == "error":
                raise RuntimeError(f"episode {i} failed: {t.error}")
            out[i] = sum(len(c.completion_ids or []) for c in t.completions)
            trajs[i] = t

        async with anyio.create_task_group() as tg:
            for i in range(episodes):
                tg.start_soon(one, i)
        return sum(out)

    gen_kwargs: dict[str, Any] = {
        "max_new_tokens": max_tokens,
        "do_sample": True,
        "temperature": 1.0,
        "top_p": 1.0,
        "top_k": 0,
        "eos_token_id": policy.stop_ids,
        "pad_token_id": policy.pad_id,
    }

    def generate_mode(recorded: list[list[list[int]]]) -> tuple[int, float]:
        n = 0
        t0 = time.perf_counter()
        with torch.inference_mode():
            for prompts in recorded:
                width = max(map(len, prompts))
                x = torch.full((len(prompts), width), policy.pad_id)
                m = torch.zeros_like(x)
                for i, p in enumerate(prompts):
                    x[i, width - len(p) :] = torch.tensor(p)
                    m[i, width - len(p) :] = 1
                out = model.generate(input_ids=x, attention_mask=m, **gen_kwargs)
                n += sum(_count(row, policy.stop_ids, max_tokens) for row in out[:, width:].tolist())
        return n, time.perf_counter() - t0

    # warm-up: kernels, the judge's and the env's imports, the template (first calls are several times slower)
    anyio.run(_warmup, policy, env, tasks[0])
    best = {"hf": 0.0, "generate": 0.0}
    replay: list[list[list[int]]] = []
    tokens = 0
    for r in range(repeats):
        with bench.arm(f"hf_policy#{r}"):
            batches.clear()
            decode_s[0] = 0.0
            t0 = time.perf_counter()
            n = anyio.run(run_all)
            best["hf"] = max(best["hf"], n / (time.perf_counter() - t0))
            best["decode"] = max(best.get("decode", 0.0), n / decode_s[0])
            if r == 0:
                replay, tokens = [list(b) for b in batches], n
                res.update(_logprob_gap(model, tok, list(trajs)))
        with bench.arm(f"generate#{r}"):
            n, s = generate_mode(replay)
            best["generate"] = max(best["generate"], n / s)
    res.update(
        episodes=episodes,
        turns=turns,
        max_tokens=max_tokens,
        repeats=repeats,
        batches=len(replay),
        mean_rows_per_batch=sum(map(len, replay)) / max(len(replay), 1),
        completion_tokens=tokens,
        tokens_per_s=best["hf"],
        generate_tokens_per_s=best["generate"],
    )
    if best["hf"] and best["generate"]:
        res["ratio_vs_generate"] = best["hf"] / best["generate"]
        # the same figure counting only HFPolicy's decode calls (no env, tools, judge, templating)
        res["decode_tokens_per_s"] = best["decode"]
        res["decode_ratio_vs_generate"] = best["decode"] / best["generate"]


def _logprob_gap(model: Any, tok: Any, trajs: list[Any]) -> dict[str, Any]:
    """HFPolicy's sampled-token logprobs vs a trainer-style forward pass over the exported batch (T = 1)."""
    from swarmgym.training.batch import to_batch
    from swarmgym.training.logprobs import sequence_logprobs
    from swarmgym.training.mismatch import mismatch_stats

    batch = to_batch(trajs, tok)
    trainer = sequence_logprobs(model, batch.input_ids, batch.attention_mask, temperature=1.0)
    gap = mismatch_stats(trainer.numpy(), batch.old_logprobs, batch.loss_mask)
    return {
        "logprob_gap_mean_abs": gap["mean_abs_log_ratio"],
        "logprob_gap_max_abs": gap["max_abs_log_ratio"],
        "logprob_tokens": int(gap["tokens"]),
    }


async def _warmup(policy: Any, env: Any, task: Any) -> None:
    from swarmgym.loop import run_episode
    from swarmgym.wire import SamplingParams

    await run_episode(env, policy, task, sampling=SamplingParams(max_tokens=4, seed=0))


def main(argv: list[str] | None = None) -> int:
    bench = Bench(
        "hf",
        __doc__,
        TARGETS,
        describe={
            "tokens_per_s": "HFPolicy completion tokens/s, 16 concurrent seeded ToolMath episodes, SmolLM2-135M CPU",
            "generate_tokens_per_s": "plain model.generate on the same batches, tokens/s",
        },
    )
    bench.parser.add_argument("--episodes", type=int, default=16)
    bench.parser.add_argument("--max-tokens", type=int, default=32)
    bench.parser.add_argument("--turns", type=int, default=2, help="cap on assistant turns per episode")
    bench.parser.add_argument("--repeats", type=int, default=2, help="alternate the modes this often, keep each best")
    a = bench.parse_args(argv)
    episodes, max_tokens, repeats = (4, 8, 1) if a.quick else (a.episodes, a.max_tokens, a.repeats)
    return bench.run(
        lambda res: _measure(res, bench, episodes, max_tokens, a.turns, repeats),
        title=f"HFPolicy on SmolLM2-135M (CPU): {episodes} concurrent seeded ToolMath episodes, "
        f"≤{max_tokens} tokens/turn, ≤{a.turns} turns",
    )


if __name__ == "__main__":
    raise SystemExit(main())
