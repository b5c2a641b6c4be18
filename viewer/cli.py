"""The ``view``, ``verify`` and ``plot`` subcommands (registered by :mod:`swarmgym.cli`)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

__all__ = ["add_subcommands", "run_subcommand", "COMMANDS"]

COMMANDS = ("view", "verify", "plot")


def add_subcommands(sub: Any) -> None:
    """Add ``view``, ``verify`` and ``plot`` to the main parser's subparsers."""
    v = sub.add_parser("view", help="browse a trajectories file in a local web viewer (or --html to a file)")
    v.add_argument("file", help="a trajectories JSONL file (from `swarmgym run --out`)")
    v.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one, printed)")
    v.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    v.add_argument("--html", metavar="OUT", default=None, help="write one static self-contained HTML file and exit")
    v.add_argument("--limit", type=int, default=1000, help="--html: top-level episodes to include (file order)")
    v.add_argument("--no-follow", action="store_true", help="index the file once (default: follow it as it grows)")
    v.add_argument("--tokenizer", default=None, help="tokenizer.json or local HF folder to decode token ids")

    c = sub.add_parser("verify", help="check a trajectories file (CRC, schema, tokens, rewards, trees); exit 1 on errors")
    c.add_argument("file", help="a trajectories JSONL file (.gz too)")
    c.add_argument("--reward-min", type=float, default=0.0, help="lowest valid reward (default 0)")
    c.add_argument("--reward-max", type=float, default=1.0, help="highest valid reward (default 1)")
    c.add_argument("--strict", action="store_true", help="warnings fail too (exit 1)")
    c.add_argument("--json", action="store_true", help="print the report as JSON")

    p = sub.add_parser("plot", help="save PNG plots of a run (rewards, pass@k, latencies); needs swarmgym[viz]")
    p.add_argument("file", help="a trajectories JSONL file")
    p.add_argument("--out", default=None, help="folder for the PNGs (default: FILE's name + '-plots')")
    p.add_argument("--success", type=float, default=1.0, help="reward that counts as solved for pass@k")


def run_subcommand(args: argparse.Namespace) -> int:
    if args.command == "verify":
        return _verify(args)
    if args.command == "plot":
        return _plot(args)
    return _view(args)


def _verify(args: argparse.Namespace) -> int:
    from .verify import print_report, verify_file

    rep = verify_file(args.file, reward_min=args.reward_min, reward_max=args.reward_max)
    if args.json:
        print(json.dumps(rep.as_dict(), indent=2))
    else:
        from rich.console import Console

        print_report(rep, Console())
    return rep.exit_code(args.strict)


def _plot(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .plots import save_plots

    out = args.out or str(Path(args.file).with_suffix("")) + "-plots"
    files = save_plots(args.file, out, success=args.success)
    for f in files:
        print(f)
    if files and not any(f.stem == "concurrency_over_time" for f in files):
        from ..rollout.timeline import timeline_path

        print(f"no timeline at {timeline_path(args.file)} (a run with --no-timeline, or not written by swarmgym "
              "run --out): concurrency and loop lag over time not drawn", file=sys.stderr)  # fmt: skip
    if not files:
        print(f"no top-level episodes in {args.file}: nothing to plot", file=sys.stderr)
        return 1
    return 0


def _view(args: argparse.Namespace) -> int:
    from .views import load_tokenizer

    tok = load_tokenizer(args.tokenizer)
    if args.html:
        from .export import write_html

        info = write_html(args.file, args.html, limit=args.limit, tokenizer=tok)
        print(f"wrote {args.html}: {info['episodes']} episodes, {info['trajectories']} trajectories, "
              f"{info['bytes']:,} bytes")
        return 0
    import anyio

    from .index import RunIndex
    from .server import make_app, start_server

    index = RunIndex(args.file, follow=not args.no_follow).start()

    async def serve() -> None:
        runner, url = await start_server(make_app(index, tokenizer=tok), args.host, args.port)
        print(f"swarmgym view: {url}  ({args.file}; Ctrl-C to stop)", flush=True)
        try:
            await anyio.sleep_forever()
        finally:
            await runner.cleanup()
            index.stop()

    anyio.run(serve)
    return 0
