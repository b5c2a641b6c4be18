"""An MCP stdio server run inside a sandbox (no network), for :class:`~swarmgym.toolsets.mcp.MCPToolset`.

The sandbox layer runs commands to completion; it has no streaming stdio. So the server's stdio crosses
the sandbox wall on a unix socket instead: a host folder is bound read-only into the sandbox, a host relay
(the process the MCP client's own stdio transport starts) listens on a socket in it, and a relay in the
sandbox, started with ``Sandbox.exec``, connects to that socket and runs the server with its stdin/stdout
on the connection. The client code path is the plain stdio one; the server sees a plain stdio pipe. When
the client stops its relay, the connection closes, the server's stdin ends and the sandbox is closed with
everything in it. Both relays are stdlib-only Python.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import sys
import tempfile
from collections.abc import AsyncIterator, Sequence
from typing import Any

import anyio

from .sandbox.base import SandboxConfig

__all__ = ["sandboxed_stdio_client", "SANDBOX_DIR"]

SANDBOX_DIR = "/run/swarmgym-mcp"
_RUN_FOR_S = 7 * 24 * 3600.0  # the server lives as long as its connection; the exec's own bound is moot

# Host side: listen, take one connection, pump stdin -> socket and socket -> stdout until either ends.
HOST_RELAY = r"""
import os, socket, sys, threading
srv = socket.socket(socket.AF_UNIX)
srv.bind(sys.argv[1])
os.chmod(sys.argv[1], 0o666)
srv.listen(1)
srv.settimeout(float(sys.argv[2]))
try:
    c, _ = srv.accept()
except socket.timeout:
    print("swarmgym mcp relay: the sandboxed server never connected", file=sys.stderr)
    sys.exit(3)
c.settimeout(None)
def up():
    while True:
        d = os.read(0, 65536)
        if not d:
            break
        c.sendall(d)
    try:
        c.shutdown(socket.SHUT_WR)
    except OSError:
        pass
threading.Thread(target=up, daemon=True).start()
while True:
    d = c.recv(65536)
    if not d:
        break
    os.write(1, d)
"""

# Sandbox side: connect (the host relay may not listen yet), run the server on the connection.
SANDBOX_RELAY = r"""
import socket, subprocess, sys, threading, time
path, cmd = sys.argv[1], sys.argv[2:]
deadline = time.monotonic() + 60
while True:
    c = socket.socket(socket.AF_UNIX)
    try:
        c.connect(path)
        break
    except OSError:
        c.close()
        if time.monotonic() > deadline:
            print("swarmgym mcp relay: no host relay at", path, file=sys.stderr)
            sys.exit(3)
        time.sleep(0.02)
p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0)
def down():
    try:
        while True:
            d = c.recv(65536)
            if not d:
                break
            p.stdin.write(d)
    except OSError:
        pass
    try:
        p.stdin.close()
    except OSError:
        pass
threading.Thread(target=down, daemon=True).start()
while True:
    d = p.stdout.read1(65536) if hasattr(p.stdout, "read1") else p.stdout.read(65536)
    if not d:
        break
    c.sendall(d)
c.close()
sys.exit(p.wait())
"""


@contextlib.asynccontextmanager
async def sandboxed_stdio_client(
    command: Sequence[str],
    *,
    backend: str,
    config: SandboxConfig | None,
    env: dict[str, str],
    cwd: str | None,
    errlog: Any,
    connect_timeout_s: float,
) -> AsyncIterator[Any]:
    """The MCP client's stdio transport for ``command`` run in a fresh sandbox of ``backend``.

    Yields what ``mcp.client.stdio.stdio_client`` yields. The sandbox gets no network and the relay folder
    bound in; ``config.binds`` may add more (e.g. where the server's interpreter and code live).
    """
    from mcp.client.stdio import StdioServerParameters, stdio_client

    from .sandbox.factory import create_sandbox, make_config

    folder = tempfile.mkdtemp(prefix="swarmgym-mcp-")
    os.chmod(folder, 0o755)  # the sandbox user reaches the socket through it
    cfg = make_config(config)
    cfg = make_config(cfg, binds={**cfg.binds, folder: SANDBOX_DIR}, network=False)
    sb = None
    try:
        sb = await create_sandbox(backend, cfg)
        inner = shlex.join([cfg.python, "-S", "-c", SANDBOX_RELAY, f"{SANDBOX_DIR}/s", *command])
        exec_env = dict(env)
        host = StdioServerParameters(
            command=sys.executable,
            args=["-S", "-c", HOST_RELAY, os.path.join(folder, "s"), str(connect_timeout_s)],
        )
        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: sb.exec(inner, _RUN_FOR_S, cwd=cwd, env=exec_env or None))
            try:
                async with stdio_client(host, errlog=errlog if errlog is not None else sys.stderr) as streams:
                    yield streams
            finally:
                tg.cancel_scope.cancel()
    finally:
        with anyio.CancelScope(shield=True):
            if sb is not None:
                await sb.close()
            shutil.rmtree(folder, ignore_errors=True)
