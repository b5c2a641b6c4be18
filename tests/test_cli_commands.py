"""The ``swarmgym`` command, run as a real subprocess (console script), the way users run it."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import sysconfig
import time
import urllib.request
from pathlib import Path

import pytest

# The console script of the interpreter running the tests (not whatever `swarmgym` is first on PATH); without
# one (the package imported from a checkout), the same CLI through `python -m swarmgym`, never a skip.
SCRIPT = Path(sysconfig.get_path("scripts")) / "swarmgym"
EXE = [str(SCRIPT)] if SCRIPT.is_file() else [sys.executable, "-m", "swarmgym"]


def sg(*args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    return subprocess.run([*EXE, *args], capture_output=True, text=True, cwd=cwd, timeout=timeout, env=env)


def test_console_script_is_installed() -> None:
    # users run the console script; the other tests fall back to `python -m swarmgym` without one, so this
    # is where its absence shows (a failure in CI, a skip with the reason elsewhere)
    if not SCRIPT.is_file():
        if os.environ.get("SWARMGYM_REQUIRE_REAL") == "1":
            pytest.fail(f"no swarmgym console script at {SCRIPT} (pip install -e . installs it)")
        pytest.skip(f"no swarmgym console script at {SCRIPT}: the CLI tests run `python -m swarmgym` instead")
    out = subprocess.run([str(SCRIPT), "--version"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip().count(".") == 2, out.stderr


def test_envs_lists_every_builtin(tmp_path: Path) -> None:
    out = sg("envs", "--json", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    envs = json.loads(out.stdout)
    for env_id in ("swarmgym/Math-v0", "swarmgym/ToolMath-v0", "swarmgym/SWE-v0", "swarmgym/WideSearch-Swarm-v0"):
        assert env_id in envs and envs[env_id]
    table = sg("envs", cwd=tmp_path)
    assert table.returncode == 0 and "swarmgym/ToolMath-v0" in table.stdout


def test_run_then_show(tmp_path: Path) -> None:
    out = sg("run", "swarmgym/ToolMath-v0", "--policy", "oracle", "-n", "20", "--out", "t.jsonl", "--no-live", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "mean reward" in out.stdout and "1.0000" in out.stdout

    summary = sg("show", "t.jsonl", cwd=tmp_path)
    assert summary.returncode == 0, summary.stderr
    assert "20 episodes" in summary.stdout and "mean tool calls" in summary.stdout

    one = sg("show", "t.jsonl", "-i", "0", cwd=tmp_path)
    assert one.returncode == 0, one.stderr
    # the rendered episode shows the calculator call, its result and the judge's verdict
    assert "calculator(" in one.stdout and "judge: reward=1.000" in one.stdout
    assert "[tool]" not in one.stdout  # panels, not raw role tags


def test_errors_are_one_clear_line(tmp_path: Path) -> None:
    out = sg("show", "missing.jsonl", cwd=tmp_path)
    assert out.returncode == 2
    assert out.stderr.strip() == "swarmgym: error: no such file: missing.jsonl"

    bad_index = tmp_path / "one.jsonl"
    sg("run", "swarmgym/Math-v0", "--policy", "oracle", "-n", "1", "--out", bad_index.name, "--no-live", cwd=tmp_path)
    out = sg("show", bad_index.name, "-i", "99", cwd=tmp_path)
    assert out.returncode == 2 and "out of range" in out.stderr and "Traceback" not in out.stderr

    out = sg("run", "swarmgym/Mat-v0", "--policy", "oracle", "-n", "1", "--no-live", cwd=tmp_path)
    assert out.returncode != 0 and "did you mean 'swarmgym/Math-v0'" in out.stderr
    assert "Traceback" not in out.stderr

    other = tmp_path / "other.jsonl"  # JSONL, but not a store
    other.write_text('{"a": 1}\n{"a": 2}\n')
    out = sg("show", other.name, cwd=tmp_path)
    assert out.returncode == 2 and "is not a swarmgym trajectory store" in out.stderr, out.stderr

    out = sg("show", str(tmp_path), cwd=tmp_path)
    assert out.returncode == 2 and "is a folder" in out.stderr and "Traceback" not in out.stderr

    for n in ("0", "-3"):  # not a silent empty run that exits 0
        out = sg("run", "swarmgym/Math-v0", "--policy", "oracle", "-n", n, "--no-live", cwd=tmp_path)
        assert out.returncode == 2 and "-n must be at least 1" in out.stderr, out.stderr

    out = sg("bench", "no-such-benchmark", cwd=tmp_path)
    assert out.returncode == 2 and "unknown benchmark" in out.stderr and "overhead" in out.stderr


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    out = sg("--debug", "show", "missing.jsonl", cwd=tmp_path)
    assert out.returncode == 2 and "Traceback" in out.stderr and "StoreError" in out.stderr  # same code as without
    # where the error message tells users to add it: anywhere on the line, also after the subcommand
    for args in (["show", "missing.jsonl", "--debug"], ["run", "swarmgym/Mat-v0", "--debug", "-n", "1"]):
        out = sg(*args, cwd=tmp_path)
        assert out.returncode != 0 and "Traceback" in out.stderr, (args, out.stderr[-1000:])
    for args in (["envs", "--version"], ["run", "swarmgym/Math-v0", "--version"]):
        out = sg(*args, cwd=tmp_path)
        assert out.returncode == 0 and out.stdout.strip().count(".") == 2, (args, out.stdout, out.stderr)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_fake_server_command_serves_chat_completions(tmp_path: Path) -> None:
    port = _free_port()
    proc = subprocess.Popen(
        [*EXE, "fake-server", "--port", str(port), "--model", "m1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    try:
        assert proc.stdout is not None
        assert f"127.0.0.1:{port}" in proc.stdout.readline()
        body = json.dumps({"model": "m1", "messages": [{"role": "user", "content": "hi"}]}).encode()
        data = None
        for _ in range(100):  # the banner is printed just before the socket is bound
            try:
                req = urllib.request.Request(
                    f"http://127.0.0.1:{port}/v1/chat/completions", data=body, headers={"Content-Type": "application/json"}
                )
                with urllib.request.urlopen(req, timeout=10) as r:
                    data = json.loads(r.read())
                break
            except OSError:
                time.sleep(0.1)
        assert data is not None and data["choices"][0]["message"]["role"] == "assistant"
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        for f in (proc.stdout, proc.stderr):
            if f is not None:
                f.close()


def test_version_and_help(tmp_path: Path) -> None:
    out = sg("--version", cwd=tmp_path)
    assert out.returncode == 0 and out.stdout.strip().count(".") == 2
    out = sg(cwd=tmp_path)
    assert out.returncode == 2 and "envs" in out.stdout and "sandbox" in out.stdout


def test_module_entry_point(tmp_path: Path) -> None:
    for module in ("swarmgym", "swarmgym.cli"):
        out = subprocess.run(
            [sys.executable, "-m", module, "envs", "--json"], capture_output=True, text=True, cwd=tmp_path, timeout=60
        )
        assert out.returncode == 0 and "swarmgym/Math-v0" in json.loads(out.stdout), (module, out.stderr)


def test_a_closed_pipe_is_not_an_error(tmp_path: Path) -> None:
    from swarmgym.testing.synthetic_run import write_synthetic_run

    run = tmp_path / "run.jsonl"
    write_synthetic_run(run, 50)
    for args in (["verify", str(run), "--json"], ["show", str(run)], ["envs"]):
        # the reader is gone before the command writes a byte (`swarmgym … | head -0`)
        with subprocess.Popen([*EXE, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path) as p:
            assert p.stdout is not None and p.stderr is not None
            p.stdout.close()
            err = p.stderr.read().decode()
            assert p.wait(timeout=120) == 1 and err == "", (args, err[-2000:])

