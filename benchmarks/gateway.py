"""Gateway overhead: the same chat call sent to the fake server directly and through ``swarmgym gateway``.

Three processes, as deployed: the fake OpenAI-compatible server (a child process), the gateway (``swarmgym
gateway`` as a child process, recording every call into trajectories and storing them at the end), and the
load client here. The client is the best plain one: aiohttp + orjson on one shared session, the same request
body for both arms (the gateway arm adds the episode's ``Authorization`` header).

- Latency: ``--calls`` sequential calls (concurrency 1), the two arms **interleaved call by call** so both
  see the same machine load; ``added_latency_p50_ms`` / ``added_latency_p99_ms`` are the differences of the
  arms' percentiles (target: ≤ 0.3 ms added p50).
- Baseline hop: a bare aiohttp forwarding proxy (a third child process: read the body, post it to the
  upstream with a ``ClientSession``, return the bytes — no parsing, no recording) runs as a third arm, so
  the figures show what any Python HTTP hop costs here and what the gateway adds on top
  (``proxy_added_latency_p50_ms``, ``ratio_vs_bare_proxy``, CPU per call of each process).
- Throughput: ``-n`` calls on ``--concurrency`` workers per arm (one API key — one episode — per worker),
  arms alternated ``--repeats`` times, best run of each kept; ``ratio_vs_direct`` = gateway calls/s ÷
  direct calls/s (target ≥ 0.8). The gateway arm needs a third process's CPU on the same cores; on a
  2-core machine that is most of what the ratio measures.

Run: ``swarmgym bench gateway [-n 3000] [--calls 2000] [--concurrency 32] [--json FILE] [--quick]
[--no-check]``.
"""

from __future__ import annotations

import asyncio
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from typing import Any

from benchmarks._report import Bench, Target

__all__ = ["TARGETS", "run", "main"]

TARGETS = [
    Target("added_latency_p50_ms", "<=", 0.3, what="added latency per proxied call through the gateway, p50, ms"),
    Target("ratio_vs_direct", ">=", 0.8, what="calls/s through the gateway ÷ calls/s to the upstream directly"),
]
DESCRIBE = {
    "proxy_added_latency_p50_ms": "added latency of a bare aiohttp forwarding proxy (no recording), p50, ms",
    "ratio_vs_bare_proxy": "calls/s through the gateway ÷ through the bare aiohttp proxy",
    "proxy_cpu_ms_per_call": "the bare proxy process's CPU per call, ms",
    "added_latency_p99_ms": "added latency per proxied call, p99, ms",
    "direct_latency_p50_ms": "direct call latency, p50, ms",
    "gateway_latency_p50_ms": "call latency through the gateway, p50, ms",
    "direct_calls_per_s": "direct calls/s",
    "gateway_calls_per_s": "calls/s through the gateway",
    "gateway_cpu_ms_per_call": "the gateway process's CPU per proxied call (throughput arm), ms",
    "upstream_cpu_ms_per_call": "the fake server's CPU per call (direct arm), ms",
    "gateway_recorded_calls": "calls the gateway stored in trajectories (must equal those sent)",
}
QUICK = {"n": 600, "calls": 300, "concurrency": 16, "repeats": 2}
PROMPT = "What is 17 + 25? Answer with the number only."


def _cpu_s(pid: int | None) -> float | None:
    """User + system CPU seconds of process ``pid`` so far (Linux ``/proc``; None elsewhere)."""
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def _pct(xs: list[float], q: float) -> float:
    return statistics.quantiles(xs, n=100, method="inclusive")[q - 1] if len(xs) > 1 else xs[0]


async def _measure(
    urls: dict[str, str], n: int, calls: int, concurrency: int, repeats: int, pids: dict[str, int | None]
) -> dict[str, Any]:
    """``urls``: arm name -> base URL ("direct", "proxy", "gateway"); ``pids``: process name -> pid."""
    import aiohttp
    import orjson

    body = orjson.dumps({"model": "fake-model", "messages": [{"role": "user", "content": PROMPT}]})
    res: dict[str, Any] = {}
    arms = list(urls)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency + 1)) as session:

        def caller(base: str, key: str | None) -> Callable[[], Awaitable[None]]:
            url = base + "/chat/completions"
            headers = {"Content-Type": "application/json", "Authorization": f"Bearer {key}"}

            async def call() -> None:
                async with session.post(url, data=body, headers=headers) as resp:
                    data = orjson.loads(await resp.read())
                    if resp.status != 200 or data["choices"][0]["message"]["content"] != "42":
                        raise RuntimeError(f"{url}: {resp.status} {str(data)[:200]}")

            return call

        fns = {arm: caller(urls[arm], "bench-latency") for arm in arms}
        for _ in range(50):  # warm every connection
            for fn in fns.values():
                await fn()
        lat: dict[str, list[float]] = {arm: [] for arm in arms}
        for i in range(calls):  # interleaved call by call, rotating which arm goes first
            k = i % len(arms)
            for arm in arms[k:] + arms[:k]:
                t0 = time.perf_counter()
                await fns[arm]()
                lat[arm].append((time.perf_counter() - t0) * 1000)
        for arm, xs in lat.items():
            res[f"{arm}_latency_p50_ms"] = round(_pct(xs, 50), 4)
            res[f"{arm}_latency_p99_ms"] = round(_pct(xs, 99), 4)
        for arm, label in (("gateway", "added"), ("proxy", "proxy_added")):
            if arm in lat:
                for q in ("p50", "p99"):
                    res[f"{label}_latency_{q}_ms"] = round(
                        res[f"{arm}_latency_{q}_ms"] - res[f"direct_latency_{q}_ms"], 4
                    )

        async def drive(arm: str) -> float:
            remaining = n

            async def worker(w: int) -> None:
                nonlocal remaining
                fn = caller(urls[arm], f"bench-{w}")  # one API key (one gateway episode) per worker
                while remaining > 0:
                    remaining -= 1
                    await fn()

            t0 = time.perf_counter()
            await asyncio.gather(*(worker(w) for w in range(concurrency)))
            return n / (time.perf_counter() - t0)

        best = {arm: 0.0 for arm in arms}
        cpu: dict[str, float] = {}
        for r in range(repeats):
            k = r % len(arms)
            for arm in arms[k:] + arms[:k]:
                before = {name: _cpu_s(pid) for name, pid in pids.items()}
                best[arm] = max(best[arm], await drive(arm))
                for name, pid in pids.items():
                    after, b0 = _cpu_s(pid), before[name]
                    if after is not None and b0 is not None:
                        cpu[f"{name} in {arm}"] = cpu.get(f"{name} in {arm}", 0.0) + after - b0
        for arm in arms:
            res[f"{arm}_calls_per_s"] = round(best[arm], 1)
        res["ratio_vs_direct"] = round(best["gateway"] / best["direct"], 3)
        if "proxy" in best:
            res["proxy_ratio_vs_direct"] = round(best["proxy"] / best["direct"], 3)
            res["ratio_vs_bare_proxy"] = round(best["gateway"] / best["proxy"], 3)
        # CPU per call of each server process: what a hop costs, robust to a busy machine's scheduling.
        for name, arm in (("gateway", "gateway"), ("proxy", "proxy"), ("upstream", "direct")):
            if f"{name} in {arm}" in cpu:
                res[f"{name}_cpu_ms_per_call"] = round(1000 * cpu[f"{name} in {arm}"] / (n * repeats), 4)
    return res


_CHILD = (
    "import sys; sys.path.insert(0, sys.argv[1]); from benchmarks.gateway import _bare_proxy; _bare_proxy(sys.argv[2])"
)


def _bare_proxy(upstream: str) -> None:
    """The baseline hop: a plain aiohttp server forwarding each body to the upstream with a ClientSession and
    returning the answer's bytes (no parsing, no recording). Prints its base URL, serves until stdin closes."""
    import aiohttp
    from aiohttp import web

    async def serve() -> None:
        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256))
        url = upstream + "/chat/completions"
        headers = {"Content-Type": "application/json"}

        async def handle(request: web.BaseRequest) -> web.Response:
            async with session.post(url, data=await request.read(), headers=headers) as r:
                return web.Response(status=r.status, body=await r.read(), headers=headers)

        runner = web.ServerRunner(web.Server(handle, access_log=None), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        print(f"http://127.0.0.1:{port}/v1", flush=True)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, sys.stdin.read)  # the parent closed our stdin (or died)
        await runner.cleanup()
        await session.close()

    asyncio.run(serve())


def run(n: int = 3000, calls: int = 2000, concurrency: int = 32, repeats: int = 3) -> dict[str, Any]:
    """Start the fake server and the gateway as child processes, measure both arms, stop both.

    Returns the figures listed in the module docstring, plus ``gateway_recorded_calls`` read back from the
    gateway's store (each proxied call must be recorded once).
    """
    from swarmgym.gateway.cli import READY_PREFIX
    from swarmgym.rollout.store import read_trajectories
    from swarmgym.testing.process import start_fake_server_process

    with tempfile.TemporaryDirectory() as tmp, start_fake_server_process(default_text="42") as up:
        out = os.path.join(tmp, "gw.jsonl")
        cmd = [sys.executable, "-m", "swarmgym.cli", "gateway", "--upstream", up.base_url, "--port", "0"]
        cmd += ["--out", out, "--idle-s", "3600"]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            line = proc.stdout.readline() if proc.stdout else ""
            if not line.startswith(READY_PREFIX):
                raise RuntimeError(f"gateway did not start: {line}{proc.stderr.read() if proc.stderr else ''}")
            base = line[len(READY_PREFIX) :].split()[0]
            bare = subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    _CHILD,
                    os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                    up.base_url,
                ],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            try:
                proxy = bare.stdout.readline().strip() if bare.stdout else ""
                if not proxy.startswith("http://"):
                    raise RuntimeError("the bare proxy did not start")
                urls = {"direct": up.base_url, "proxy": proxy, "gateway": base}
                pids = {"gateway": proc.pid, "proxy": bare.pid, "upstream": up.pid}
                res = asyncio.run(_measure(urls, n, calls, concurrency, repeats, pids))
            finally:
                if bare.stdin:
                    bare.stdin.close()
                try:
                    bare.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    bare.kill()
                    bare.wait()
            proc.send_signal(signal.SIGTERM)
            proc.communicate(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        res["gateway_recorded_calls"] = sum(len(t.completions) for t in read_trajectories(out))
    res["gateway_sent_calls"] = 50 + calls + n * repeats
    res.update({"n": n, "calls": calls, "concurrency": concurrency, "repeats": repeats})
    return res


def main(argv: list[str] | None = None) -> int:
    """Command line: the contract of ``benchmarks/_report.py`` (table, JSON, exit code)."""
    bench = Bench("gateway", __doc__, TARGETS, DESCRIBE)
    p = bench.parser
    p.add_argument("-n", type=int, default=3000, help="calls per throughput arm and repeat (default 3000)")
    p.add_argument("--calls", type=int, default=2000, help="sequential calls per latency arm (default 2000)")
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--repeats", type=int, default=3)
    a = bench.parse_args(argv)
    kw = dict(QUICK) if a.quick else {"n": a.n, "calls": a.calls, "concurrency": a.concurrency, "repeats": a.repeats}

    def measure(res: dict[str, Any]) -> None:
        with bench.arm("direct and gateway"):
            res.update(run(**kw))
            if res["gateway_recorded_calls"] != res["gateway_sent_calls"]:
                raise RuntimeError(
                    f"the gateway recorded {res['gateway_recorded_calls']} calls of {res['gateway_sent_calls']} sent"
                )

    title = f"gateway overhead (latency: {kw['calls']} interleaved calls; throughput: N={kw['n']} ×{kw['concurrency']})"
    return bench.run(measure, title=title)


if __name__ == "__main__":
    raise SystemExit(main())
