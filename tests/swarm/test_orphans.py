"""A killed swarm run leaves children of parents never stored: resume marks them; readers and ``show``
count trees, not orphans."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from swarmgym.cli import main as cli_main
from swarmgym.rollout.store import orphan_ids, read_records, read_trajectories

WORKER = Path(__file__).with_name("swarm_kill_worker.py")


def test_orphan_ids():
    parents = {"a": None, "b": "a", "c": "b", "x": "gone", "y": "x", "z": "y"}
    assert orphan_ids(parents) == {"x", "y", "z"}
    assert orphan_ids({}) == set()


def _records(path: Path) -> list[tuple[str, dict]]:
    return list(read_records(path))


def _run_and_kill(path: Path, n: int) -> bool:
    """Start a run and SIGKILL it mid-run; False if it finished first (then the caller tries again)."""
    proc = subprocess.Popen([sys.executable, str(WORKER), str(path), str(n)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    # SIGKILL once some children are stored but not every parent: mid-run, for real
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        if path.exists() and path.stat().st_size > 0:
            recs = [d for k, d in _records(path) if k == "trajectory"]
            kids = [d for d in recs if d["parent_id"]]
            tops = {d["id"] for d in recs if d["parent_id"] is None}
            if kids and any(d["parent_id"] not in tops for d in kids) and len(tops) < n:
                break
        time.sleep(0.02)
    if proc.poll() is not None:
        out, err = proc.communicate()
        assert b"DONE" in out, f"the run failed on its own: {err.decode()[-2000:]}"
        return False
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    return True


@pytest.mark.slow
def test_sigkilled_swarm_run_resumes_with_orphans_marked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    n = 12
    expected: set[str] = set()
    for attempt in range(5):  # the parent may be stored between our look and the kill: then try again
        path = tmp_path / f"swarm{attempt}.jsonl"
        if not _run_and_kill(path, n):
            continue
        before = [d for k, d in _records(path) if k == "trajectory"]
        expected = orphan_ids({d["id"]: d["parent_id"] for d in before})
        if expected:
            break
    assert expected  # the kill left orphans
    # `show` on the killed file counts trees, not orphans
    assert cli_main(["show", str(path)]) == 0
    out = " ".join(capsys.readouterr().out.split())  # the table title may wrap
    assert f"{len(expected)} orphans" in out

    done = subprocess.run([sys.executable, str(WORKER), str(path), str(n)], capture_output=True, timeout=300)
    assert b"DONE" in done.stdout, done.stderr.decode()[-2000:]
    assert f"ORPHANS {len(expected)}".encode() in done.stdout
    marks = [d for k, d in _records(path) if k == "orphans"]
    assert len(marks) == 1 and set(marks[0]["ids"]) == expected and "never stored" in marks[0]["reason"]
    # the default reader leaves them out: every child it yields belongs to a stored tree
    trajs = list(read_trajectories(path))
    ids = {t.id for t in trajs}
    assert not ids & expected
    assert all(t.parent_id is None or t.parent_id in ids for t in trajs)
    tops = [t for t in trajs if t.parent_id is None and t.status == "ok"]
    assert len({t.task_id for t in tops}) == n
    assert len(list(read_trajectories(path, include_orphans=True))) == len(trajs) + len(expected)
    # a second resume finds nothing new to mark
    again = subprocess.run([sys.executable, str(WORKER), str(path), str(n)], capture_output=True, timeout=300)
    assert b"ORPHANS 0" in again.stdout and b"DONE" in again.stdout
    assert cli_main(["show", str(path)]) == 0
    out = " ".join(capsys.readouterr().out.split())  # the table title may wrap
    kids = [t for t in trajs if t.parent_id is not None]
    assert f"{n} episodes ({len(kids)} child trajectories in their trees; {len(expected)} orphans" in out
