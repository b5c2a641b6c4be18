"""Sandbox benchmark: cold start, warm acquire, python round trip, concurrency, and naive baselines.

    swarmgym bench sandbox --backend local|docker [--json FILE]
    python -m swarmgym.benchmarks.sandbox --backend docker --concurrent 256

Measures, in one run:

* ``cold_start_ms``: create a sandbox until its agent answers (median of several);
* ``acquire_p50_ms`` / ``acquire_p99_ms``: ``pool.acquire()`` entry on a warm pool (release + verified
  reset happen on exit and are reported separately as ``release_p50_ms``);
* ``python_rt_p50_ms`` / ``python_rt_p99_ms``: ``run_python("1+1")`` on a warm sandbox;
* ``max_concurrent_ok``: sandboxes held at once, each answering ``run_python``, when all of them
  succeeded (else the number that did), with the time it took and the host memory it used;
* baselines: ``python -c`` subprocess per call and ``docker run`` per call (when Docker is available);
* ``leaked_containers``: containers of this process still present at the end (must be 0).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from typing import Any

import anyio

TARGETS = {
    "acquire_p50_ms": 5.0,
    "acquire_p99_ms": 50.0,
    "python_rt_p50_ms": {"local": 5.0, "docker": 15.0},
    "max_concurrent_ok": {"local": 1000, "docker": 256},
}


def _pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))] if s else float("nan")


def _mem_available_mb() -> float:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 1024
    return float("nan")


async def _cold_start(backend: str, n: int) -> list[float]:
    from swarmgym.toolsets.sandbox import create_sandbox

    out = []
    for _ in range(n):
        t = time.perf_counter()
        sb = await create_sandbox(backend)
        out.append((time.perf_counter() - t) * 1e3)
        await sb.close()
    return out


async def _warm(backend: str, acquires: int, rts: int) -> dict[str, Any]:
    from swarmgym.toolsets.sandbox import SandboxPool

    acq: list[float] = []
    rel: list[float] = []
    rt: list[float] = []
    async with SandboxPool(backend, size=2) as pool:
        for _ in range(acquires):
            t0 = time.perf_counter()
            cm = pool.acquire()
            await cm.__aenter__()
            t1 = time.perf_counter()
            await cm.__aexit__(None, None, None)
            acq.append((t1 - t0) * 1e3)
            rel.append((time.perf_counter() - t1) * 1e3)
        async with pool.acquire() as sb:
            await sb.run_python("1+1")  # start the kernel
            for _ in range(rts):
                t = time.perf_counter()
                r = await sb.run_python("1+1")
                rt.append((time.perf_counter() - t) * 1e3)
                assert r.value == "2"
        stats = pool.stats
    return {
        "acquire_p50_ms": _pct(acq, 0.5),
        "acquire_p99_ms": _pct(acq, 0.99),
        "release_p50_ms": _pct(rel, 0.5),
        "python_rt_p50_ms": _pct(rt, 0.5),
        "python_rt_p99_ms": _pct(rt, 0.99),
        "pool_discarded": stats.discarded,
    }


async def _concurrent(backend: str, n: int) -> dict[str, Any]:
    from swarmgym.toolsets.sandbox import SandboxPool

    mem0 = _mem_available_mb()
    ok = 0
    failures: list[str] = []
    held = anyio.Event()
    t0 = time.perf_counter()
    pool = SandboxPool(
        backend, size=n, prewarm=0, acquire_timeout_s=600, start_concurrency=None, start_timeout_s=300
    )
    sem = anyio.Semaphore(16 if backend == "docker" else 64)  # pace starts: dockerd falls over at 32+
    ready = 0
    all_ready = anyio.Event()
    mem_peak_used = 0.0

    async def one() -> None:
        nonlocal ok, ready, mem_peak_used
        try:
            async with sem:
                cm = pool.acquire()
                sb = await cm.__aenter__()
            try:
                r = await sb.run_python("1+1", timeout=120)
                if r.value == "2":
                    ok += 1
                else:
                    failures.append(r.error or r.note)
            finally:
                ready += 1
                if ready == n:
                    mem_peak_used = mem0 - _mem_available_mb()
                    all_ready.set()
                await held.wait()  # hold every sandbox until all are up
                await cm.__aexit__(None, None, None)
        except Exception as e:  # counted, reported
            failures.append(f"{type(e).__name__}: {e}")
            ready += 1
            if ready == n:
                all_ready.set()

    try:
        async with anyio.create_task_group() as tg:
            for _ in range(n):
                tg.start_soon(one)
            await all_ready.wait()
            up_s = time.perf_counter() - t0
            held.set()
    finally:
        await pool.close()
    return {
        "max_concurrent_ok": ok if not failures else ok,
        "concurrent_requested": n,
        "concurrent_failures": len(failures),
        "concurrent_first_failure": failures[0][:300] if failures else "",
        "concurrent_up_s": up_s,
        "concurrent_mem_mb": mem_peak_used,
        "concurrent_mem_per_sandbox_mb": mem_peak_used / max(ok, 1),
    }


def _baseline_python_c(n: int) -> float:
    py = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
    xs = []
    for _ in range(n):
        t = time.perf_counter()
        subprocess.run([py, "-c", "print(1+1)"], check=True, capture_output=True)
        xs.append((time.perf_counter() - t) * 1e3)
    return statistics.median(xs)


def _baseline_docker_run(n: int) -> float | None:
    if shutil.which("docker") is None:
        return None
    try:
        from swarmgym.toolsets.sandbox.docker import docker_client
        from swarmgym.toolsets.sandbox.image import default_image

        docker_client().images.get(default_image())
    except Exception:
        return None
    xs = []
    for _ in range(n):
        t = time.perf_counter()
        p = subprocess.run(
            ["docker", "run", "--rm", "--network", "none", default_image(), "python3", "-c", "print(1+1)"],
            capture_output=True,
        )
        if p.returncode != 0:
            return None
        xs.append((time.perf_counter() - t) * 1e3)
    return statistics.median(xs)


def _leaked_containers() -> int:
    try:
        from swarmgym.toolsets.sandbox import reaper
        from swarmgym.toolsets.sandbox.docker import list_containers

        return sum(1 for c in list_containers() if c["owner"] == reaper.owner_tag())
    except Exception:
        return 0


def run(backend: str, *, cold: int, acquires: int, rts: int, concurrent: int, baseline_n: int) -> dict[str, Any]:
    """Run every measurement; returns the JSON-able result."""
    res: dict[str, Any] = {"backend": backend}
    cs = anyio.run(_cold_start, backend, cold)
    res["cold_start_ms"] = statistics.median(cs)
    res.update(anyio.run(_warm, backend, acquires, rts))
    if concurrent > 0:
        res.update(anyio.run(_concurrent, backend, concurrent))
    res["baseline_python_c_ms"] = _baseline_python_c(baseline_n)
    res["baseline_docker_run_ms"] = _baseline_docker_run(max(3, baseline_n // 5))
    res["speedup_vs_python_c"] = res["baseline_python_c_ms"] / res["python_rt_p50_ms"]
    if res["baseline_docker_run_ms"]:
        res["speedup_vs_docker_run"] = res["baseline_docker_run_ms"] / res["python_rt_p50_ms"]
    res["leaked_containers"] = _leaked_containers()
    return res


def _target(key: str, backend: str) -> Any:
    t = TARGETS.get(key)
    return t.get(backend) if isinstance(t, dict) else t


def _print(res: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    backend = res["backend"]
    table = Table(title=f"sandbox benchmark ({backend})")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_column("target", justify="right")
    for k, v in res.items():
        if k == "backend":
            continue
        tgt = _target(k, backend)
        if isinstance(v, float):
            shown = f"{v:.3f}" if v < 10 else f"{v:.1f}"
        else:
            shown = str(v)
        mark = ""
        if tgt is not None and isinstance(v, int | float):
            good = v >= tgt if k == "max_concurrent_ok" else v <= tgt
            mark = f"{'≥' if k == 'max_concurrent_ok' else '≤'} {tgt} {'✓' if good else '✗'}"
        table.add_row(k, shown, mark)
    Console().print(table)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="swarmgym bench sandbox", description=__doc__.split("\n")[0])
    ap.add_argument("--backend", choices=["local", "docker"], default="local")
    ap.add_argument("--json", metavar="FILE", help="write the results as JSON")
    ap.add_argument("--cold", type=int, default=10, help="cold starts to time")
    ap.add_argument("--acquires", type=int, default=1000, help="warm acquires to time")
    ap.add_argument("--round-trips", type=int, default=2000, help="python round trips to time")
    ap.add_argument(
        "--concurrent", type=int, default=None, help="sandboxes to hold at once (default 1000 local, 256 docker)"
    )
    ap.add_argument("--baseline-n", type=int, default=30, help="calls for the python -c baseline")
    args = ap.parse_args(argv)
    concurrent = args.concurrent if args.concurrent is not None else (1000 if args.backend == "local" else 256)
    res = run(
        args.backend,
        cold=args.cold,
        acquires=args.acquires,
        rts=args.round_trips,
        concurrent=concurrent,
        baseline_n=args.baseline_n,
    )
    _print(res)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
