"""``swarmgym run``: oracle/scripted/URL policies, stores, resume, errors, Ctrl-C."""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from swarmgym.errors import ConfigError, RegistryError, RolloutError, StoreError
from swarmgym.rollout import read_trajectories
from swarmgym.rollout.cli import add_run_arguments, run_command


def run(argv: list[str]) -> int:
    p = argparse.ArgumentParser()
    add_run_arguments(p)
    return run_command(p.parse_args(argv))


def test_oracle_run_stores_and_resumes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run.jsonl"
    assert (
        run(
            [
                "swarmgym/ToolMath-v0",
                "--policy",
                "oracle",
                "-n",
                "4",
                "--group-size",
                "2",
                "--out",
                str(out),
                "--no-live",
            ]
        )
        == 0
    )
    table = capsys.readouterr().out
    assert "pass@2" in table and "1.0000" in table and "8 / 0 / 0 / 0" in table
    trajs = list(read_trajectories(out))
    assert len(trajs) == 8 and all(t.reward == 1.0 and t.num_turns == 2 for t in trajs)
    with pytest.raises(StoreError, match="--resume"):
        run(["swarmgym/ToolMath-v0", "-n", "4", "--out", str(out), "--no-live"])
    assert run(["swarmgym/ToolMath-v0", "-n", "5", "--group-size", "2", "--out", str(out), "--resume", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["counters"]["skipped_done"] == 8 and summary["counters"]["episodes_finished"] == 2
    assert len(list(read_trajectories(out))) == 10


def test_scripted_policy_and_max_turns(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["swarmgym/ToolMath-v0", "--policy", "scripted", "--scripted-text", "nope", "-n", "3", "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["counters"]["status_ok"] == 3 and s["mean_reward"] == 0.0


def test_user_errors_are_clear(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--policy must be"):
        run(["swarmgym/ToolMath-v0", "--policy", "gpt", "-n", "1"])
    with pytest.raises(ConfigError, match="--resume needs --out"):
        run(["swarmgym/ToolMath-v0", "--resume"])
    with pytest.raises(RegistryError):
        run(["swarmgym/Nope-v0", "-n", "1"])


def test_url_policy_against_the_fake_server(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from swarmgym.testing import start_fake_server_process

    with start_fake_server_process(default_text="\\boxed{0}") as srv:
        rc = run(["swarmgym/Math-v0", "--policy", srv.base_url, "-n", "6", "--concurrency", "3", "--json"])
    assert rc == 0
    s = json.loads(capsys.readouterr().out)
    assert s["counters"]["status_ok"] == 6 and s["counters"]["model_calls"] == 6


def test_dead_server_trips_the_breaker_with_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    with pytest.raises(RolloutError, match="episodes failed"):
        run(["swarmgym/Math-v0", "--policy", f"http://127.0.0.1:{port}/v1", "--model", "m", "-n", "200", "--no-live"])
    assert "PolicyConnectionError" in capsys.readouterr().out  # the summary still shows what happened


@contextmanager
def fake_server_in_a_thread(**kw: Any) -> Iterator[Any]:
    """The fake server on its own event loop in a thread of this process, so the test can watch the requests
    it received (a server process would hide them)."""
    import asyncio

    from swarmgym.testing import FakeOpenAIServer

    started = threading.Event()
    box: dict[str, Any] = {}

    def main() -> None:
        async def serve() -> None:
            srv = FakeOpenAIServer(**kw)
            await srv.start()
            box.update(srv=srv, loop=asyncio.get_running_loop(), stop=asyncio.Event())
            started.set()
            await box["stop"].wait()
            await srv.close()

        asyncio.run(serve())

    thread = threading.Thread(target=main, daemon=True)
    thread.start()
    if not started.wait(30):
        raise RuntimeError("the fake server thread did not start")
    try:
        yield box["srv"]
    finally:
        box["loop"].call_soon_threadsafe(box["stop"].set)
        thread.join(30)


@pytest.mark.slow
def test_ctrl_c_stores_partial_trajectories_as_cancelled(tmp_path: Path) -> None:
    out = tmp_path / "run.jsonl"
    with fake_server_in_a_thread(latency=30.0) as srv:
        proc = subprocess.Popen(
            [sys.executable, "-m", "swarmgym.cli", "run", "swarmgym/Math-v0", "--policy", srv.base_url, "--model",
             "fake-model", "-n", "5", "--out", str(out), "--no-live"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=str(tmp_path),
        )  # fmt: skip
        # interrupt once all 5 model requests have reached the server (they wait there for 30 s): progress seen
        # from outside the process, not a guessed sleep
        deadline = time.monotonic() + 120
        while sum("chat/completions" in r.path for r in list(srv.requests)) < 5:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                pytest.fail(f"the run did not send its 5 requests: {proc.communicate()[1].decode()[-2000:]}")
            time.sleep(0.02)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr.decode()[-2000:]
    assert b"interrupted" in stdout
    trajs = list(read_trajectories(out))
    assert len(trajs) == 5 and {t.status for t in trajs} == {"cancelled"}
