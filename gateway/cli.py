"""``swarmgym gateway``: serve the gateway in front of an OpenAI-compatible upstream and store each episode.

Each new API key opens an episode; an episode is written to ``--out`` when its key has been idle for
``--idle-s`` seconds, and every open episode is written at Ctrl-C / SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

__all__ = ["add_arguments", "run"]

READY_PREFIX = "swarmgym gateway listening on "


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``swarmgym gateway``."""
    p.add_argument("--upstream", required=True, help="the model server's OpenAI base URL, e.g. http://host:8000/v1")
    p.add_argument("--model", default=None, help="model name at the upstream (default: the first it lists)")
    p.add_argument("--upstream-key", default=None, help="API key for the upstream (local servers need none)")
    p.add_argument("--port", type=int, default=8100, help="port to serve on (0 = any free port)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--out", required=True, help="trajectories JSONL file (appended to when it exists)")
    p.add_argument("--idle-s", type=float, default=60.0, help="store an episode after this long without calls")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds per upstream call")


async def _serve(args: argparse.Namespace) -> int:
    from ..policies import OpenAIPolicy
    from ..rollout.store import TrajectoryStore
    from ..wire import Trajectory
    from .server import Gateway

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    store = TrajectoryStore(args.out, resume=True)
    stored = 0

    def keep(traj: Trajectory) -> None:
        nonlocal stored
        store.append(traj)
        store.flush()  # one episode at a time, each durable as soon as it is closed
        stored += 1
        print(f"stored episode {traj.info.get('gateway_key', '')[:16]} ({len(traj.completions)} calls)", flush=True)

    try:
        async with OpenAIPolicy(args.upstream, args.model or "", args.upstream_key, timeout=args.timeout) as pol:
            if not args.model:
                served = await pol.list_models()
                if not served:
                    print(f"swarmgym gateway: {args.upstream} lists no models; pass --model", file=sys.stderr)
                    return 2
                pol.model = served[0]
            gw = Gateway(pol, host=args.host, port=args.port, auto_open=True, idle_s=args.idle_s, on_close=keep)
            async with gw:
                print(READY_PREFIX + gw.base_url + f" (model {pol.model}, storing to {args.out})", flush=True)
                await stop.wait()
    finally:
        store.close()
    print(f"stored {stored} episode(s) to {args.out}", flush=True)
    return 0


def run(args: argparse.Namespace) -> int:
    """Run ``swarmgym gateway`` until Ctrl-C / SIGTERM."""
    return asyncio.run(_serve(args))
