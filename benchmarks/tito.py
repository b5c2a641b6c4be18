"""Token-in-token-out: drift check over generated episodes, tokenisation cost per turn, export throughput.

Episodes come from :mod:`swarmgym.training.synthetic` (a pure-Python fake sampler that emits non-canonical
ids, tool calls, malformed JSON, truncated turns) across three chat templates. For each episode the
exported sample must contain every sampled id bit for bit with a loss mask covering exactly them; an episode
that fails, or whose prompts raise TokenDriftError, counts in ``drift_episodes``. For contrast,
``retokenize_mismatch_episodes`` counts episodes where re-rendering the final conversation with
``apply_chat_template`` (what many trainers do) would NOT reproduce the ids the model saw and sampled.

Keys: ``episodes_checked``, ``drift_episodes``, ``turns``, ``tokenize_us_per_turn`` (``prompt_ids``),
``parse_us_per_turn``, ``retokenize_mismatch_episodes``, ``export_samples_per_s``, ``export_tokens_per_s``.

Run: ``python -m benchmarks.tito [--episodes 10000] [--json FILE]`` or ``swarmgym bench tito``.
"""

from __future__ import annotations

import argparse
import random
import time
from typing import Any

__all__ = ["main", "run"]

TEMPLATES = ("chatml_tools", "qwen3_like", "llama_like")


class _Timed:
    """Wraps a TokenizedConversation, timing prompt_ids and parse."""

    def __init__(self, conv: Any) -> None:
        self.conv = conv
        self.prompt_s = 0.0
        self.parse_s = 0.0
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.conv, name)

    def prompt_ids(self, *a: Any) -> list[int]:
        t = time.perf_counter()
        out = self.conv.prompt_ids(*a)
        self.prompt_s += time.perf_counter() - t
        self.calls += 1
        return out

    def parse(self, *a: Any, **kw: Any) -> Any:
        t = time.perf_counter()
        out = self.conv.parse(*a, **kw)
        self.parse_s += time.perf_counter() - t
        return out


def run(episodes: int = 10_000, seed: int = 0) -> dict[str, Any]:
    """Generate and check ``episodes`` episodes; return the figures (see module docstring)."""
    from swarmgym.errors import TokenDriftError
    from swarmgym.training.batch import to_batch
    from swarmgym.training.chat import message_to_template, tools_to_template
    from swarmgym.training.samples import trajectory_samples
    from swarmgym.training.synthetic import synthetic_episode
    from swarmgym.training.tiny import make_tiny_tokenizer
    from swarmgym.training.tito import TokenizedConversation

    convs = [_Timed(TokenizedConversation(make_tiny_tokenizer(t))) for t in TEMPLATES]
    rng = random.Random(seed)
    drift = retok_mismatch = turns = 0
    trajs = []
    for e in range(episodes):
        timed = convs[e % len(convs)]
        try:
            traj = synthetic_episode(timed, rng, episode=e)  # type: ignore[arg-type]
            (s,) = trajectory_samples(traj)
        except TokenDriftError:
            drift += 1
            continue
        turns += len(traj.completions)
        mask = [0] * len(s.ids)
        ok = True
        for (a, b), c in zip(s.turn_spans, traj.completions):
            ok &= s.ids[a:b] == c.completion_ids
            mask[a:b] = [1] * (b - a)
        ok &= mask == s.loss_mask
        drift += not ok
        trajs.append(traj)
        if e % 10 == 0:  # re-rendering is slow; sample every 10th episode
            last = traj.completions[-1]
            msgs = [message_to_template(m) for m in traj.messages]
            # the conversation up to and including the last assistant turn, as a trainer would re-tokenise it
            idx = max(i for i, m in enumerate(traj.messages) if m.role == "assistant")
            rerendered = timed.conv.tokenizer.apply_chat_template(
                msgs[: idx + 1], tools=tools_to_template(traj.tools), return_dict=False
            )
            seen = (last.prompt_ids or []) + (last.completion_ids or [])
            retok_mismatch += list(rerendered[: len(seen)]) != seen
    retok_checked = (episodes + 9) // 10

    t0 = time.perf_counter()
    batch = to_batch(trajs, convs[0].conv.tokenizer)
    export_s = time.perf_counter() - t0
    calls = sum(c.calls for c in convs)
    return {
        "episodes_checked": episodes,
        "drift_episodes": drift,
        "turns": turns,
        "tokenize_us_per_turn": 1e6 * sum(c.prompt_s for c in convs) / max(calls, 1),
        "parse_us_per_turn": 1e6 * sum(c.parse_s for c in convs) / max(calls, 1),
        "retokenize_checked": retok_checked,
        "retokenize_mismatch_episodes": retok_mismatch,
        "export_samples_per_s": len(batch) / export_s,
        "export_tokens_per_s": float(batch.attention_mask.sum()) / export_s,
        "templates": list(TEMPLATES),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="swarmgym bench tito", description=__doc__.splitlines()[0])
    p.add_argument("--episodes", type=int, default=10_000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", metavar="FILE", help="write the results as JSON here")
    a = p.parse_args(argv)
    res = run(a.episodes, a.seed)

    from benchmarks._report import report

    report(
        f"Token-in-token-out ({a.episodes} synthetic episodes, {', '.join(TEMPLATES)})",
        res,
        json_path=a.json,
        skip=("templates",),
    )
    return 0 if res["drift_episodes"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
