"""`swarmgym plot`: PNGs a real decoder reads back; pass@k equals the rollout package's own formula; the
timeline a real `swarmgym run` writes is drawn."""

from __future__ import annotations

import gzip
import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from swarmgym.cli import main
from swarmgym.rollout.store import TrajectoryStore
from swarmgym.rollout.timeline import read_timeline
from swarmgym.testing.synthetic_run import write_synthetic_run
from swarmgym.wire import Trajectory


def test_plot_writes_pngs(tmp_path: Path, capsys: pytest.CaptureFixture[str], require: Any) -> None:
    image = require("matplotlib.image", "plots need the viz extra")
    p = tmp_path / "run.jsonl"
    write_synthetic_run(p, 80, tree_every=10)
    assert main(["plot", str(p), "--out", str(tmp_path / "plots")]) == 0
    files = sorted((tmp_path / "plots").glob("*.png"))
    assert [f.stem for f in files] == sorted(
        ["reward_by_env", "reward_by_group", "pass_at_k", "episode_latency", "model_latency"])
    for f in files:
        h, w, _ = image.imread(f).shape
        assert h > 100 and w > 100
    out = capsys.readouterr()
    assert str(files[0]) in out.out
    assert "no timeline at" in out.err  # says why two plots are missing


def test_pass_at_k_curves(tmp_path: Path, require: Any) -> None:
    require("matplotlib", "plots need the viz extra")
    from swarmgym.viewer.index import RunIndex
    from swarmgym.viewer.plots import pass_at_k_curves

    p = tmp_path / "g.jsonl"
    with TrajectoryStore(p) as s:  # env A: task a1 1 of 4 solved, a2 0 of 2; env B: b1 2 of 2
        for i, r in enumerate([1, 0, 0, 0]):
            s.append(Trajectory(task_id="a1", sample_index=i, env_id="A", reward=r))
        for i in range(2):
            s.append(Trajectory(task_id="a2", sample_index=i, env_id="A", reward=0.0))
            s.append(Trajectory(task_id="b1", sample_index=i, env_id="B", reward=1.0))
        s.append(Trajectory(task_id="a1", env_id="A", parent_id="x", reward=1.0))  # children never count
    curves = pass_at_k_curves(RunIndex(p).build())
    assert curves["A"] == [(1, (0.25 + 0.0) / 2), (2, (0.5 + 0.0) / 2), (3, 0.75), (4, 1.0)]
    assert curves["B"] == [(1, 1.0), (2, 1.0)]


def test_plot_of_an_empty_run_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str], require: Any) -> None:
    require("matplotlib", "plots need the viz extra")
    p = tmp_path / "e.jsonl"
    TrajectoryStore(p).close()
    p.write_bytes(b"")
    assert main(["plot", str(p), "--out", str(tmp_path / "o")]) == 1
    assert "nothing to plot" in capsys.readouterr().err


def test_swarmgym_run_writes_the_timeline_and_plot_draws_it(tmp_path: Path, require: Any) -> None:
    image = require("matplotlib.image", "plots need the viz extra")
    out = tmp_path / "run.jsonl"
    args = ["run", "swarmgym/ToolMath-v0", "--policy", "oracle", "-n", "30", "--no-live"]
    assert main([*args, "--out", str(out)]) == 0
    rows = read_timeline(tmp_path / "run.timeline.jsonl")
    assert rows and rows[-1]["episodes_finished"] == 30
    assert main(["plot", str(out), "--out", str(tmp_path / "plots")]) == 0
    for name in ("concurrency_over_time", "loop_lag_over_time"):
        h, w, _ = image.imread(tmp_path / "plots" / f"{name}.png").shape
        assert h > 100 and w > 100
    packed = tmp_path / "gz" / "run.jsonl.gz"  # plot reads a gzip store, and its timeline beside it
    packed.parent.mkdir()
    packed.write_bytes(gzip.compress(out.read_bytes()))
    shutil.copy(tmp_path / "run.timeline.jsonl", packed.parent)
    assert main(["plot", str(packed), "--out", str(tmp_path / "gzplots")]) == 0
    assert {f.stem for f in (tmp_path / "gzplots").glob("*.png")} == {f.stem for f in (tmp_path / "plots").glob("*.png")}
    out.unlink()  # a new run on the same name starts a new timeline, not after the old one's samples
    started = time.time()
    assert main([*args, "--out", str(out)]) == 0
    assert all(r["t"] >= started - 0.01 for r in read_timeline(tmp_path / "run.timeline.jsonl"))
    assert main([*args, "--out", str(tmp_path / "quiet.jsonl"), "--no-timeline"]) == 0
    assert not (tmp_path / "quiet.timeline.jsonl").exists()
