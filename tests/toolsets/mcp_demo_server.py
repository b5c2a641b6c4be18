"""A small MCP server for the MCPToolset tests, written with the ``mcp`` package's own server API.

Run as ``python mcp_demo_server.py`` (stdio) or ``python mcp_demo_server.py --http PORT`` (streamable HTTP
on 127.0.0.1).
"""

from __future__ import annotations

import asyncio
import os
import sys

try:  # mcp 2.x
    from mcp.server.mcpserver import MCPServer as Server
except ImportError:  # mcp 1.x
    from mcp.server.fastmcp import FastMCP as Server

server = Server("swarmgym-demo")
_count = {"n": 0}


@server.tool()
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@server.tool()
def echo(text: str) -> str:
    """Echo the text back, reversed and upper-cased."""
    return text[::-1].upper()


@server.tool()
def boom(reason: str = "kaboom") -> str:
    """Always fails."""
    raise ValueError(f"boom tool failed: {reason}")


@server.tool()
async def hang(seconds: float = 3600.0) -> str:
    """Sleep for a long time."""
    await asyncio.sleep(seconds)
    return "woke up"


@server.tool()
def pid() -> int:
    """This server's process id."""
    return os.getpid()


@server.tool()
def bump() -> int:
    """Increment and return this server process's counter."""
    _count["n"] += 1
    return _count["n"]


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--http":
        port = int(sys.argv[2])
        try:
            server.run("streamable-http", host="127.0.0.1", port=port)
        except TypeError:  # mcp 1.x: host and port are settings
            server.settings.host, server.settings.port = "127.0.0.1", port
            server.run("streamable-http")
    else:
        server.run()
