"""Sandbox benchmark: cold start, warm acquire, python round trip, concurrency, leaks, and warm baselines.

    swarmgym bench sandbox --backend local|docker [--json FILE] [--quick] [--no-check]

Measures, in one run:

* ``cold_start_ms``: create a sandbox until its agent answers (median of several);
* ``acquire_p50_ms`` / ``acquire_p99_ms``: ``pool.acquire()`` entry on a warm pool (release + verified
  reset happen on exit and are reported separately as ``release_p50_ms``);
* ``python_rt_p50_ms`` / ``python_rt_p99_ms``: ``run_python("1+1")`` on a warm sandbox;
* ``max_concurrent_ok``: sandboxes held at once, each answering ``run_python``; ``concurrent_failures``
  counts the ones that did not (with the time it took and the host memory it used);
* the baseline, the best plain way to run code repeatedly without swarmgym: **a warm worker** — one
  long-lived ``python3`` reading an expression per line on stdin and writing ``repr(eval(...))`` on stdout
  (local: a plain subprocess, no isolation; docker: the same worker in a running container of the sandbox
  image, attached with ``docker run -i``), one baseline round trip after each sandbox round trip, so both
  see the same machine load. ``baseline_warm_rt_p50_ms`` is its round trip and
  ``rt_ratio_vs_warm`` = sandbox round trip ÷ warm worker round trip: what the sandbox's isolation and
  protocol cost per call (> 1 means the sandbox is slower). For contrast, ``cold_baseline_ms`` is one
  fresh ``python -c`` (local) or ``docker run`` (docker) per call;
* ``teardown_s``: from letting go of the held sandboxes until every one is closed (docker: its container
  removed through the daemon gate, which gives up on a call at its deadline and records the container for
  ``swarmgym sandbox gc``; ``daemon_calls_abandoned`` counts such calls);
* ``leaked_processes`` (local: live processes descended from this one after everything closed; this
  process is made a child subreaper, so orphaned grandchildren count too) or ``leaked_containers`` (docker:
  containers of this process still present). A failure to count is an error of the benchmark, never 0.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from typing import Any

import anyio

from benchmarks._report import Bench, Target

__all__ = ["TARGETS", "main", "run"]

QUICK = {"cold": 3, "acquires": 100, "rts": 300, "baseline_n": 5, "concurrent": {"local": 32, "docker": 16}}


def _held(backend: str) -> Target:
    n = QUICK["concurrent"][backend]
    full = {"local": 1000, "docker": 256}[backend]
    why = f"quick mode holds {n} sandboxes at once"
    return Target("max_concurrent_ok", ">=", full, quick=n, quick_why=why, what="sandboxes held at once, all answering")


# the targets of each backend (the only place they are written)
TARGETS: dict[str, list[Target]] = {
    backend: [
        Target("acquire_p50_ms", "<=", 5.0, what="warm acquire p50, ms"),
        Target("acquire_p99_ms", "<=", 50.0, what="warm acquire p99, ms"),
        Target("python_rt_p50_ms", "<=", rt, what='`run_python("1+1")` round trip p50, ms'),
        _held(backend),
        Target("concurrent_failures", "==", 0, what="sandboxes that failed to start or answer"),
        Target(leak, "==", 0, what=f"{leak.split('_')[1]} of this run left after close"),
    ]
    for backend, rt, leak in (("local", 5.0, "leaked_processes"), ("docker", 15.0, "leaked_containers"))
}

# README rows besides the targets (benchmarks/_readme.py)
DESCRIBE = {
    "cold_start_ms": "cold start (create until the agent answers), median ms",
    "python_rt_p99_ms": '`run_python("1+1")` round trip p99, ms',
    "baseline_warm_rt_p50_ms": "baseline: a warm worker over a pipe (no isolation / running container), p50 ms",
    "rt_ratio_vs_warm": "sandbox round trip ÷ warm worker round trip (> 1: the sandbox is slower)",
    "cold_baseline_ms": "for contrast: a fresh `python -c` / `docker run` per call, median ms",
    "concurrent_mem_per_sandbox_mb": "host memory per held sandbox, MB",
    "concurrent_up_s": "time to start all held sandboxes (each answering), s",
    "teardown_s": "teardown of all held sandboxes (close + container removal), s",
}

# The baseline's worker: one expression per line in, its repr out (flushed: -u).
WORKER = "import sys\nfor line in sys.stdin:\n    sys.stdout.write(repr(eval(line)) + '\\n')\n    sys.stdout.flush()\n"


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


async def _warm(backend: str, acquires: int, rts: int, worker: _WarmWorker | None) -> dict[str, Any]:
    """Acquire and round-trip figures; with ``worker``, one baseline round trip follows each sandbox round trip
    (taking turns, so a change in machine load hits both alike)."""
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
                if r.value != "2":  # a wrong answer's speed is no figure
                    raise RuntimeError(f"run_python('1+1') returned {r.value!r} ({r.error or r.note})")
                if worker is not None:
                    worker.call()
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

    gate = _gate_of(backend)
    abandoned0 = gate.abandoned if gate is not None else 0
    up_s = float("nan")
    t_down = time.perf_counter()
    try:
        async with anyio.create_task_group() as tg:
            for _ in range(n):
                tg.start_soon(one)
            await all_ready.wait()
            up_s = time.perf_counter() - t0
            t_down = time.perf_counter()  # teardown: from "let go" until every sandbox is closed and removed
            held.set()
    finally:
        await pool.close()
    teardown_s = time.perf_counter() - t_down
    extra: dict[str, Any] = {}
    if gate is not None:  # docker: daemon calls given up at their deadline, and whether the daemon still answers
        extra = {"daemon_calls_abandoned": gate.abandoned - abandoned0, "daemon_healthy": gate.healthy}
    return {
        **extra,
        "teardown_s": teardown_s,
        "max_concurrent_ok": ok,
        "concurrent_requested": n,
        "concurrent_failures": len(failures),
        "concurrent_first_failure": failures[0][:300] if failures else "",
        "concurrent_up_s": up_s,
        "concurrent_mem_mb": mem_peak_used,
        "concurrent_mem_per_sandbox_mb": mem_peak_used / max(ok, 1),
    }




def _gate_of(backend: str) -> Any:
    """The daemon gate of the docker backend (None for local)."""
    if backend != "docker":
        return None
    from swarmgym.toolsets.sandbox.docker import _gate

    return _gate()


def _host_python() -> str:
    return "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable


def _docker_prefix(interactive: bool) -> list[str]:
    from swarmgym.toolsets.sandbox.image import default_image

    return ["docker", "run", *(["-i"] if interactive else []), "--rm", "--network", "none", default_image()]


class _WarmWorker:
    """The baseline (see the module docstring): one long-lived python reading ``1+1`` lines over a pipe.

    :meth:`call` times one round trip; an error is kept in :attr:`error` (the baseline arm fails, the sandbox
    measurement it takes turns with goes on).
    """

    def __init__(self, backend: str) -> None:
        prefix = _docker_prefix(interactive=True) if backend == "docker" else []
        py = "python3" if backend == "docker" else _host_python()
        self.backend = backend
        self.times: list[float] = []
        self.error: str | None = None
        self.proc = subprocess.Popen(
            [*prefix, py, "-u", "-c", WORKER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1
        )
        for _ in range(20):  # warm-up (container attach, interpreter caches), not timed
            self.call()
        self.times.clear()
        if self.error:
            raise RuntimeError(self.error)

    def call(self) -> None:
        if self.error is not None:
            return
        assert self.proc.stdin is not None and self.proc.stdout is not None
        try:
            t = time.perf_counter()
            self.proc.stdin.write("1+1\n")
            self.proc.stdin.flush()
            out = self.proc.stdout.readline()
            dt = time.perf_counter() - t
        except OSError as e:
            self.error = f"warm {self.backend} worker: {e}"
            return
        if out != "2\n":
            self.error = f"warm {self.backend} worker answered {out!r} (exit code {self.proc.poll()})"
            return
        self.times.append(dt * 1e3)

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _baseline_cold(backend: str, n: int) -> float:
    """Median ms of one fresh ``python -c`` (local) or ``docker run`` (docker) per call, for contrast."""
    if backend == "docker":
        cmd = [*_docker_prefix(interactive=False), "python3", "-c", "print(1+1)"]
    else:
        cmd = [_host_python(), "-c", "print(1+1)"]
    xs = []
    for _ in range(n):
        t = time.perf_counter()
        p = subprocess.run(cmd, capture_output=True, text=True)
        if p.returncode != 0 or p.stdout != "2\n":
            raise RuntimeError(f"{cmd[0]} baseline failed ({p.returncode}): {p.stderr.strip()[-300:]}")
        xs.append((time.perf_counter() - t) * 1e3)
    return statistics.median(xs)


def _become_subreaper() -> None:
    """Make orphaned descendants children of this process (Linux PR_SET_CHILD_SUBREAPER), so a sandbox
    process that outlives its parent is still ours to count."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(36, 1, 0, 0, 0) != 0:  # 36 = PR_SET_CHILD_SUBREAPER
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER) failed")


def _live_children() -> list[str]:
    """Live (non-zombie) direct children of this process, as "pid cmdline"."""
    me = os.getpid()
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                stat = f.read()
            with open(f"/proc/{d}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except (FileNotFoundError, ProcessLookupError):  # exited while we looked: not alive
            continue
        state, ppid = stat.rsplit(")", 1)[1].split()[:2]
        if int(ppid) == me and state != "Z":
            out.append(f"{d} {cmd[:120]}")
    return out


def _leaks(backend: str) -> dict[str, Any]:
    """What is left of this run's sandboxes; raises when it cannot count (never reports 0 instead)."""
    if backend == "docker":
        from swarmgym.toolsets.sandbox import reaper
        from swarmgym.toolsets.sandbox.docker import list_containers

        left = [c["name"] for c in list_containers() if c["owner"] == reaper.owner_tag()]
        return {"leaked_containers": len(left), "leaked_examples": left[:3]}
    deadline = time.monotonic() + 5  # a closed sandbox's processes may take a moment to exit
    while (rest := _live_children()) and time.monotonic() < deadline:
        time.sleep(0.1)
    return {"leaked_processes": len(rest), "leaked_examples": rest[:3]}


def run(
    backend: str, *, cold: int, acquires: int, rts: int, concurrent: int, baseline_n: int, bench: Bench | None = None
) -> dict[str, Any]:
    """Run every measurement; returns the JSON-able result (``bench`` records the arms when given)."""
    from contextlib import nullcontext

    def arm(name: str) -> Any:
        return bench.arm(name) if bench is not None else nullcontext()

    if backend == "local":
        _become_subreaper()
    res: dict[str, Any] = {"backend": backend}
    worker: _WarmWorker | None = None
    worker_error: str | None = None
    try:
        worker = _WarmWorker(backend)
    except Exception as e:  # the baseline arm failed; the sandbox is still measured
        worker_error = f"{type(e).__name__}: {str(e).strip()[:300]}"
    try:
        with arm("sandbox"):
            cs = anyio.run(_cold_start, backend, cold)
            res["cold_start_ms"] = statistics.median(cs)
            res.update(anyio.run(_warm, backend, acquires, rts, worker))
            if concurrent > 0:
                res.update(anyio.run(_concurrent, backend, concurrent))
    finally:
        if worker is not None:
            worker.close()
    if worker is not None and worker_error is None:
        worker_error = worker.error or (None if worker.times else "no round trip was timed (the sandbox arm failed first)")
    if bench is not None:
        bench.record_arm("warm worker baseline", worker_error)
    if worker is not None and worker_error is None:
        res["baseline_warm_rt_p50_ms"] = statistics.median(worker.times)
        res["baseline_warm_rt_p99_ms"] = _pct(worker.times, 0.99)
        if "python_rt_p50_ms" in res:
            res["rt_ratio_vs_warm"] = res["python_rt_p50_ms"] / res["baseline_warm_rt_p50_ms"]
    with arm("cold baseline"):
        res["cold_baseline_ms"] = _baseline_cold(backend, baseline_n if backend == "local" else max(3, baseline_n // 5))
    res.update(_leaks(backend))  # outside every arm: a failure to count is the benchmark's own error
    return res


def main(argv: list[str] | None = None) -> int:
    import argparse

    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--backend", choices=["local", "docker"], default="local")
    backend = pre.parse_known_args(argv)[0].backend
    bench = Bench("sandbox", __doc__, TARGETS[backend], DESCRIBE)
    ap = bench.parser
    ap.add_argument("--backend", choices=["local", "docker"], default="local")
    ap.add_argument("--cold", type=int, default=10, help="cold starts to time")
    ap.add_argument("--acquires", type=int, default=1000, help="warm acquires to time")
    ap.add_argument("--round-trips", type=int, default=2000, help="python round trips to time")
    ap.add_argument(
        "--concurrent", type=int, default=None, help="sandboxes to hold at once (default 1000 local, 256 docker)"
    )
    ap.add_argument("--baseline-n", type=int, default=30, help="calls for the cold python -c / docker run contrast")
    args = bench.parse_args(argv)
    if args.quick:
        kw: dict[str, Any] = {k: QUICK[k] for k in ("cold", "acquires", "rts", "baseline_n")}
        kw["concurrent"] = QUICK["concurrent"][backend]  # type: ignore[index]
    else:
        concurrent = args.concurrent if args.concurrent is not None else (1000 if backend == "local" else 256)
        kw = {"cold": args.cold, "acquires": args.acquires, "rts": args.round_trips, "baseline_n": args.baseline_n}
        kw["concurrent"] = concurrent

    def measure(res: dict[str, Any]) -> None:
        res.update(run(backend, **kw, bench=bench))

    return bench.run(measure, title=f"sandbox benchmark ({backend}, {kw['concurrent']} held at once)")


if __name__ == "__main__":
    raise SystemExit(main())
