"""`swarmgym verify`: a clean run passes; each kind of damage is found, counted and fails the exit code."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from swarmgym.cli import main
from swarmgym.rollout.store import TrajectoryStore, _encode
from swarmgym.testing.synthetic_run import write_synthetic_run
from swarmgym.viewer.verify import verify_file
from swarmgym.wire import Completion, JudgeResult, Message, Trajectory


def _report(path: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, dict[str, int]]:
    code = main(["verify", str(path), "--json", *extra])
    out = json.loads(capsys.readouterr().out)
    return code, {c["name"]: c["count"] for c in out["checks"] if c["count"]}


def test_clean_synthetic_run_passes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = tmp_path / "run.jsonl"
    write_synthetic_run(p, 60, tree_every=10)
    code, counts = _report(p, capsys)
    # the generator marks judge failures as not trainable and gives some episodes no token ids: warnings only
    assert code == 0
    assert set(counts) <= {"judge_error", "token_missing"}
    assert counts["judge_error"] == 1  # episode 0 (i % 97 == 0)
    code, _ = _report(p, capsys, "--strict")
    assert code == 1


def test_real_swarm_run_is_clean(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = tmp_path / "swarm.jsonl"
    subprocess.run([sys.executable, "-P", "-m", "swarmgym.cli", "run", "swarmgym/WideSearch-Swarm-v0", "--policy",
                    "oracle", "-n", "1", "--out", str(p), "--no-live"], check=True, capture_output=True,
                   cwd=tmp_path, timeout=300)
    code, counts = _report(p, capsys)
    assert code == 0, counts
    assert "orphan" not in counts and "missing_child" not in counts


def _store(path: Path, trajs: list[Trajectory]) -> None:
    with TrajectoryStore(path, overwrite=True) as s:
        for t in trajs:
            s.append(t)


def _tok(ids: list[int], lps: list[float], prompt: list[int]) -> Completion:
    return Completion(message=Message(role="assistant", content="x"), prompt_ids=prompt, completion_ids=ids,
                      logprobs=lps, token_exact=True)


def test_every_fault_is_found(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = tmp_path / "bad.jsonl"
    _store(p, [
        Trajectory(id="a", task_id="t", sample_index=0),
        Trajectory(id="b", task_id="t", sample_index=0),  # duplicated (task, sample)
        Trajectory(id="a", task_id="u"),  # duplicated id
        Trajectory(id="c", task_id="v", parent_id="never-stored"),  # orphan
        Trajectory(id="d", task_id="w", children=["gone"]),  # lists a missing child
        Trajectory(id="e", task_id="x", reward=1.5),  # reward out of bounds
        Trajectory(id="f", task_id="y", reward=float("nan")),  # the store writes NaN as null: a schema error
        Trajectory(id="g", task_id="z", judge=JudgeResult(outcome="timeout")),  # judge failed, still trainable
        Trajectory(id="h", task_id="h", completions=[_tok([1, 2, 3], [-0.1, -0.2], [9])]),  # 2 lps for 3 ids
        Trajectory(id="i", task_id="i", completions=[_tok([1], [0.5], [9])]),  # positive logprob
        Trajectory(id="j", task_id="j", completions=[_tok([1], [-0.1], [9]), _tok([2], [-0.1], [8, 1, 7])]),
    ])
    with open(p, "ab") as f:
        f.write(_encode("trajectory", b'{"id":"k","reward":"high","bogus":1}'))  # intact line, not a Trajectory
        f.write(_encode("trajectory", b'{"id":"l","task_id":"l"}').replace(b'"l"}', b'"L"}'))  # CRC mismatch
        f.write(b'{"crc32":"00000000","kind":"trajectory","data":{"id":"m"')  # torn tail (no newline)
    code, counts = _report(p, capsys)
    assert code == 1
    assert counts == {
        "duplicate_task_sample": 1, "duplicate_id": 1, "orphan": 1, "missing_child": 1, "reward_bounds": 1,
        "judge_error_trainable": 1, "logprob_alignment": 1, "logprob_value": 1, "token_drift": 1,
        "schema": 2, "framing": 1, "torn_tail": 1,
    }
    code, counts = _report(p, capsys, "--reward-max", "2")
    assert "reward_bounds" not in counts and code == 1


def test_examples_name_the_line(tmp_path: Path) -> None:
    p = tmp_path / "one.jsonl"
    _store(p, [Trajectory(id="ok1", task_id="a"), Trajectory(id="bad", task_id="b", reward=-3.0)])
    rep = verify_file(p)
    assert rep.checks["reward_bounds"].examples == ["line 2 (bad): reward -3.0 not in [0.0, 1.0]"]


def test_marked_orphans_are_a_warning(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = tmp_path / "resumed.jsonl"
    _store(p, [Trajectory(id="kid", task_id="t", parent_id="lost-parent")])
    TrajectoryStore(p, resume=True).close()  # the real resume marks the orphan
    code, counts = _report(p, capsys)
    assert counts == {"orphan_marked": 1} and code == 0


def test_gzip_store_is_verified(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = tmp_path / "run.jsonl.gz"
    with TrajectoryStore(p) as s:
        s.append(Trajectory(id="a", task_id="t"))
        s.append(Trajectory(id="b", task_id="t"))  # (t, 0) twice
    code, counts = _report(p, capsys)
    assert code == 1 and counts == {"duplicate_task_sample": 1}


def test_missing_file_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["verify", str(tmp_path / "nope.jsonl")]) == 2
    assert "no trajectory store" in capsys.readouterr().err


def test_table_output_does_not_interpret_markup(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = tmp_path / "m.jsonl"
    _store(p, [Trajectory(id="[bold red]x[/bold red]", task_id="t", reward=9.0)])
    assert main(["verify", str(p)]) == 1
    assert "[bold red]x[/bold red]" in capsys.readouterr().out
