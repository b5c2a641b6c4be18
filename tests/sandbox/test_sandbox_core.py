"""The Sandbox protocol on every backend: exec, stateful python, files, caps, timeouts, reset."""

from __future__ import annotations

import anyio
import pytest

from swarmgym.toolsets.sandbox import ExecResult, PythonResult, Sandbox

pytestmark = pytest.mark.anyio


async def test_is_a_sandbox(sandbox):
    assert isinstance(sandbox, Sandbox)
    assert sandbox.alive


async def test_exec_output_exit_code_and_env(sandbox):
    r = await sandbox.exec("echo out; echo err >&2; pwd; echo $HOME; exit 3")
    assert isinstance(r, ExecResult)
    assert r.exit_code == 3 and not r.ok
    assert r.stdout.splitlines() == ["out", sandbox.workspace, "/workspace"]
    assert r.stderr == "err\n"
    r = await sandbox.exec("echo $FOO; pwd", env={"FOO": "bar"}, cwd="/tmp")
    assert r.stdout == "bar\n/tmp\n"


async def test_exec_runs_as_unprivileged_user(sandbox):
    r = await sandbox.exec("id -u; grep CapEff /proc/self/status; grep NoNewPrivs /proc/self/status")
    uid, cap, nnp = r.stdout.splitlines()
    assert uid == "65534"
    assert cap.split()[1] == "0000000000000000"
    assert nnp.split()[1] == "1"


async def test_python_state_persists_and_last_value(sandbox):
    r = await sandbox.run_python("import math\nx = 20\nprint('hi')\nx + 22")
    assert isinstance(r, PythonResult)
    assert r.ok and r.stdout == "hi\n" and r.value == "42"
    r = await sandbox.run_python("def f(y):\n    return math.sqrt(y) + x\nf(16)")
    assert r.value == "24.0"
    r = await sandbox.run_python("x = None")
    assert r.value is None and r.ok


async def test_python_traceback_is_trimmed_to_the_cell(sandbox):
    r = await sandbox.run_python("def g():\n    raise ValueError('boom')\ng()")
    assert not r.ok
    assert r.error.startswith("Traceback (most recent call last):")
    assert 'File "<cell>", line 3' in r.error and "ValueError: boom" in r.error
    assert "agent" not in r.error and "_kernel_main" not in r.error
    r = await sandbox.run_python("def (:")
    assert "SyntaxError" in r.error
    r = await sandbox.run_python("print(1); import sys; print(2, file=sys.stderr); exit(5)")
    assert r.stdout == "1\n" and r.stderr == "2\n" and "SystemExit: 5" in r.error
    assert (await sandbox.run_python("40 + 2")).value == "42"  # exit() did not end the session


async def test_python_subprocess_output_is_captured(sandbox):
    r = await sandbox.run_python("import os\nos.system('echo from-shell')\nprint('after')")
    assert "from-shell" in r.stdout and "after" in r.stdout


async def test_output_is_capped_with_a_marker(sandbox):
    r = await sandbox.exec("seq 1 200000")
    assert r.stdout_truncated > 0
    assert len(r.stdout.encode()) < 66_000
    assert r.stdout.startswith("1\n2\n3\n")
    assert r.stdout.rstrip().endswith("199999\n200000")
    assert f"[... {r.stdout_truncated} bytes of output truncated" in r.stdout
    r = await sandbox.run_python("print('x' * 1_000_000)")
    assert r.stdout_truncated > 900_000 and "truncated" in r.stdout


async def test_timeout_kills_the_process_group_and_sandbox_stays_usable(sandbox):
    r = await sandbox.exec("(sleep 1000; echo never) & sleep 1000", timeout=0.5)
    assert r.timed_out and r.exit_code is None
    ps = await sandbox.exec("ps -eo args | grep -c '^sleep 1000' || true")
    assert ps.stdout.strip() == "0"
    r = await sandbox.run_python("y = 1\nimport time\ntime.sleep(1000)", timeout=0.5)
    assert r.timed_out and "variables are lost" in r.note
    r = await sandbox.run_python("1 + 1")
    assert r.value == "2" and "reset" in r.note


async def test_concurrent_calls(sandbox):
    results: dict[int, ExecResult] = {}

    async def one(i: int) -> None:
        results[i] = await sandbox.exec(f"sleep 0.2; echo {i}")

    async with anyio.create_task_group() as tg:
        for i in range(8):
            tg.start_soon(one, i)
        tg.start_soon(sandbox.run_python, "z = 5")
    assert {i: r.stdout.strip() for i, r in results.items()} == {i: str(i) for i in range(8)}


async def test_files_round_trip(sandbox):
    await sandbox.write_file("dir/a.txt", "héllo\n")
    await sandbox.write_file("bin.dat", bytes(range(256)))
    assert await sandbox.read_file("dir/a.txt") == "héllo\n".encode()
    assert await sandbox.read_file(f"{sandbox.workspace}/bin.dat") == bytes(range(256))
    r = await sandbox.exec("cat dir/a.txt")
    assert r.stdout == "héllo\n"
    with pytest.raises(FileNotFoundError):
        await sandbox.read_file("missing.txt")
    with pytest.raises(IsADirectoryError):
        await sandbox.read_file("dir")
    with pytest.raises(OSError, match="/usr/evil"):  # read-only file system or permission denied
        await sandbox.write_file("/usr/evil", "x")
    assert await sandbox.list_dir("") == ["bin.dat", "dir/", "dir/a.txt"]


async def test_reset_restores_workspace_and_kills_processes(sandbox):
    pristine = sandbox.pristine_hash
    await sandbox.exec("echo x > junk; mkdir -p d/e; chmod 000 d; echo t > /tmp/t; (sleep 1000 &) ; nohup sleep 999 &")
    await sandbox.run_python("v = 1")
    state = await sandbox.state()
    assert state.workspace_hash != pristine and state.strays
    state = await sandbox.reset()
    assert sandbox.verify(state) is None
    assert state.workspace_hash == pristine and state.strays == []
    assert (await sandbox.exec("ls -A /workspace /tmp")).stdout.split() == ["/tmp:", "/workspace:"]
    assert "NameError" in (await sandbox.run_python("v")).error
