"""Backend-specific behaviour: bubblewrap's clear failure, the unsafe opt-in, docker hardening, gc."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
from swarmgym.testing.require import require_sandbox

from swarmgym.errors import SandboxError
from swarmgym.toolsets.sandbox import create_sandbox, reaper

pytestmark = pytest.mark.anyio


def test_bwrap_without_namespaces_fails_naming_docker(tmp_path, monkeypatch):
    from swarmgym.toolsets.sandbox import local

    fake = tmp_path / "bwrap"
    fake.write_text("#!/bin/sh\necho 'bwrap: No permissions to creating new namespace' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    local.check_bwrap.cache_clear()
    try:
        with pytest.raises(SandboxError, match=r"cannot create namespaces.*backend='docker'"):
            local.check_bwrap()
    finally:
        local.check_bwrap.cache_clear()


async def test_unsafe_backend_is_opt_in_and_warns():
    from swarmgym.toolsets.sandbox.unsafe import UnsandboxedWarning

    with pytest.warns(UnsandboxedWarning, match="WITHOUT ISOLATION"):
        sb = await create_sandbox("unsafe")
    async with sb:
        assert (await sb.run_python("a = 2\na * 21")).value == "42"
        r = await sb.exec("sleep 100", timeout=0.3)
        assert r.timed_out
        state = await sb.reset()
        assert sb.verify(state) is None


async def test_docker_container_is_hardened():
    require_sandbox("docker")
    from swarmgym.toolsets.sandbox.docker import docker_client

    async with await create_sandbox("docker") as sb:
        info = docker_client().api.inspect_container(sb.container_id)
        hc = info["HostConfig"]
        assert hc["NetworkMode"] == "none"
        assert hc["ReadonlyRootfs"] is True
        assert hc["CapDrop"] == ["ALL"]
        assert "no-new-privileges" in hc["SecurityOpt"]
        assert hc["Init"] is True and hc["PidsLimit"] == 256 and hc["Memory"] == 1024 * 1024 * 1024
        assert info["Config"]["User"] == "65534:65534"
        assert info["Config"]["Labels"][reaper_label()] == reaper.owner_tag()
        assert not any("docker.sock" in (m.get("Source") or "") for m in info["Mounts"])


def reaper_label() -> str:
    from swarmgym.toolsets.sandbox.docker import LABEL_OWNER

    return LABEL_OWNER


@pytest.mark.slow
def test_gc_removes_what_a_killed_owner_left():
    """kill -9 a process holding sandboxes; gc removes its workspaces (and containers)."""
    import shutil
    import tempfile

    tmp_path = tempfile.mkdtemp(prefix="swarmgym-gc-test-")  # under /tmp: the sandbox user must traverse it
    os.chmod(tmp_path, 0o711)
    backends = ["local"]
    try:
        require_sandbox("docker")
        backends.append("docker")
    except pytest.skip.Exception:
        pass
    script = textwrap.dedent(
        f"""
        import anyio, os, sys
        from swarmgym.toolsets.sandbox import create_sandbox
        async def main():
            sbs = [await create_sandbox(b) for b in {backends!r}]
            print("ready", flush=True)
            await anyio.sleep(600)
        anyio.run(main)
        """
    )
    env = {**os.environ, "SWARMGYM_SANDBOX_DIR": tmp_path}
    p = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, env=env)
    try:
        assert p.stdout is not None
        assert p.stdout.readline().strip() == b"ready"
        owner = reaper.owner_tag(p.pid)
    finally:
        p.kill()
        p.wait()
        p.stdout.close()
    assert os.listdir(tmp_path) == [owner]
    os.environ["SWARMGYM_SANDBOX_DIR"] = tmp_path
    try:
        removed = reaper.gc()
    finally:
        del os.environ["SWARMGYM_SANDBOX_DIR"]
    assert removed == len(backends)
    assert os.listdir(tmp_path) == []
    if "docker" in backends:
        from swarmgym.toolsets.sandbox.docker import list_containers

        assert not [c for c in list_containers() if c["owner"] == owner]
    shutil.rmtree(tmp_path, ignore_errors=True)


def test_sandbox_import_is_light():
    code = "import sys, swarmgym.toolsets.sandbox as s; s.SandboxConfig; print(sorted(m for m in ('docker','bm25s','aiohttp') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_all_matches_public_names():
    import swarmgym.toolsets.sandbox as s

    for name in s.__all__:
        assert getattr(s, name) is not None
    assert sorted(s.__all__) == sorted(n for n in dir(s) if not n.startswith('_'))


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGINT"])
def test_signals_clean_up_sandboxes(sig):
    """A run stopped by SIGTERM or ^C removes its sandboxes (workspaces, processes, containers)."""
    import shutil
    import signal
    import tempfile

    backends = ["local"]
    try:
        require_sandbox("docker")
        backends.append("docker")
    except pytest.skip.Exception:
        pass
    root = tempfile.mkdtemp(prefix="swarmgym-sig-test-")
    os.chmod(root, 0o711)
    script = textwrap.dedent(
        f"""
        import anyio
        from swarmgym.toolsets.sandbox import SandboxPool
        async def main():
            pools = [SandboxPool(b, size=2) for b in {backends!r}]
            for p in pools:
                await p.start()
            print("ready", flush=True)
            await anyio.sleep(600)
        anyio.run(main)
        """
    )
    p = subprocess.Popen(
        [sys.executable, "-c", script],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "SWARMGYM_SANDBOX_DIR": root},
    )
    try:
        assert p.stdout is not None
        assert p.stdout.readline().strip() == b"ready"
        owner = reaper.owner_tag(p.pid)
        assert os.listdir(os.path.join(root, owner))
        p.send_signal(getattr(signal, sig))
        p.wait(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        p.stdout.close()
    assert os.listdir(root) == []
    if "docker" in backends:
        from swarmgym.toolsets.sandbox.docker import list_containers

        assert not [c for c in list_containers() if c["owner"] == owner]
    shutil.rmtree(root, ignore_errors=True)
