"""Hostile tools: each attack gives a clear result, leaves the host untouched, and the run goes on."""

from __future__ import annotations

import os
import resource
import socket
import threading

import anyio
import pytest

from swarmgym.errors import SandboxError
from swarmgym.toolsets.sandbox import SandboxPool

pytestmark = pytest.mark.anyio


async def _still_usable(sb) -> None:
    r = await sb.exec("echo alive")
    assert r.stdout == "alive\n"
    assert (await sb.run_python("6 * 7")).value == "42"


async def test_no_network_egress_to_host_loopback(sandbox):
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    port = srv.getsockname()[1]
    accepted: list[object] = []
    stop = threading.Event()

    def accept() -> None:
        srv.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(srv.accept()[0])
            except OSError:
                continue

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    try:
        r = await sandbox.run_python(
            "import socket\n"
            "s = socket.socket(); s.settimeout(3)\n"
            f"s.connect(('127.0.0.1', {port}))"
        )
        assert r.error and ("ConnectionRefusedError" in r.error or "timed out" in r.error)
        assert accepted == []
        # Only the loopback device and no route anywhere: nothing can leave, whatever the address
        # (we never send traffic to outside addresses from tests).
        r = await sandbox.exec("cat /proc/net/dev | tail -n +3 | cut -d: -f1; cat /proc/net/route | tail -n +2")
        assert r.stdout.split() == ["lo"]
    finally:
        stop.set()
        t.join()
        srv.close()
    await _still_usable(sandbox)


async def test_cannot_read_host_secrets_or_checkout(sandbox):
    import swarmgym

    checkout = os.path.dirname(os.path.abspath(swarmgym.__file__))
    for cmd in ("cat /etc/shadow", "ls /root", f"cat {checkout}/wire.py", "cat /etc/gshadow", f"ls {checkout}"):
        r = await sandbox.exec(cmd)
        assert r.exit_code != 0, f"{cmd} worked: {r.stdout[:200]}"
        assert r.stderr
    # The host's environment (API keys …) is not visible through any process of the sandbox.
    r = await sandbox.exec("cat /proc/[0-9]*/environ | tr '\\0' '\\n' | cut -d= -f1 | sort -u")
    allowed = set(sandbox.config.env) | {"PWD", "HOSTNAME", "SHLVL", "_", "OLDPWD"}
    assert set(r.stdout.split()) <= allowed, set(r.stdout.split()) - allowed
    r = await sandbox.run_python("open('/etc/shadow').read()")
    assert r.error and ("FileNotFoundError" in r.error or "PermissionError" in r.error)
    await _still_usable(sandbox)


async def test_cannot_write_outside_workspace(sandbox, tmp_path):
    marker = tmp_path / "host-file"
    marker.write_text("host")
    for path in ("/usr/bin/evil", "/etc/evil", "/evil", str(marker)):
        r = await sandbox.exec(f"echo pwned > {path}")
        assert r.exit_code != 0 and r.stderr, path
    assert marker.read_text() == "host"
    assert not os.path.exists("/usr/bin/evil") and not os.path.exists("/evil")
    await _still_usable(sandbox)


def _pids_cgroup(sandbox) -> str | None:
    """Host path of the sandbox's pids cgroup (v1 or v2), found from one of its host processes."""
    import subprocess

    if sandbox.backend == "docker":
        pid = subprocess.run(["docker", "inspect", "-f", "{{.State.Pid}}", sandbox.container_id],
                             capture_output=True, text=True, timeout=60).stdout.strip()
    else:
        pid = str(sandbox.pid)
    try:
        with open(f"/proc/{pid}/cgroup") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        for root in (["/sys/fs/cgroup/pids"] if "pids" in controllers.split(",") else
                     ["/sys/fs/cgroup"] if controllers == "" else []):
            d = root + path
            if os.path.exists(os.path.join(d, "pids.current")):
                return d
    return None


def _read(cg: str, name: str) -> str:
    with open(os.path.join(cg, name)) as f:
        return f.read().strip()


@pytest.mark.slow
async def test_fork_bomb_is_contained(sandbox):
    """The pids limit stops the bomb (the kernel counts refused forks), the host still forks, and a reset
    leaves no process of the bomb: containment itself, whatever the bomb's shell returned and when."""
    import subprocess

    cg = _pids_cgroup(sandbox)
    if cg is None:
        why = f"the {sandbox.backend} sandbox has no pids cgroup here (non-root local sandboxes rely on RLIMIT_NPROC)"
        if os.environ.get("SWARMGYM_REQUIRE_REAL") == "1" or os.environ.get("SWARMGYM_REQUIRE_DOCKER") == "1":
            pytest.fail(why)
        pytest.skip(why)
    limit = sandbox.config.limits.pids
    assert int(_read(cg, "pids.max")) == limit
    refused_before = int(_read(cg, "pids.events").split()[1])
    before = int(_read(cg, "pids.current"))

    await sandbox.exec("bomb() { bomb | bomb & }; bomb", timeout=3)
    peak, refused = 0, refused_before
    for _ in range(100):  # watch until the kernel has refused forks (the bomb hit the limit)
        peak = max(peak, int(_read(cg, "pids.current")))
        refused = int(_read(cg, "pids.events").split()[1])
        if refused > refused_before and peak >= limit // 2:
            break
        await anyio.sleep(0.05)
    assert refused > refused_before, "the bomb never hit the pids limit: nothing was contained"
    assert peak <= limit
    host = subprocess.run(["true"], timeout=30)  # the host forks fine while the bomb runs
    assert host.returncode == 0

    state = await sandbox.reset()
    assert sandbox.verify(state) is None
    assert int(_read(cg, "pids.current")) <= before
    await _still_usable(sandbox)


async def test_memory_bomb_is_killed(sandbox):
    r = await sandbox.run_python("blob = bytearray(8 * 1024**3)")
    assert r.error and "MemoryError" in r.error
    r = await sandbox.exec(
        "python3 -c \"a = []\nwhile True: a.append(bytearray(50 * 1024**2))\"", timeout=20
    )
    assert r.exit_code != 0
    assert "MemoryError" in r.stderr or "killed" in r.note
    await _still_usable(sandbox)


async def test_gigabyte_of_output_is_truncated_with_flat_host_memory(sandbox):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    r = await sandbox.exec("yes 0123456789abcdef | head -c 1000000000", timeout=60)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert r.exit_code == 0
    assert r.stdout_truncated > 999_000_000
    assert len(r.stdout) < 70_000
    assert (after - before) < 100 * 1024  # KiB: the host never held the gigabyte
    await _still_usable(sandbox)


async def test_sleep_forever_times_out(sandbox):
    r = await sandbox.exec("sleep 86399", timeout=0.5)
    assert r.timed_out and r.exit_code is None
    # the timed-out command is gone, not left running in the background
    assert not [p for p in (await sandbox.exec("ps -eo args")).stdout.splitlines() if "sleep 86399" in p]
    await _still_usable(sandbox)


async def test_killing_the_agent_makes_the_pool_replace_the_sandbox(backend):
    async with SandboxPool(backend, size=1) as pool:
        async with pool.acquire() as sb:
            first = sb.id
            with pytest.raises(SandboxError, match="agent exited"):
                await sb.exec(f"kill -9 {sb.agent_pid}")
            assert not sb.alive
        assert pool.stats.discarded == 1 and pool.stats.replaced == 1
        async with pool.acquire() as sb2:
            assert sb2.id != first
            await _still_usable(sb2)


async def test_two_sandboxes_are_isolated(backend):
    from swarmgym.toolsets.sandbox import create_sandbox

    async with await create_sandbox(backend) as a, await create_sandbox(backend) as b:
        await a.exec("echo secret > mine.txt; echo secret > /tmp/mine.txt; nohup sleep 777 >/dev/null 2>&1 &")
        r = await b.exec("ls -A /workspace /tmp; ps -eo args")
        assert "mine.txt" not in r.stdout
        assert "sleep 777" not in r.stdout
        assert (await a.exec("cat mine.txt")).stdout == "secret\n"
