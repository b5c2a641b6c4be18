"""RunIndex answers exactly what the store's own reader says, while the file grows, and never loads it."""

from __future__ import annotations

import time
from pathlib import Path

import orjson
import pytest

from swarmgym.errors import StoreError
from swarmgym.rollout.store import TrajectoryStore, read_trajectories
from swarmgym.testing.synthetic_run import write_synthetic_run
from swarmgym.viewer.index import Filters, RunIndex, _fields
from swarmgym.viewer.views import token_view, tree_view
from swarmgym.wire import JudgeResult, Message, ToolCall, Trajectory


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    p = tmp_path_factory.mktemp("ix") / "run.jsonl"
    write_synthetic_run(p, 400, tree_every=10)
    return p


def _expected(p: Path, keep) -> list[str]:  # ids in file order, by the store's own reader
    return [t.id for t in read_trajectories(p, include_orphans=True) if keep(t)]


def _ids(ix: RunIndex, rows) -> list[str]:
    return [ix.read(int(r))["id"] for r in rows]


CASES = [
    (Filters(), lambda t: t.parent_id is None),
    (Filters(top=False), lambda t: True),
    (Filters(env="swarmgym/ToolMath-v0"), lambda t: t.parent_id is None and t.env_id == "swarmgym/ToolMath-v0"),
    (Filters(status="error"), lambda t: t.parent_id is None and t.status == "error"),
    (Filters(rmin=0.5, rmax=1.0), lambda t: t.parent_id is None and 0.5 <= t.reward <= 1.0),
    (Filters(role="subagent", top=False), lambda t: t.role == "subagent"),
    (Filters(judge="error"), lambda t: t.parent_id is None and t.judge is not None and t.judge.outcome == "error"),
    (Filters(facet="format", fmin=1), lambda t: t.parent_id is None and t.judge and t.judge.facets.get("format", 0) >= 1),
    (Filters(task="task-0000042"), lambda t: t.parent_id is None and t.task_id == "task-0000042"),
    (Filters(task="00004", top=False), lambda t: "00004" in t.task_id),
    (Filters(error="step 159"), lambda t: t.parent_id is None and "step 159" in (t.error or "")),
]


@pytest.mark.parametrize("f,keep", CASES, ids=[repr(c[0]) for c in CASES])
def test_filters_match_the_store_reader(run: Path, f: Filters, keep) -> None:
    ix = RunIndex(run).build()
    want = _expected(run, keep)
    assert want, "a case that selects nothing proves nothing"
    assert _ids(ix, ix.query(f)) == want


def test_task_search_is_the_same_across_chunk_boundaries(run: Path) -> None:
    ix = RunIndex(run).build()
    whole = ix._task_substring("0000", ix.n)
    assert whole.sum() > 100
    assert (ix._task_substring("0000", ix.n, chunk=3000) == whole).all()  # ~1-2 lines per chunk


def test_sorting(run: Path) -> None:
    ix = RunIndex(run).build()
    trajs = [t for t in read_trajectories(run) if t.parent_id is None]
    rows = ix.query(Filters(), "wall_s", desc=True)
    walls = [ix.read(int(r))["metrics"]["wall_s"] for r in rows]
    assert walls == sorted(walls, reverse=True) and len(walls) == len(trajs)
    rows = ix.query(Filters(), "reward")
    assert [ix.summary(int(r))["reward"] for r in rows] == sorted(t.reward for t in trajs)
    rows = ix.query(Filters(), "env")
    assert [ix.summary(int(r))["env"] for r in rows] == sorted(t.env_id for t in trajs)
    with pytest.raises(ValueError, match="unknown sort key"):
        ix.query(Filters(), "bogus")


def test_tree_and_critical_path(run: Path) -> None:
    ix = RunIndex(run).build()
    root = ix.find("traj_000000010")
    tv = tree_view(ix, root)
    ids = {n["id"] for n in tv["nodes"]}
    assert ids == {"traj_000000010", *(f"traj_000000010-s{k}" for k in range(3)), "traj_000000010-s0-s0"}
    # the sub-agent with a 9-step helper is on the longest chain
    assert [ix.read(r)["id"] for r in tv["critical_path"]] == [
        "traj_000000010", "traj_000000010-s0", "traj_000000010-s0-s0"]


def test_token_view_aligns_with_the_completions(run: Path) -> None:
    ix = RunIndex(run).build()
    d = ix.read(ix.find("traj_000000005"))
    v = token_view(d)
    c0, c1 = d["completions"]
    sampled = [t for t in v["tokens"] if t[2] == 1]
    assert [t[0] for t in sampled] == c0["completion_ids"] + c1["completion_ids"]
    assert [t[3] for t in sampled] == c0["logprobs"] + c1["logprobs"]
    assert [t[4] for t in sampled] == [c0["policy_version"]] * len(c0["completion_ids"]) + [
        c1["policy_version"]] * len(c1["completion_ids"])
    assert v["total"] == len(c1["prompt_ids"]) + len(c1["completion_ids"])


def test_fast_field_extraction_is_exact_or_declines(tmp_path: Path) -> None:
    # keys that look like the cut points, inside message text, tool arguments, info and judge info
    nasty = {"reward": 5, "x": {",\"reward\":": 1, "a": 0, "reward": {"messages": 2}}}
    msgs = [Message(role="assistant", content=',"reward":1}', tool_calls=[ToolCall(id="c", name="f", arguments=nasty)])]
    variants = [
        Trajectory(id="plain", task_id=',"messages":[', messages=msgs, reward=0.25),
        Trajectory(id="judge", task_id="t", messages=msgs, judge=JudgeResult(reward=0.5, info={"a": nasty}),
                   reward=0.5),
        Trajectory(id="info", task_id="t", messages=msgs, info={"deep": nasty, "k": 1}, reward=0.75),
    ]
    fast_used = 0
    for t in variants:
        payload = t.model_dump_json().encode()
        full = orjson.loads(payload)
        fast = _fields(payload)
        if fast is not None:  # exact, or it declines (and the index parses the whole line)
            fast_used += 1
            assert {k: full[k] for k in fast} == fast
            assert "messages" not in fast
    assert fast_used >= 1
    p = tmp_path / "n.jsonl"
    with TrajectoryStore(p) as s:
        for t in variants:
            s.append(t)
    ix = RunIndex(p).build()
    assert [ix.summary(r)["reward"] for r in range(3)] == [0.25, 0.5, 0.75]
    assert [ix.summary(r)["task_id"] for r in range(3)] == [',"messages":[', "t", "t"]


def test_follows_a_growing_file(tmp_path: Path) -> None:
    p = tmp_path / "live.jsonl"
    write_synthetic_run(p, 20, tree_every=0)
    ix = RunIndex(p, follow=True, poll_s=0.05).start()
    try:
        assert ix.wait(20, timeout=30)
        with open(p, "ab") as f:  # a half-written line is not indexed until it is complete
            f.write(b'{"crc32":"')
        write_synthetic_run(tmp_path / "more.jsonl", 10, tree_every=0, start=20)
        more = (tmp_path / "more.jsonl").read_bytes().split(b"\n", 1)[1]  # without its manifest
        with open(p, "ab") as f:
            f.truncate(p.stat().st_size - len(b'{"crc32":"'))
            f.write(more)
        assert ix.wait(30, timeout=30)
        assert ix.n == 30 and ix.n_damaged == 0
        assert ix.read(29)["id"] == "traj_000000029"
        TrajectoryStore(p, overwrite=True).close()  # the file is replaced by an empty one: the index starts over
        deadline = time.monotonic() + 30
        while ix.n and time.monotonic() < deadline:
            time.sleep(0.05)
        assert ix.n == 0
    finally:
        ix.stop()


def test_damaged_lines_are_counted_not_fatal(tmp_path: Path) -> None:
    p = tmp_path / "d.jsonl"
    write_synthetic_run(p, 5, tree_every=0)
    data = bytearray(p.read_bytes())
    i = data.index(b"traj_000000002")
    data[i + 5] = ord("X")  # CRC no longer matches
    p.write_bytes(bytes(data))
    ix = RunIndex(p).build()
    assert ix.n == 4 and ix.n_damaged == 1 and "checksum" in ix.damaged[0][1]


def test_gzip_and_missing_files_are_refused_clearly(tmp_path: Path) -> None:
    with TrajectoryStore(tmp_path / "r.jsonl.gz") as s:
        s.append(Trajectory(task_id="t"))
    with pytest.raises(StoreError, match="gzip-compressed.*zcat"):
        RunIndex(tmp_path / "r.jsonl.gz")
    with pytest.raises(StoreError, match="no trajectory store"):
        RunIndex(tmp_path / "none.jsonl")


@pytest.mark.parametrize("in_one_pass", [True, False])
def test_a_cancelled_episode_run_again_by_a_resume_is_superseded(tmp_path: Path, in_one_pass: bool) -> None:
    from swarmgym.wire import Trajectory

    p = tmp_path / "r.jsonl"
    with TrajectoryStore(p) as s:  # the first session: t1 is cut short (Ctrl-C), with a child already stored
        s.append(Trajectory(task_id="t0", reward=1.0))
        s.append(Trajectory(id="kid", task_id="t1", parent_id="cut", role="subagent"))
        s.append(Trajectory(id="cut", task_id="t1", status="cancelled", trainable=False))
    index = RunIndex(p)
    if not in_one_pass:
        index.build()  # the viewer saw the first session before the resume appended (follow mode)
        assert index.meta()["top_level"] == 2
    with TrajectoryStore(p, resume=True) as s:  # the resumed run: t1 again, t2 cut short and not rerun
        s.append(Trajectory(id="again", task_id="t1", reward=1.0))
        s.append(Trajectory(task_id="t2", status="cancelled", trainable=False))
    index.build()
    meta = index.meta()
    assert meta["top_level"] == 3 and meta["superseded"] == 1  # as `swarmgym show` counts them
    rows = index.query(Filters())
    ids = [index.summary(int(r))["id"] for r in rows]
    assert "cut" not in ids and "again" in ids and len(ids) == 3
    every = [index.summary(int(r)) for r in index.query(Filters(top=False))]
    assert [t["superseded"] for t in every if t["id"] == "cut"] == [True]  # still there, flagged
    assert sum(1 for t in read_trajectories(p, top_level_only=True)) == 4  # the file keeps every record
