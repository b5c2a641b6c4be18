"""MCPToolset with the stdio server inside a sandbox: the real MCP demo server (the ``mcp`` package's server
API) in a docker container or a bubblewrap sandbox without network, the ``mcp`` client outside."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
from swarmgym.testing.require import require_sandbox
from swarmgym.toolsets.base import ToolContext
from swarmgym.toolsets.mcp import MCPToolset
from swarmgym.toolsets.sandbox.base import SandboxConfig
from swarmgym.wire import ToolCall

pytestmark = pytest.mark.anyio

HERE = Path(__file__).resolve().parent
PY = "/opt/hostpy"  # the host's Python (with the mcp package), bound read-only into the sandbox


def _traversable(path: str) -> bool:
    """Whether an unprivileged user can reach ``path`` (bubblewrap binds as the sandbox user)."""
    p = Path(path)
    return all(os.stat(q).st_mode & 0o001 for q in [p, *p.parents])


@pytest.fixture(params=["local", pytest.param("docker", marks=pytest.mark.docker)])
def backend(request: pytest.FixtureRequest) -> str:
    require_sandbox(request.param)
    if request.param == "local" and not all(
        _traversable(p) for p in (sys.base_prefix, str(HERE), _site() or sys.base_prefix)
    ):
        pytest.skip(f"the sandbox user cannot reach this Python ({sys.base_prefix}) or the tests folder")
    return request.param


SITE = "/opt/hostsite"  # a virtualenv's site-packages (where mcp is installed), when the tests run in one


def _site() -> str | None:
    """The running venv's site-packages, or None outside a venv (the base prefix holds the packages then).
    A venv's interpreter is a symlink into the base prefix, so binding the venv alone gives no Python."""
    import sysconfig

    return sysconfig.get_paths()["purelib"] if sys.prefix != sys.base_prefix else None


def _toolset(backend: str, **kw: Any) -> MCPToolset:
    binds = {sys.base_prefix: PY, str(HERE): "/srv/mcp"}
    env = {"LD_LIBRARY_PATH": f"{PY}/lib"}
    site = _site()
    if site is not None:
        binds[site] = SITE
        env["PYTHONPATH"] = SITE
    cfg = SandboxConfig(binds=binds)
    exe = f"{PY}/bin/python{sys.version_info.major}.{sys.version_info.minor}"
    return MCPToolset([exe, "/srv/mcp/mcp_demo_server.py"], sandbox=backend, sandbox_config=cfg,
                      env=env, connect_timeout_s=120, timeout_s=60, errlog=subprocess.DEVNULL, **kw)


async def _call(ts: MCPToolset, ctx: ToolContext, name: str, **args: Any) -> Any:
    return await ts.call(ToolCall(id="c", name=name, arguments=args), ctx)


async def test_sandboxed_server_tools_calls_errors_and_timeouts(backend: str) -> None:
    ts = _toolset(backend, timeouts={"hang": 1.0})
    try:
        assert [s.name for s in ts.specs()] == ["add", "echo", "boom", "hang", "pid", "bump"]
        ctx = ToolContext()
        await ts.setup(ctx)
        assert (await _call(ts, ctx, "add", a=2, b=40)).content == "42"
        assert (await _call(ts, ctx, "echo", text="sandbox")).content == "XOBDNAS"
        err = await _call(ts, ctx, "boom", reason="inside")
        assert err.is_error and "boom" in err.content
        slow = await _call(ts, ctx, "hang", seconds=30)
        assert slow.is_error and "timed out" in slow.content
        assert (await _call(ts, ctx, "add", a=1, b=1)).content == "2"  # the server survived the timeout
        await ts.teardown(ctx)
    finally:
        ts.close()
    _assert_nothing_left(backend)


async def test_episode_scope_gives_each_episode_its_own_sandboxed_server(backend: str) -> None:
    ts = _toolset(backend, scope="episode")
    try:
        a, b = ToolContext(), ToolContext()
        await ts.setup(a)
        await ts.setup(b)
        assert [(await _call(ts, a, "bump")).content for _ in range(2)] == ["1", "2"]
        assert (await _call(ts, b, "bump")).content == "1"
        with anyio.move_on_after(0.5):  # cancelled mid-call, then torn down: its sandbox goes too
            await _call(ts, a, "hang", seconds=60)
        await ts.teardown(a)
        await ts.teardown(b)
    finally:
        ts.close()
    _assert_nothing_left(backend)


def _assert_nothing_left(backend: str) -> None:
    import tempfile

    assert not list(Path(tempfile.gettempdir()).glob("swarmgym-mcp-*")), "relay folders left behind"
    if backend == "docker":
        from swarmgym.toolsets.sandbox.docker import RUN_ID, list_containers

        assert [c for c in list_containers(all_owners=False) if c["run"] == RUN_ID] == []


def test_sandbox_needs_a_stdio_server_and_a_known_backend() -> None:
    from swarmgym.errors import ConfigError

    with pytest.raises(ConfigError, match="stdio server"):
        MCPToolset(url="http://127.0.0.1:1/mcp", sandbox="docker")
    with pytest.raises(ConfigError, match="unknown sandbox backend"):
        MCPToolset(["x"], sandbox="vm")
