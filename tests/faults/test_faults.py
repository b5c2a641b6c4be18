"""Fault injection with the real parts: a model server that flaps, stalls or speaks garbage, a full disk under
the store, SIGTERM/SIGINT to the runner, a sandbox killed by its memory limit.

For each: no finished episode is lost (every stored record is intact and unique), the error is named, and
``--resume`` finishes the run.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socketserver
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from swarmgym.rollout import read_trajectories
from swarmgym.testing import start_fake_server_process

CLI = [sys.executable, "-c", "import sys; from swarmgym.cli import main; sys.exit(main())"]


def _cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout, cwd=os.path.dirname(__file__))


def _keys(path: Path) -> Counter[tuple[str, int]]:
    """Finished top-level episodes per (task, sample); cancelled records are superseded by the resume's rerun."""
    trajs = read_trajectories(path, top_level_only=True)
    return Counter((t.task_id, t.sample_index) for t in trajs if t.status != "cancelled")


def test_a_flapping_server_loses_nothing_and_names_its_errors(tmp_path: Path) -> None:
    out = tmp_path / "run.jsonl"
    # half the requests drop the connection: retries absorb most, the rest end as named errors
    with start_fake_server_process(default_text="\\boxed{0}", fail_rate=0.5, fail_status=0, seed=3) as srv:
        r = _cli("run", "swarmgym/Math-v0", "--policy", srv.base_url, "-n", "30", "--concurrency", "6",
                 "--out", str(out), "--no-live", "--json")
    assert r.returncode == 0, r.stderr[-2000:]
    trajs = list(read_trajectories(out, top_level_only=True))
    assert len(trajs) == 30 and max(_keys(out).values()) == 1
    errors = [t for t in trajs if t.status == "error"]
    assert all(t.error and ("connection" in t.error.lower() or "dropped" in t.error.lower()) for t in errors), [
        t.error for t in errors
    ]
    assert sum(t.status == "ok" for t in trajs) >= 15  # retries work: most episodes got through
    summary = json.loads(r.stdout)
    assert summary["counters"]["policy_retries"] > 0 if "policy_retries" in summary["counters"] else True


class _Garbage(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        self.request.recv(65536)
        self.request.sendall(b"\x00\xffNOT HTTP AT ALL\r\n\r\n")


@contextlib.contextmanager
def _garbage_server() -> Iterator[str]:
    """A TCP server on 127.0.0.1 answering every request with bytes that are not HTTP."""
    srv = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Garbage)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}/v1"
    finally:
        srv.shutdown()
        srv.server_close()


def test_a_garbage_server_then_resume_against_a_good_one(tmp_path: Path) -> None:
    out = tmp_path / "run.jsonl"
    with _garbage_server() as url:
        r = _cli("run", "swarmgym/Math-v0", "--policy", url, "--model", "m", "-n", "40", "--concurrency", "4",
                 "--out", str(out), "--no-live")
    # the breaker stops a run whose episodes all fail; whatever finished is stored, each error named
    stored = list(read_trajectories(out, top_level_only=True)) if out.exists() else []
    # episodes the breaker stopped are stored as cancelled (rerun on resume); every error names the cause
    named = [t for t in stored if t.status == "error" and "invalid http response" in (t.error or "").lower()]
    bad = {(t.status, (t.error or "")[:120]) for t in stored if t.status != "cancelled" and t not in named}
    assert named and not bad, bad
    if r.returncode != 0:
        assert "error" in r.stderr.lower() and "Traceback" not in r.stderr
    with start_fake_server_process(default_text="\\boxed{0}") as srv:
        r2 = _cli("run", "swarmgym/Math-v0", "--policy", srv.base_url, "-n", "40", "--concurrency", "4",
                  "--out", str(out), "--no-live", "--resume")
    assert r2.returncode == 0, r2.stderr[-2000:]
    keys = _keys(out)
    assert len(keys) == 40 and max(keys.values()) == 1


@pytest.mark.anyio
async def test_a_stalled_server_times_out_per_call_with_a_named_error() -> None:
    from swarmgym import make
    from swarmgym.policies.openai_http import OpenAIPolicy
    from swarmgym.rollout.limits import RolloutLimits
    from swarmgym.rollout.manager import RolloutManager
    from swarmgym.rollout.store import MemoryStore

    with start_fake_server_process(default_text="\\boxed{0}", latency=30.0) as srv:
        policy = OpenAIPolicy(srv.base_url, model="fake-model", max_retries=0)
        store = MemoryStore()
        manager = RolloutManager(
            policy, limits=RolloutLimits(model_call_timeout_s=0.5, policy_retries=0, breaker_error_rate=None),
            store=store,
        )
        t0 = time.monotonic()
        with anyio.fail_after(60):
            trajs = await manager.run(make("swarmgym/Math-v0"), 4)
        await policy.aclose()
    assert time.monotonic() - t0 < 30
    assert len(trajs) == 4 and all(t.status == "error" for t in trajs)
    assert all("timed out" in (t.error or "").lower() or "timeout" in (t.error or "").lower() for t in trajs), [
        t.error for t in trajs
    ]


@pytest.fixture()
def tiny_disk(tmp_path: Path):
    """A 160 KiB tmpfs (root only: CI runs as root)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mnt = tmp_path / "disk"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=160k", "tmpfs", str(mnt)], check=True)
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_a_full_disk_stops_the_run_with_a_named_error_and_resume_finishes(tiny_disk: Path, tmp_path: Path) -> None:
    out = tiny_disk / "run.jsonl"
    r = _cli("run", "swarmgym/ToolMath-v0", "--policy", "oracle", "-n", "400", "--concurrency", "16",
             "--out", str(out), "--no-live")
    assert r.returncode != 0
    assert "cannot write the trajectory store" in r.stderr and "free disk space" in r.stderr, r.stderr[-2000:]
    assert "Traceback" not in r.stderr
    before = _keys(out)  # what was written is intact and readable
    assert before and max(before.values()) == 1
    # free space: move the file to a roomy disk and resume there
    roomy = tmp_path / "run.jsonl"
    roomy.write_bytes(out.read_bytes())
    r2 = _cli("run", "swarmgym/ToolMath-v0", "--policy", "oracle", "-n", "400", "--concurrency", "16",
              "--out", str(roomy), "--no-live", "--resume")
    assert r2.returncode == 0, r2.stderr[-2000:]
    after = _keys(roomy)
    assert len(after) == 400 and max(after.values()) == 1, (len(before), r2.stdout[-3000:], r2.stderr[-2000:])
    assert set(before) <= set(after)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_mid_run_keeps_what_finished_and_resume_completes(tmp_path: Path, sig: signal.Signals) -> None:
    out = tmp_path / "run.jsonl"
    with start_fake_server_process(default_text="\\boxed{0}", latency=(0.05, 0.2)) as srv:
        args = ["run", "swarmgym/Math-v0", "--policy", srv.base_url, "-n", "300", "--concurrency", "8",
                "--out", str(out), "--no-live"]
        proc = subprocess.Popen([*CLI, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # progress, not a fixed sleep: wait for records on disk
            if out.exists() and out.stat().st_size > 2000:
                break
            assert proc.poll() is None, proc.communicate()[1][-2000:]
            time.sleep(0.05)
        proc.send_signal(sig)
        stdout, err = proc.communicate(timeout=60)
        # both end the run the same way: in-flight episodes stored as cancelled, the summary printed
        assert proc.returncode == {signal.SIGTERM: 143, signal.SIGINT: 130}[sig], err[-2000:]
        assert "(interrupted)" in stdout
        assert "Traceback" not in err, err[-2000:]
        before = _keys(out)
        assert 0 < len(before) < 300 and max(before.values()) == 1
        r2 = _cli("run", *args[1:], "--resume")
    assert r2.returncode == 0, r2.stderr[-2000:]
    after = _keys(out)
    assert len(after) == 300 and max(after.values()) == 1
    cancelled = [t for t in read_trajectories(out, top_level_only=True) if t.status == "cancelled"]
    assert cancelled and not any(t.trainable for t in cancelled)  # cut short: never a training sample
    shown = _cli("show", str(out))  # the reruns are counted, the cancelled records they replace are not
    text = " ".join(shown.stdout.split())  # the table's title wraps
    assert shown.returncode == 0 and text.startswith("300 episodes"), text[-2000:]
    assert f"{len(cancelled)} cancelled episodes run again by a resume left out" in text


@pytest.mark.anyio
async def test_a_sandbox_killed_by_its_memory_limit_is_an_observation_and_the_next_episode_runs() -> None:
    from swarmgym import make
    from swarmgym.policies.scripted import ScriptedPolicy
    from swarmgym.loop import run_episode

    env = make("swarmgym/PythonMath-v0", pool_size=1)
    tool = next(s.name for s in env.tool_specs if "python" in s.name)
    bomb = {"role": "assistant", "content": None,
            "tool_calls": [{"id": "c1", "name": tool, "arguments": {"code": "x = bytearray(8 * 2**30)\nlen(x)"}}]}
    probe = {"role": "assistant", "content": None,
             "tool_calls": [{"id": "c2", "name": tool, "arguments": {"code": "print(6 * 7)"}}]}
    try:
        t1 = await run_episode(env, ScriptedPolicy([bomb, "\\boxed{0}"]), seed=0, fork=False)
        t2 = await run_episode(env, ScriptedPolicy([probe, "\\boxed{0}"]), seed=1, fork=False)
    finally:
        await env.sandbox.close()
    assert t1.status == "ok", t1.error
    obs = next(m for m in t1.messages if m.role == "tool")
    assert any(w in str(obs.content) for w in ("MemoryError", "memory", "killed")), obs.content
    assert t2.status == "ok", t2.error
    assert "42" in str(next(m for m in t2.messages if m.role == "tool").content)
