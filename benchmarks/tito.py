"""Token-in-token-out on real chat templates: drift and render check over multi-turn tool episodes.

For each real template (:data:`swarmgym.testing.real_templates.CASES`: Qwen2.5, Qwen3 with and without
thinking, Llama 3.1/3.2, Mistral Nemo, SmolLM2, each with a real tokenizer; see that module for which), run
``--episodes`` multi-turn tool episodes (:func:`swarmgym.training.synthetic.template_episode`: the "sampled"
turns are the template's own text for random assistant messages, tokenised non-canonically, one in ten cut
before its end-of-turn token) through :class:`~swarmgym.chat.tokens.TokenizedConversation` and check:

- ``drift_episodes``: the prompt could not be extended exactly (TokenDriftError), or the exported sample
  does not hold every sampled id bit for bit under a loss mask covering exactly them;
- ``history_rewritten_episodes``: the template itself writes an earlier turn differently once later messages
  exist (Qwen3 drops the empty think block of non-last turns, Mistral Nemo moves the system prompt) — the ids
  keep what the model saw, so they cannot equal a re-render; not render-checked;
- ``render_mismatch_episodes``: among the others, episodes whose decoded ids differ from the template's
  render of the final conversation (plus the closing the last turn did not sample).

Run: ``swarmgym bench tito [--episodes N] [--quick] [--json FILE]`` (needs ``.ci/install-templates.sh``).
"""

from __future__ import annotations

import random
import time
from typing import Any

from benchmarks._report import Bench, Target

__all__ = ["main", "check_episode", "run_template"]

# Templates that rewrite the start of the prompt when messages are added: token-in-token-out refuses them
# (TokenDriftError) rather than train on ids that match neither the template nor what the model saw.
NOT_APPEND_ONLY = {
    "mistral-nemo": "shows the system prompt only with the last message and the tools before the last user turn",
}
TARGETS = [
    Target("drift_episodes_append_only", "==", 0, what="episodes with drift, all append-only real templates"),
    Target("render_mismatch_episodes", "==", 0, what="render-checked episodes whose ids ≠ the template's render"),
]


def check_episode(conv: Any, traj: Any) -> tuple[bool, bool, bool]:
    """``(exact, history_rewritten, render_matches)`` of one finished episode built through ``conv``."""
    from swarmgym.chat.render import message_to_template, tools_to_template
    from swarmgym.chat.tokens import _missing_tail
    from swarmgym.training.samples import trajectory_samples

    (s,) = trajectory_samples(traj)
    mask = [0] * len(s.ids)
    exact = True
    for (a, b), c in zip(s.turn_spans, traj.completions):
        exact &= s.ids[a:b] == c.completion_ids
        mask[a:b] = [1] * (b - a)
    exact &= mask == s.loss_mask
    r = conv.renderer
    tools_t = tools_to_template(traj.tools)
    msgs = [message_to_template(m) for m in traj.messages]
    ends = [i for i, m in enumerate(traj.messages) if m.role == "assistant"]
    final = r.render(msgs[: ends[-1] + 1], tools_t, add_generation_prompt=False)
    # rewritten: the render of what the model saw at a turn (its prompt, or the conversation ending in its
    # answer) is not a prefix of the final render
    rewritten = any(
        not final.startswith(r.render(msgs[:i], tools_t, add_generation_prompt=True))
        or not final.startswith(r.render(msgs[: i + 1], tools_t, add_generation_prompt=False))
        for i in ends
    )
    tail = _missing_tail(traj.completions[-1].completion_ids, conv.tail_ids)
    matches = r.decode(s.ids + tail) == final
    return exact, rewritten, matches


def run_template(name: str, episodes: int, seed: int = 0) -> dict[str, Any]:
    """The figures of one real template over ``episodes`` episodes."""
    from swarmgym.chat.tokens import TokenizedConversation
    from swarmgym.errors import TokenDriftError
    from swarmgym.testing.real_templates import load
    from swarmgym.training.synthetic import template_episode

    tok, case = load(name)
    conv = TokenizedConversation(tok, chat_template_kwargs=case.chat_template_kwargs)
    thinking = case.chat_template_kwargs.get("enable_thinking", True) and "qwen3" in name
    rng = random.Random(seed)
    drift = rewritten = checked = mismatch = turns = 0
    t0 = time.perf_counter()
    for e in range(episodes):
        try:
            traj = template_episode(conv, rng, episode=e, reasoning=thinking)
            exact, rew, ok = check_episode(conv, traj)
        except TokenDriftError:
            drift += 1
            continue
        turns += len(traj.completions)
        drift += not exact
        if rew:
            rewritten += 1
        else:
            checked += 1
            mismatch += not ok
    return {
        "name": name,
        "episodes": episodes,
        "turns": turns,
        "drift_episodes": drift,
        "history_rewritten_episodes": rewritten,
        "render_checked_episodes": checked,
        "render_mismatch_episodes": mismatch,
        "ms_per_episode": 1e3 * (time.perf_counter() - t0) / max(episodes, 1),
        "append_only": name not in NOT_APPEND_ONLY,
        "note": NOT_APPEND_ONLY.get(name, ""),
    }


def main(argv: list[str] | None = None) -> int:
    bench = Bench(
        "tito",
        __doc__,
        TARGETS,
        describe={"templates": "per real template: episodes, drift, history rewritten, render mismatches"},
    )
    bench.parser.add_argument("--episodes", type=int, default=10_000, help="episodes per template")
    bench.parser.add_argument("--seed", type=int, default=0)
    bench.parser.add_argument("--only", nargs="*", help="template names (default: all)")
    a = bench.parse_args(argv)
    n = 200 if a.quick else a.episodes

    def measure(res: dict[str, Any]) -> None:
        from swarmgym.testing.real_templates import CASES

        rows = res["templates"] = []
        for name in a.only or list(CASES):
            with bench.arm(name):
                rows.append(run_template(name, n, a.seed))
                r = rows[-1]
                print(
                    f"  {name}: {r['drift_episodes']} drift, {r['history_rewritten_episodes']} rewritten, "
                    f"{r['render_mismatch_episodes']}/{r['render_checked_episodes']} render mismatches",
                    flush=True,
                )
        res["drift_episodes_append_only"] = sum(r["drift_episodes"] for r in rows if r["append_only"])
        res["render_mismatch_episodes"] = sum(r["render_mismatch_episodes"] for r in rows)
        res["episodes_per_template"] = n

    return bench.run(measure, title=f"token-in-token-out on real chat templates ({n} episodes each)", hide=("templates",))


if __name__ == "__main__":
    raise SystemExit(main())
