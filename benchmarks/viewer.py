"""Viewer benchmark: open a very large trajectories file with `swarmgym view`: time to first page, memory.

    swarmgym bench viewer [-n 1000000] [--keep FILE] [--json FILE] [--quick] [--no-check]

The file: ``n`` trajectories (1,000,000 by default, about 1.2 GB) built from 1000 distinct episodes of
:func:`swarmgym.testing.synthetic_run.write_synthetic_run` (the real ``TrajectoryStore`` writer: trees,
token data, judge facets), copied with fresh ids and each line's CRC-32 recomputed with the store's own
framing. ``--keep FILE`` reuses/keeps that file between runs.

Arms (each in its own process, measured from outside):

* ``view``: the real ``swarmgym view FILE`` process. ``first_page_s``: from starting the process until an
  HTTP ``GET /api/episodes`` returned a full first page (50 rows); ``index_s``: until the whole file was
  indexed; ``startup_s``: until it printed its URL (interpreter, imports, listening);
  ``server_rss_mb``: the server's peak RSS (VmHWM) after indexing and the queries below;
  ``query_s``: a filtered, sorted query over every row (env filter, reward descending);
  ``task_search_s``: a task-id substring search (one regex pass over the raw file); ``traj_ms``: one
  trajectory page; ``tree_ms``: the tree page of the episode with the most children (the first tree lookup
  sorts the parent column once).
* ``load_all`` (baseline: what a viewer that loads the file does — ``swarmgym show``'s path): the store's
  own ``read_trajectories`` over the first ``baseline_n`` trajectories (100,000; more would not fit the
  machine's memory next to everyone else's work). ``baseline_first_page_s`` is its time scaled to the whole
  file (it cannot show a page before it has read the file), ``baseline_rss_mb`` its peak RSS for
  ``baseline_n`` trajectories (not scaled).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from benchmarks._report import Bench, Target

__all__ = ["TARGETS", "main"]

TARGETS = [
    Target("first_page_s", "<=", 3.0, what="`swarmgym view` of the file: process start to the first page, s"),
    Target("server_rss_mb", "<=", 400.0, quick=250.0, quick_why="a small file needs only the fixed part",
           what="viewer server peak RSS, MB"),
    Target("query_s", "<=", 1.0, what="filter + sort over every row, s"),
    Target("traj_ms", "<=", 200.0, what="one trajectory page, ms"),
    Target("first_page_speedup", ">=", 10.0, quick=2.0, quick_why="a small file loads fast even when loaded whole",
           what="baseline (load the file) time ÷ viewer time to the first page"),
]


def _status_mb(pid: int, key: str) -> float:
    """A memory figure of /proc/PID/status (VmHWM: peak RSS; RssAnon: current anonymous RSS), MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {key} for pid {pid}")


def make_file(path: Path, n: int) -> dict[str, Any]:
    """Write ``n`` trajectories to ``path`` (see the module docstring)."""
    from swarmgym.rollout.store import _LINE, _encode
    from swarmgym.testing.synthetic_run import write_synthetic_run

    seed = path.with_suffix(".seed.jsonl")
    write_synthetic_run(seed, 1000, tree_every=10, pad_words=60)
    lines = [ln for ln in seed.read_bytes().splitlines(keepends=True) if b'"kind":"trajectory"' in ln[:40]]
    seed.unlink()
    ids = re.compile(rb"traj_0000(\d{5})")
    tasks = re.compile(rb"task-00(\d{5})")
    written = 0
    with open(path, "wb") as f:
        f.write(_encode("manifest", b'{"env_id":"synthetic","args":{"episodes":%d}}' % n))
        copy = 0
        while written < n:
            batch = []
            for ln in lines:
                m = _LINE.fullmatch(ln)
                assert m is not None
                payload = ids.sub(b"traj_%04d\\1" % copy, m.group(3))
                payload = tasks.sub(b"task-%04d\\1" % copy, payload)  # unique (task, sample) pairs
                batch.append(_encode("trajectory", payload))
                written += 1
                if written >= n:
                    break
            f.write(b"".join(batch))
            copy += 1
    return {"trajectories": written, "file_mb": round(path.stat().st_size / 1e6, 1)}


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=120) as r:
        return json.loads(r.read())


def view_arm(path: Path, res: dict[str, Any]) -> None:
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-P", "-m", "swarmgym.cli", "view", str(path), "--no-follow"],
                            stdout=subprocess.PIPE, text=True, cwd=path.parent)
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        if not line.startswith("swarmgym view: http://"):
            raise RuntimeError(f"viewer did not start: {line!r}")
        url = line.split()[2]
        res["startup_s"] = round(time.perf_counter() - t0, 3)  # interpreter, imports, server listening
        while True:
            page = _get(url + "api/episodes?limit=50")
            if len(page["rows"]) == 50 or page["done"]:
                break
            time.sleep(0.005)
        res["first_page_s"] = round(time.perf_counter() - t0, 3)
        res["first_page_rows"] = len(page["rows"])
        res["first_page_after_listen_s"] = round(res["first_page_s"] - res["startup_s"], 3)
        while not (meta := _get(url + "api/meta"))["done"]:
            time.sleep(0.05)
        res["index_s"] = round(time.perf_counter() - t0, 2)
        res["indexed_rows"] = meta["rows"]
        if meta["error"]:
            raise RuntimeError(f"indexing failed: {meta['error']}")
        t = time.perf_counter()
        q = _get(url + "api/episodes?env=swarmgym/Math-v0&sort=reward&desc=1")
        res["query_s"] = round(time.perf_counter() - t, 3)
        res["query_total"] = q["total"]
        t = time.perf_counter()
        q = _get(url + "api/episodes?task=00042")
        res["task_search_s"] = round(time.perf_counter() - t, 3)
        t = time.perf_counter()
        _get(url + f"api/traj/{meta['rows'] // 2}")
        res["traj_ms"] = round((time.perf_counter() - t) * 1000, 1)
        root = _get(url + "api/episodes?sort=nchildren&desc=1&limit=1")["rows"][0]
        t = time.perf_counter()
        tree = _get(url + f"api/tree/{root['row']}")
        res["tree_ms"] = round((time.perf_counter() - t) * 1000, 1)
        res["tree_nodes"] = len(tree["nodes"])
        res["server_rss_mb"] = round(_status_mb(proc.pid, "VmHWM"), 1)
        res["server_rss_anon_mb"] = round(_status_mb(proc.pid, "RssAnon"), 1)
        res["rss_bytes_per_trajectory"] = round(res["server_rss_mb"] * 1e6 / max(1, meta["rows"]), 1)
    finally:
        proc.terminate()
        proc.wait(30)
        if proc.stdout:
            proc.stdout.close()


_BASELINE = """
import itertools, json, resource, sys, time
from swarmgym.rollout.store import read_trajectories
t = time.perf_counter()
trajs = list(itertools.islice(read_trajectories(sys.argv[1], include_orphans=True), int(sys.argv[2])))
print(json.dumps({"s": time.perf_counter() - t, "n": len(trajs),
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def baseline_arm(path: Path, n_file: int, n: int, res: dict[str, Any]) -> None:
    out = subprocess.run([sys.executable, "-P", "-c", _BASELINE, str(path), str(n)], capture_output=True,
                         text=True, check=True, cwd=path.parent, timeout=3600)
    r = json.loads(out.stdout)
    res["baseline_n"] = r["n"]
    res["baseline_load_s"] = round(r["s"], 2)
    res["baseline_first_page_s"] = round(r["s"] * n_file / r["n"], 1)
    res["baseline_rss_mb"] = round(r["rss_mb"], 1)


def main(argv: list[str] | None = None) -> int:
    bench = Bench("viewer", __doc__, TARGETS, describe={
        "file_mb": "size of the file, MB", "index_s": "whole file indexed, s",
        "task_search_s": "task-id substring search over the file, s",
        "baseline_first_page_s": "baseline: load the file with the store reader, s (scaled)",
    })
    bench.parser.add_argument("-n", type=int, default=1_000_000, help="trajectories in the file")
    bench.parser.add_argument("--baseline-n", type=int, default=100_000, help="trajectories the baseline loads")
    bench.parser.add_argument("--keep", default=None, help="reuse/keep the generated file at this path")
    a = bench.parse_args(argv)
    n = 20_000 if a.quick else a.n
    base_n = min(n, 5_000 if a.quick else a.baseline_n)

    def measure(res: dict[str, Any]) -> None:
        tmp = None
        if a.keep:
            path = Path(a.keep)
        else:
            tmp = tempfile.TemporaryDirectory(prefix="swarmgym-bench-viewer-")
            path = Path(tmp.name) / "run.jsonl"
        try:
            if not path.exists():
                t = time.perf_counter()
                res.update(make_file(path, n))
                res["generate_s"] = round(time.perf_counter() - t, 1)
            else:
                res["file_mb"] = round(path.stat().st_size / 1e6, 1)
            res["trajectories"] = n
            with bench.arm("view"):
                view_arm(path, res)
            with bench.arm("load_all"):
                baseline_arm(path, n, base_n, res)
            if "first_page_s" in res and "baseline_first_page_s" in res:
                res["first_page_speedup"] = round(res["baseline_first_page_s"] / res["first_page_s"], 1)
        finally:
            if tmp is not None:
                tmp.cleanup()

    return bench.run(measure, title=f"viewer: open a {n:,}-trajectory file")


if __name__ == "__main__":
    sys.exit(main())
