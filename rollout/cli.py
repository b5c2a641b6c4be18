"""``swarmgym run``: run episodes of an env with a policy, show live progress, store the trajectories.

The top-level ``cli.py`` registers the subcommand with :func:`add_run_arguments` and calls
:func:`run_command`. Errors a user can cause are :class:`~swarmgym.errors.SwarmgymError` subclasses with a
message saying what to do; the top-level CLI prints them as one line.

Examples::

    swarmgym run swarmgym/ToolMath-v0 --policy oracle -n 100 --out runs/oracle.jsonl
    swarmgym run swarmgym/ToolMath-v0 --policy hf:smollm2 -n 8 --max-tokens 64 --out runs/smollm2.jsonl
    swarmgym run swarmgym/Math-v0 --policy http://localhost:8000/v1 --model Qwen/Qwen3-8B \\
        -n 1000 --group-size 8 --concurrency 256 --out runs/q3.jsonl --metrics-port 9100
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import threading
from typing import Any

from ..errors import ConfigError, SwarmgymError

__all__ = ["add_run_arguments", "run_command"]


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``run`` subcommand's arguments to ``parser``."""
    parser.add_argument("env", help="env id, e.g. swarmgym/ToolMath-v0 (see `swarmgym envs`)")
    parser.add_argument(
        "--policy",
        default="oracle",
        help="'oracle' (the env's reference solution), 'scripted' (a fixed answer), 'hf:MODEL' (a local "
        "transformers model: a fetched real model such as hf:smollm2, or a folder), or an OpenAI-compatible "
        "base URL such as http://localhost:8000/v1 (default: oracle)",
    )
    parser.add_argument("--model", default=None, help="model name for a URL policy (default: the server's first)")
    parser.add_argument("--api-key", default=None, help="bearer token for a URL policy")
    parser.add_argument("--scripted-text", default="42", help="the answer of --policy scripted")
    parser.add_argument("-n", type=int, default=None, help="number of tasks (default: all of the env's)")
    parser.add_argument("--group-size", type=int, default=1, help="samples per task (GRPO groups)")
    parser.add_argument("--concurrency", type=int, default=256, help="episodes in flight at once")
    parser.add_argument("--out", default=None, help="store trajectories in this JSONL file (.gz compresses)")
    parser.add_argument("--resume", action="store_true", help="continue --out, skipping finished episodes")
    parser.add_argument("--seed", type=int, default=0, help="base of the episodes' reset seeds (default 0)")
    parser.add_argument("--max-turns", type=int, default=None, help="cap on assistant turns per episode")
    parser.add_argument("--temperature", type=float, default=1.0, help="sampling temperature (default 1.0)")
    parser.add_argument("--max-tokens", type=int, default=None, help="max completion tokens per model call")
    parser.add_argument("--metrics-port", type=int, default=None, help="serve Prometheus metrics on this port")
    parser.add_argument("--no-live", action="store_true", help="no live dashboard (plain summary only)")
    parser.add_argument("--env-arg", action="append", default=[], metavar="KEY=VALUE",
                        help="keyword argument for the env factory (VALUE parsed as JSON when it can be)")  # fmt: skip
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.add_argument("--profile", default=None, metavar="FILE",
                        help="write a pyinstrument report of the run and its slowest event-loop callbacks to FILE "
                             "(and FILE.html); needs swarmgym[profile]")
    parser.add_argument("--no-timeline", action="store_true",
                        help="do not write OUT's timeline (concurrency and loop lag over time, for plot and view)")
    parser.add_argument("--ray", default=None, metavar="ADDRESS",
                        help="run episodes on Ray workers: 'local' starts Ray here, 'auto' joins the running "
                        "cluster, or HOST:PORT / ray:// address (needs swarmgym[ray] on every node)")  # fmt: skip
    parser.add_argument("--ray-workers", type=int, default=None, help="Ray worker actors (default: one per CPU)")
    parser.add_argument("--ray-spawn", choices=("local", "spread"), default="local",
                        help="where child episodes run: on their parent's worker, or on the other workers in turn")  # fmt: skip


def _env_kwargs(items: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--env-arg needs KEY=VALUE, got {item!r}")
        try:
            out[key] = json.loads(value)
        except ValueError:
            out[key] = value
    return out


def _policy(args: argparse.Namespace) -> Any:
    spec = args.policy
    if spec == "oracle":
        from ..policies.scripted import OraclePolicy

        return OraclePolicy()
    if spec == "scripted":
        from ..policies.scripted import ScriptedPolicy

        return ScriptedPolicy([args.scripted_text], cycle=True)
    if spec.startswith(("http://", "https://")):
        from ..policies.openai_http import OpenAIPolicy

        return OpenAIPolicy(spec, args.model or "", args.api_key, max_connections=max(args.concurrency, 1))
    if spec.startswith("hf:") and spec[3:]:
        from ..policies.hf import HFPolicy

        return HFPolicy(spec[3:], max_batch=max(args.concurrency, 1))
    raise ConfigError(f"--policy must be 'oracle', 'scripted', 'hf:MODEL' or an http(s) URL, got {spec!r}")


def _policy_spec(args: argparse.Namespace, live: Any) -> Any:
    """The policy as a :class:`~swarmgym.rollout.specs.Spec` for Ray workers (``live`` after --model was
    resolved)."""
    from .specs import Spec

    if args.policy == "oracle":
        return Spec("swarmgym.policies.scripted:OraclePolicy")
    if args.policy == "scripted":
        return Spec("swarmgym.policies.scripted:ScriptedPolicy", responses=[args.scripted_text], cycle=True)
    return Spec(
        "swarmgym.policies.openai_http:OpenAIPolicy", base_url=args.policy, model=live.model, api_key=args.api_key,
        max_connections=max(args.concurrency, 1),
    )  # fmt: skip


async def _resolve_model(policy: Any) -> None:
    """A URL policy without --model uses the server's first model."""
    if getattr(policy, "model", None) == "":
        models = await policy.list_models()
        if not models:
            raise ConfigError(f"the server at {policy.base_url} lists no models; pass --model")
        policy.model = models[0]


async def _resolve_model_once(policy: Any) -> None:
    try:
        await _resolve_model(policy)
    finally:
        aclose = getattr(policy, "aclose", None)
        if aclose is not None:
            await aclose()


def run_command(args: argparse.Namespace) -> int:
    """Run the ``run`` subcommand; returns the exit code (130 when interrupted, 143 when stopped by SIGTERM)."""
    import anyio
    from rich.console import Console

    from ..envs.registry import make
    from ..wire import SamplingParams
    from .limits import RolloutLimits
    from .manager import RolloutManager
    from .metrics import LiveDashboard, RolloutMetrics, serve_prometheus, summary_rows
    from .store import TrajectoryStore

    if args.resume and not args.out:
        raise ConfigError("--resume needs --out FILE (the store to continue)")
    if args.group_size < 1 or args.concurrency < 1:
        raise ConfigError("--group-size and --concurrency must be at least 1")
    if args.n is not None and args.n < 1:
        raise ConfigError(f"-n must be at least 1 (leave it out to run all of the env's tasks), got {args.n}")
    env = make(args.env, **_env_kwargs(args.env_arg))
    policy = _policy(args)
    limits = RolloutLimits(max_episodes=args.concurrency, max_turns_per_episode=args.max_turns)
    sampling = SamplingParams(temperature=args.temperature, max_tokens=args.max_tokens)
    console = Console(stderr=True)
    metrics = RolloutMetrics()
    store = TrajectoryStore(args.out, resume=args.resume) if args.out else None
    prom = None
    interrupted = False
    terminated: list[int] = []  # SIGTERM arrived (see _stop_on_sigterm)
    error: SwarmgymError | None = None
    n_tasks = args.n if args.n is not None else len(env.tasks)
    try:
        if args.metrics_port is not None:
            prom = serve_prometheus(metrics, args.metrics_port)
        mgr_kw: dict[str, Any] = {}
        if args.ray is not None:
            anyio.run(_resolve_model_once, policy)  # the workers get the model name; this client is done
            mgr_kw = {"backend": "ray", "ray_address": args.ray, "ray_workers": args.ray_workers,
                      "ray_spawn": args.ray_spawn}  # fmt: skip
        if args.out and not args.no_timeline and args.ray is None:
            from .timeline import timeline_path

            mgr_kw["timeline"] = timeline_path(args.out)  # beside the store; a resumed run appends
            if not args.resume:  # a new store (the store refuses an existing one): not a stale run's timeline
                mgr_kw["timeline"].unlink(missing_ok=True)
        mgr = RolloutManager(
            _policy_spec(args, policy) if args.ray is not None else policy, limits, store=store, metrics=metrics,
            sampling=sampling, **mgr_kw,
        )  # fmt: skip

        async def go() -> None:
            failed: list[Exception] = []  # raised as itself below, not wrapped in the task group's ExceptionGroup
            async with anyio.create_task_group() as tg:
                if threading.current_thread() is threading.main_thread():
                    tg.start_soon(_stop_on_sigterm, tg.cancel_scope, terminated)
                try:
                    await _resolve_model(policy)
                    async with contextlib.aclosing(
                        mgr.stream(env, args.n, group_size=args.group_size, seed=args.seed)
                    ) as s:
                        async for _ in s:  # trajectories are in the store; keep nothing here
                            pass
                except Exception as e:
                    failed.append(e)
                finally:
                    tg.cancel_scope.cancel()  # the SIGTERM watcher
                    aclose = getattr(policy, "aclose", None)
                    if aclose is not None:
                        with anyio.CancelScope(shield=True):
                            await aclose()
            if failed:
                raise failed[0]

        live = not args.no_live and not args.json and console.is_terminal
        dash = LiveDashboard(
            metrics, total=n_tasks * args.group_size, title=f"swarmgym run {args.env}", console=console
        )
        profiler: Any = contextlib.nullcontext()
        if args.profile:
            from .profile import RunProfiler

            profiler = RunProfiler(args.profile)
        with dash if live else contextlib.nullcontext(), profiler:
            try:
                anyio.run(go)
                interrupted = bool(terminated)
            except KeyboardInterrupt:
                interrupted = True
            except SwarmgymError as e:  # the breaker: still show what was done, then report it
                error = e
    finally:
        ray_backend = getattr(locals().get("mgr"), "_ray", None)
        if ray_backend is not None:  # workers close their HTTP sessions before they are stopped
            ray_backend.shutdown()
        if store is not None:
            store.close()
        if prom is not None:
            prom.shutdown()
    _print_summary(args, metrics, summary_rows(metrics, args.group_size), store, interrupted)
    if error is not None:
        raise error
    if terminated:
        return 128 + signal.SIGTERM
    return 130 if interrupted else 0


async def _stop_on_sigterm(scope: Any, hit: list[int]) -> None:
    """On SIGTERM (a scheduler stopping the job), end the run as Ctrl-C does: episodes in flight are stored as
    cancelled, the summary is printed, ``--resume`` reruns them. A second SIGTERM kills the process."""
    import anyio

    with anyio.open_signal_receiver(signal.SIGTERM) as signals:
        async for _ in signals:
            hit.append(1)
            scope.cancel()
            return


def _print_summary(
    args: argparse.Namespace, metrics: Any, rows: list[tuple[str, str]], store: Any, interrupted: bool
) -> None:
    from rich.console import Console
    from rich.table import Table

    if args.json:
        snap = metrics.snapshot()
        snap["interrupted"] = interrupted
        snap["out"] = args.out
        print(json.dumps(snap, default=str))
        return
    t = Table(title=f"swarmgym run {args.env}" + (" (interrupted)" if interrupted else ""))
    t.add_column("metric", style="bold")
    t.add_column("value", justify="right")
    skipped = metrics.counters["skipped_done"]
    if skipped:
        rows = [("skipped (already stored)", f"{skipped:,}"), *rows]
    for k, v in rows:
        t.add_row(k, v)
    if store is not None:
        t.add_row("stored in", str(store.path))
    Console().print(t)
