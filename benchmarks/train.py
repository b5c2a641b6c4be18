"""A real RL run on CPU: SmolLM2-135M trained with TRL's GRPOTrainer on a swarmgym env, held-out reward before → after.

Runs ``examples/grpo_smollm2.py`` (the recipe, documented there): "a + b" tasks (a, b in 2..20), rollouts
through ``HFPolicy`` on the model being trained and ``make_rollout_func``, TRL 1.16 ``GRPOTrainer(rollout_func=…)``,
greedy accuracy on ``--heldout`` (48) held-out tasks before, every ``--eval-every`` steps and after; a learning-curve PNG
next to the JSON (``--out``). Each ``--seeds`` value is one full run; the figures are the mean over seeds,
and every seed's own figures are in ``runs``.

Needs ``pip install 'swarmgym[train]'`` and ``swarmgym models fetch smollm2``. Not for CI except ``--quick``
(2 steps on 8 held-out tasks: the same code path end to end; it cannot show learning).

Keys: ``reward_before``, ``reward_after``, ``reward_gain``, ``steps``, ``wall_s`` (all seeds), ``seeds``,
``gain_min``, ``gain_max``, ``runs`` (per seed: the same plus the curves and the PNG path).
"""

from __future__ import annotations

import importlib.util
import statistics
import time
from pathlib import Path
from typing import Any

from benchmarks._report import Bench, Target

__all__ = ["main", "TARGETS"]

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "grpo_smollm2.py"

TARGETS = [
    Target(
        "reward_gain",
        ">=",
        0.05,
        quick=-1.0,
        quick_why="2 GRPO steps cannot move a policy; quick mode checks the loop runs end to end",
        what="held-out greedy accuracy after − before (mean over seeds)",
    ),
]


def _example() -> Any:
    spec = importlib.util.spec_from_file_location("swarmgym_example_grpo_smollm2", EXAMPLE)
    if spec is None or spec.loader is None:
        raise FileNotFoundError(f"the training example is missing: {EXAMPLE}")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def main(argv: list[str] | None = None) -> int:
    bench = Bench(
        "train",
        __doc__,
        TARGETS,
        describe={
            "reward_before": "held-out greedy accuracy before training (48 a + b tasks)",
            "reward_after": "held-out greedy accuracy after training",
            "steps": "GRPO steps per seed",
            "wall_s": "wall time, all seeds, s",
        },
    )
    bench.parser.add_argument("--steps", type=int, default=16)
    bench.parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    bench.parser.add_argument("--lr", type=float, default=2e-5)
    bench.parser.add_argument("--eval-every", type=int, default=8)
    bench.parser.add_argument("--out", default="runs/bench-train", help="folder for PNGs and per-seed JSON")
    bench.parser.add_argument("--heldout", type=int, default=48, help="held-out tasks")
    bench.parser.add_argument("--batch", type=int, default=16, help="rows per GRPO step (prompts × 8 generations)")
    bench.parser.add_argument("--threads", type=int, default=None, help="torch threads (1 is fastest on a busy machine)")
    a = bench.parse_args(argv)

    def measure(res: dict[str, Any]) -> None:
        ex = _example()
        t0 = time.monotonic()
        runs = []
        for seed in a.seeds:
            with bench.arm(f"seed {seed}"):
                if a.quick:
                    r = ex.train(steps=2, seed=seed, out=a.out, heldout_tasks=8, batch=8, generations=4, eval_every=0,
                                 threads=a.threads)  # fmt: skip
                else:
                    r = ex.train(steps=a.steps, seed=seed, out=a.out, lr=a.lr, eval_every=a.eval_every,
                                 heldout_tasks=a.heldout, batch=a.batch, threads=a.threads)  # fmt: skip
                runs.append(r)
        res["wall_s"] = time.monotonic() - t0
        res["seeds"] = [r["seed"] for r in runs]
        if not runs:
            return
        res["reward_before"] = statistics.fmean(r["reward_before"] for r in runs)
        res["reward_after"] = statistics.fmean(r["reward_after"] for r in runs)
        res["reward_gain"] = res["reward_after"] - res["reward_before"]
        res["gain_min"] = min(r["reward_gain"] for r in runs)
        res["gain_max"] = max(r["reward_gain"] for r in runs)
        res["steps"] = runs[0]["steps"]
        res["runs"] = runs

    n = 2 if a.quick else a.steps
    return bench.run(
        measure,
        title=f"GRPO (TRL rollout_func) on SmolLM2-135M, CPU: a + b, {n} steps, seeds {a.seeds}",
        hide=("runs",),
    )


if __name__ == "__main__":
    raise SystemExit(main())
