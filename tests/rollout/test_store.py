"""TrajectoryStore: checksummed JSONL, torn tails cut on resume, corrupt lines detected, kill -9 safety."""

from __future__ import annotations

import collections
import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from swarmgym.errors import StoreError
from swarmgym.rollout import TrajectoryStore, read_records, read_trajectories, store_manifest
from swarmgym.wire import Message, Trajectory


def traj(i: int, status: str = "ok", parent: str | None = None) -> Trajectory:
    return Trajectory(
        task_id=f"t{i}",
        sample_index=i % 3,
        status=status,
        parent_id=parent,
        messages=[Message(role="user", content=f"q {i} ü")],
    )


@pytest.mark.parametrize("suffix", [".jsonl", ".jsonl.gz"])
def test_round_trip_and_done_keys(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"run{suffix}"
    with TrajectoryStore(path, batch_size=2) as s:
        s.write_manifest({"env_id": "x", "seed": 3})
        for i in range(5):
            s.append(traj(i))
        s.flush()
        s.append(traj(5, status="cancelled"))
        s.append(traj(6, parent="traj_p"))
    back = list(read_trajectories(path))
    assert [t.task_id for t in back] == [f"t{i}" for i in range(7)]
    assert back[0] == traj(0).model_copy(update={"id": back[0].id})
    assert store_manifest(path) == [{"env_id": "x", "seed": 3}]
    resumed = TrajectoryStore(path, resume=True)
    # cancelled and child trajectories are not finished top-level pairs
    assert resumed.done_keys() == {(f"t{i}", i % 3) for i in range(5)}
    resumed.close()
    assert len(list(read_trajectories(path, top_level_only=True))) == 6


def test_existing_file_needs_resume_or_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl"
    with TrajectoryStore(path) as s:
        s.append(traj(0))
    with pytest.raises(StoreError, match="already exists: resume it"):
        TrajectoryStore(path)
    TrajectoryStore(path, overwrite=True).close()
    assert path.stat().st_size == 0


def test_lines_are_plain_json_with_a_checksum(tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl"
    with TrajectoryStore(path) as s:
        s.append(traj(0))
    rec = json.loads(path.read_text().splitlines()[0])
    assert set(rec) == {"crc32", "kind", "data"} and rec["kind"] == "trajectory"


def test_torn_tail_is_ignored_on_read_and_cut_on_resume(tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl"
    with TrajectoryStore(path) as s:
        for i in range(3):
            s.append(traj(i))
    full = path.read_bytes()
    path.write_bytes(full[: len(full) - 40])  # a crash in the middle of the last line
    assert len(list(read_trajectories(path))) == 2
    with pytest.raises(StoreError, match="line 3 is incomplete"):
        list(read_records(path, tolerate_tail=False))
    s = TrajectoryStore(path, resume=True)
    assert s.repaired_bytes > 0 and len(s.done_keys()) == 2
    s.append(traj(2))
    s.close()
    assert [t.task_id for t in read_trajectories(path)] == ["t0", "t1", "t2"]


def test_torn_gzip_member_is_cut_on_resume(tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl.gz"
    with TrajectoryStore(path, batch_size=2) as s:
        for i in range(4):
            s.append(traj(i))
        s.flush()
        s.append(traj(4))
    data = path.read_bytes()
    path.write_bytes(data[:-10])
    assert len(list(read_trajectories(path))) == 4
    s = TrajectoryStore(path, resume=True)
    assert len(s.done_keys()) == 4 and s.repaired_bytes > 0
    s.close()


def test_a_corrupt_middle_line_is_never_read_silently(tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl"
    with TrajectoryStore(path) as s:
        for i in range(3):
            s.append(traj(i))
    lines = path.read_bytes().splitlines(keepends=True)
    lines[1] = lines[1].replace(b"q 1", b"q 7")  # same length, still valid JSON: only the CRC can tell
    path.write_bytes(b"".join(lines))
    with pytest.raises(StoreError, match="line 2 is corrupt \\(checksum mismatch\\)"):
        list(read_trajectories(path))
    with pytest.raises(StoreError, match="line 2 is corrupt"):
        TrajectoryStore(path, resume=True)


def test_store_pickles_by_reopening(tmp_path: Path) -> None:
    import pickle

    path = tmp_path / "run.jsonl"
    s = TrajectoryStore(path)
    s.append(traj(0))
    clone = pickle.loads(pickle.dumps(s))
    s.close()
    assert clone.done_keys() == {("t0", 0)}
    clone.close()


WORKER = Path(__file__).with_name("store_worker.py")


@pytest.mark.slow
@pytest.mark.parametrize("compress", ["plain", "gz"])
def test_kill_9_at_random_moments_then_resume_loses_and_duplicates_nothing(tmp_path: Path, compress: str) -> None:
    n = 10_000
    path = tmp_path / ("run.jsonl" + (".gz" if compress == "gz" else ""))
    rng = random.Random(1234 if compress == "plain" else 99)
    kills = 0
    for attempt in range(40):
        # the worker's own directory is its sys.path[0] (so it imports nothing from the repo root by name)
        proc = subprocess.Popen(
            [sys.executable, str(WORKER), str(path), str(n), compress], stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        killed = False
        if kills < 8:
            # kill -9 once the file grew by a random amount: always mid-run, at a random point of a write
            start = path.stat().st_size if path.exists() else 0
            target = start + (rng.randint(20_000, 600_000) if compress == "plain" else rng.randint(1_000, 30_000))
            while proc.poll() is None and (not path.exists() or path.stat().st_size < target):
                time.sleep(rng.uniform(0.0, 0.01))
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                kills += 1
                killed = True
        out, err = proc.communicate(timeout=120)
        if b"DONE" in out:
            break
        assert killed, f"the worker failed on its own: {err.decode()[-2000:]}"
    else:
        pytest.fail("the run never finished")
    assert kills >= 1, kills
    print(f"kills={kills} attempts={attempt + 1}")
    keys = collections.Counter(
        (d["task_id"], d["sample_index"])
        for kind, d in read_records(path)
        if kind == "trajectory" and d["status"] == "ok"
    )
    assert len(keys) == n  # nothing lost
    assert max(keys.values()) == 1  # nothing stored twice
    assert 2 <= len(store_manifest(path)) <= kills + 1  # one per session that got to its first flush
