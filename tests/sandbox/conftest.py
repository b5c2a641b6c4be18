"""Fixtures for sandbox tests: backends (docker fails instead of skipping when required) and a
session-finish check that nothing of ours is left running."""

from __future__ import annotations

import os

import anyio
import pytest

from swarmgym.testing.require import docker_problem, require_sandbox
from swarmgym.toolsets.sandbox import reaper


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(params=["local", pytest.param("docker", marks=pytest.mark.docker)])
def backend(request: pytest.FixtureRequest) -> str:
    """Each sandbox test runs on both backends."""
    require_sandbox(request.param)
    return request.param


@pytest.fixture
def sandbox(backend: str):
    """A fresh sandbox of ``backend`` (started and closed outside the test's event loop: sandboxes are not
    bound to one)."""
    from swarmgym.toolsets.sandbox import create_sandbox

    sb = anyio.run(create_sandbox, backend)
    yield sb
    anyio.run(sb.close)


def _our_processes() -> list[str]:
    """Descendant processes of this pytest process that belong to sandboxes (bwrap, setpriv, the agent)."""
    me = os.getpid()
    children: dict[int, list[int]] = {}
    names: dict[int, str] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                stat = f.read()
            with open(f"/proc/{name}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(name))
        names[int(name)] = cmd[:120]
    out, todo = [], list(children.get(me, []))
    while todo:
        pid = todo.pop()
        out.append(f"{pid}: {names.get(pid, '?')}")
        todo += children.get(pid, [])
    return [p for p in out if "bwrap" in p or "setpriv" in p or "python3 -S" in p]


@pytest.fixture(scope="session", autouse=True)
def no_leftovers():
    """After the session: no live sandbox, no sandbox process, no container and no workspace of ours."""
    yield
    import gc

    gc.collect()  # pools nobody closed (envs made and dropped) kill their sandboxes when collected
    leaks: list[str] = []
    if reaper.live_count():
        leaks.append(f"{reaper.live_count()} sandbox(es) never closed")
        reaper.cleanup_all()
    procs = _our_processes()
    if procs:
        leaks.append(f"processes left: {procs}")
    mine = os.path.join(reaper.sandbox_root(), reaper.owner_tag())
    if os.path.isdir(mine) and os.listdir(mine):
        leaks.append(f"workspaces left in {mine}: {os.listdir(mine)}")
    if docker_problem() is None:
        from swarmgym.toolsets.sandbox.docker import list_containers

        ours = [c for c in list_containers() if c["owner"] == reaper.owner_tag()]
        if ours:
            leaks.append(f"containers left: {ours}")
    assert not leaks, "; ".join(leaks)
