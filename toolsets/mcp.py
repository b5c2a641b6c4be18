"""Tools from an MCP server (Model Context Protocol) as a swarmgym toolset.

:class:`MCPToolset` connects to a server over stdio (a command started as a subprocess) or streamable HTTP
(a URL), reads the tools' schemas from ``list_tools`` and forwards calls with a timeout. Whatever can go
wrong with a call (the tool raised or returned ``isError``, bad arguments, a timeout, a crashed server)
becomes an error :class:`~swarmgym.wire.ToolResult`, never an exception out of the loop.

The MCP client needs its connection's context managers entered and left in one task, and that task must
outlive any single call; an episode's tasks do not (and the env's sync API runs on another thread's loop).
So every connection lives in a task of this toolset's own event-loop thread (an anyio blocking portal);
calls are handed over as futures. A stdio server is started once per toolset (``scope="env"``, shared by
concurrent episodes; restarted by the next episode after a crash) or once per episode (``scope="episode"``)
and always stopped: at episode teardown, at :meth:`MCPToolset.close`, at garbage collection or interpreter
exit, and on cancellation (the MCP client kills the server's process group when its context exits).

The ``mcp`` package is imported only when a connection is opened (``pip install 'swarmgym[mcp]'``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import json
import math
import queue
import sys
import threading
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import anyio
import anyio.from_thread
import anyio.to_thread

from ..errors import ConfigError, SwarmgymError
from ..wire import ContentPart, ImagePart, TextPart, ToolCall, ToolResult, ToolSpec
from .base import ToolContext

__all__ = ["MCPToolset", "MCPServerError"]


class MCPServerError(SwarmgymError):
    """An MCP server could not be started or connected to (raised by discovery and episode setup)."""


def _why(e: BaseException) -> str:
    """The leaf exceptions of ``e`` (anyio wraps them in exception groups) as one line."""
    if isinstance(e, BaseExceptionGroup):
        return "; ".join(_why(x) for x in e.exceptions)
    return f"{type(e).__name__}: {e}" if str(e) else type(e).__name__


def _import_mcp() -> Any:
    try:
        import mcp
    except ImportError as e:  # pragma: no cover - depends on the install
        raise ImportError("MCPToolset needs the 'mcp' package: pip install 'swarmgym[mcp]'") from e
    return mcp


class _Connection:
    """One client session to one server, owned by a task of the toolset's portal thread."""

    def __init__(self, transport: Callable[[], Any], connect_timeout_s: float) -> None:
        self._transport = transport
        self._connect_timeout_s = connect_timeout_s
        self.session: Any = None
        self.tools: list[Any] = []
        self.dead: str | None = None
        """Why the connection can no longer be used (None while it is healthy)."""
        self._stop: anyio.Event | None = None
        self._done: concurrent.futures.Future[Any] | None = None

    async def run(self, *, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
        """Open transport and session, report ready, hold them until :meth:`stop`, then close them."""
        mcp = _import_mcp()
        self._stop = anyio.Event()
        started = False
        try:
            # one scope around the whole connection (a narrower one around the context entries would break
            # the nesting of the client's task groups): its deadline bounds the start, then is lifted
            with anyio.CancelScope(deadline=anyio.current_time() + self._connect_timeout_s) as scope:
                async with contextlib.AsyncExitStack() as stack:
                    streams = await stack.enter_async_context(self._transport())
                    # v1's streamable HTTP client yields a third item (a session-id getter)
                    session = await stack.enter_async_context(mcp.ClientSession(streams[0], streams[1]))
                    await session.initialize()
                    self.tools = list((await session.list_tools()).tools)
                    self.session = session
                    scope.deadline = math.inf
                    started = True
                    task_status.started()
                    await self._stop.wait()
            if not started:
                raise TimeoutError(f"MCP server did not start within {self._connect_timeout_s:g} s")
        except Exception as e:
            self.dead = _why(e)
            if not started:
                raise
        finally:
            self.dead = self.dead or "closed"

    async def stop(self) -> None:
        """Ask the owner task to close the session (and stop the server process)."""
        if self._stop is not None:
            self._stop.set()


class MCPToolset:
    """The tools of an MCP server, for an :class:`~swarmgym.envs.AgentEnv`.

    Args:
        command: a stdio server's command line (a list, or a string split shell-style by nothing: a
            single executable); ``args`` are appended.
        url: a streamable-HTTP server's endpoint (e.g. ``http://127.0.0.1:8000/mcp``); exclusive with
            ``command``.
        args: arguments for ``command``.
        env: extra environment variables for the server process.
        cwd: working directory of the server process.
        scope: ``"env"`` shares one server (and session) among all episodes of this toolset;
            ``"episode"`` starts a fresh one per episode (isolated state, slower).
        timeout_s: per-call deadline; a call that takes longer is cancelled and answered with an error.
        timeouts: per-tool deadlines (server tool names) overriding ``timeout_s``.
        connect_timeout_s: deadline for starting the server and the MCP handshake.
        tools: only offer these tool names (default: all of the server's tools).
        prefix: prepended to every tool name the model sees (to avoid clashes between servers).
        headers: HTTP headers for a ``url`` server (e.g. authorization).
        sandbox: run a stdio server inside a sandbox of this backend (``"local"``, ``"docker"``) with no
            network; its stdio crosses the sandbox wall on a unix socket (see :mod:`.mcp_sandbox`). With
            ``scope="episode"`` every episode gets its own sandbox.
        sandbox_config: that sandbox's configuration (``binds`` makes the server's interpreter and code
            visible inside, e.g. ``{sys.prefix: sys.prefix}``).
        errlog: where a stdio server's stderr goes (default: this process's stderr).

    Raises:
        ConfigError: neither or both of ``command`` and ``url``, or an unknown ``scope``.

    Example:
        >>> ts = MCPToolset(["python", "my_server.py"], timeout_s=10)  # doctest: +SKIP
        >>> env = AgentEnv(tasks, toolsets=[ts])                         # doctest: +SKIP
    """

    def __init__(
        self,
        command: str | Sequence[str] | None = None,
        *,
        url: str | None = None,
        args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        scope: Literal["env", "episode"] = "env",
        timeout_s: float = 30.0,
        timeouts: Mapping[str, float] | None = None,
        connect_timeout_s: float = 30.0,
        tools: Sequence[str] | None = None,
        prefix: str = "",
        headers: Mapping[str, str] | None = None,
        errlog: Any = None,
        sandbox: str | None = None,
        sandbox_config: Any = None,
    ) -> None:
        if (command is None) == (url is None):
            raise ConfigError("MCPToolset needs exactly one of command= (a stdio server) or url= (streamable HTTP)")
        if scope not in ("env", "episode"):
            raise ConfigError(f"MCPToolset scope must be 'env' or 'episode', got {scope!r}")
        if sandbox is not None and command is None:
            raise ConfigError("MCPToolset sandbox= runs a stdio server (command=); a url= server runs elsewhere")
        if sandbox is not None:
            from .sandbox.factory import BACKENDS

            if sandbox not in BACKENDS:
                raise ConfigError(f"unknown sandbox backend {sandbox!r}; choose one of {', '.join(BACKENDS)}")
        if isinstance(command, str):
            command = [command]
        if command is not None and not command:
            raise ConfigError("MCPToolset command is empty")
        self.command = [*command, *args] if command is not None else None
        self.url = url
        self.env = dict(env or {})
        self.cwd = cwd
        self.scope = scope
        self.timeout_s = float(timeout_s)
        self.timeouts = {k: float(v) for k, v in (timeouts or {}).items()}
        self.connect_timeout_s = float(connect_timeout_s)
        self.only = set(tools) if tools is not None else None
        self.prefix = prefix
        self.headers = dict(headers or {})
        self.errlog = errlog
        self.sandbox = sandbox
        self.sandbox_config = sandbox_config
        self._specs: list[ToolSpec] | None = None
        self._lock = threading.Lock()
        # state shared with the finalizer (which must not reference self)
        self._res: dict[str, Any] = {"portal": None, "conns": set()}
        self._shared: _Connection | None = None
        self._finalizer = weakref.finalize(self, _shutdown, self._res)

    # ------------------------------------------------------------------ transport and portal

    def _transport(self) -> Callable[[], Any]:
        """A factory of the MCP client transport's async context manager (called in the portal thread)."""
        if self.sandbox is not None:
            from .mcp_sandbox import sandboxed_stdio_client

            return functools.partial(
                sandboxed_stdio_client, self.command, backend=self.sandbox, config=self.sandbox_config,
                env=self.env, cwd=self.cwd, errlog=self.errlog, connect_timeout_s=self.connect_timeout_s,
            )
        return functools.partial(_open_transport, self.command, self.url, self.env, self.cwd, self.headers, self.errlog)

    def _describe(self) -> str:
        return repr(self.url) if self.url is not None else repr(" ".join(self.command or []))

    def _portal(self) -> Any:
        with self._lock:
            if self._res["portal"] is None:
                self._res["portal"], self._res["thread"] = _start_portal()
            return self._res["portal"]

    async def _wait(self, fut: concurrent.futures.Future[Any]) -> Any:
        """Await a portal future from the caller's loop; cancelling the caller cancels the portal task."""
        try:
            try:
                asyncio.get_running_loop()
            except RuntimeError:  # trio
                return await anyio.to_thread.run_sync(fut.result, abandon_on_cancel=True)
            return await asyncio.wrap_future(fut)
        except BaseException:
            fut.cancel()
            raise

    async def _open(self) -> _Connection:
        """Start a server (stdio) or session (HTTP) in the portal thread; raises when it cannot."""
        portal = self._portal()
        conn = _Connection(self._transport(), self.connect_timeout_s)
        fut: concurrent.futures.Future[Any] = concurrent.futures.Future()

        def start() -> None:  # in a worker thread: portal.start_task blocks until the session is up
            try:
                portal.start_task(conn.run, name="mcp-connection")
                fut.set_result(None)
            except BaseException as e:  # noqa: BLE001 - handed to the awaiting episode
                fut.set_exception(e)

        threading.Thread(target=start, daemon=True, name="mcp-connect").start()
        self._res["conns"].add(conn)
        try:
            await self._wait(fut)
        except BaseException as e:
            self._res["conns"].discard(conn)
            # the connect may still finish after we gave up: stop it then
            fut.add_done_callback(lambda _f: self._close_sync(conn))
            if isinstance(e, Exception):
                raise MCPServerError(f"MCP server {self._describe()} could not be started: {_why(e)}") from e
            raise
        if self._specs is None:
            try:
                self._specs = self._to_specs(conn.tools)
            except BaseException:  # e.g. tools= names a tool the server lacks: do not keep the server
                await self._close(conn)
                raise
        return conn

    def _close_sync(self, conn: _Connection) -> None:
        portal = self._res["portal"]
        self._res["conns"].discard(conn)
        if portal is not None:
            with contextlib.suppress(Exception):
                portal.start_task_soon(conn.stop)

    async def _close(self, conn: _Connection) -> None:
        self._res["conns"].discard(conn)
        portal = self._res["portal"]
        if portal is None:
            return
        with anyio.CancelScope(shield=True):  # teardown must finish even when the episode was cancelled
            await self._wait(portal.start_task_soon(conn.stop))
            # wait until the owner task has left the client's context (the server process is gone)
            with anyio.move_on_after(10):
                while conn.dead is None:
                    await anyio.sleep(0.01)

    # ------------------------------------------------------------------ toolset protocol

    def _to_specs(self, tools: list[Any]) -> list[ToolSpec]:
        specs = []
        for t in tools:
            if self.only is not None and t.name not in self.only:
                continue
            schema = dict(_field(t, "input_schema", "inputSchema") or {})
            schema.setdefault("type", "object")
            schema.setdefault("properties", {})
            specs.append(ToolSpec(name=self.prefix + t.name, description=t.description or "", parameters=schema))
        if self.only is not None:
            missing = self.only - {t.name for t in tools}
            if missing:
                raise ConfigError(f"MCP server has no tool(s) {sorted(missing)}; it offers {[t.name for t in tools]}")
        return specs

    def specs(self) -> list[ToolSpec]:
        """The server's tools (connecting once to ask, the first time: ``AgentEnv`` needs them up front).

        With ``scope="env"`` that first connection is kept as the shared one.
        """
        if self._specs is None:
            conn = self._run_blocking(self._open())
            if self.scope == "env":
                self._shared = conn
            else:
                self._run_blocking(self._close(conn))
        assert self._specs is not None
        return list(self._specs)

    def _run_blocking(self, coro: Any) -> Any:
        """Run ``coro`` to completion from sync code (in a fresh thread when a loop is already running)."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return anyio.run(lambda: coro)
        with concurrent.futures.ThreadPoolExecutor(1) as ex:
            return ex.submit(anyio.run, lambda: coro).result()

    def timeout_for(self, name: str) -> float | None:
        # a little over our own deadline, so the env's cancel only fires when ours could not
        return self._deadline(self._server_name(name)) + 5.0

    def _server_name(self, name: str) -> str:
        return name[len(self.prefix) :] if self.prefix and name.startswith(self.prefix) else name

    def _deadline(self, server_name: str) -> float:
        return self.timeouts.get(server_name, self.timeout_s)

    def is_terminal(self, name: str) -> bool:
        return False

    async def setup(self, ctx: ToolContext) -> None:
        """Start this episode's server (``scope="episode"``) or make sure the shared one is alive."""
        if self.scope == "episode":
            ctx.state[self] = await self._open()
        else:
            await self._shared_conn()

    async def teardown(self, ctx: ToolContext) -> None:
        """Stop this episode's server (``scope="episode"``)."""
        conn = ctx.state.pop(self, None)
        if conn is not None:
            await self._close(conn)

    async def _shared_conn(self) -> _Connection:
        conn = self._shared
        if conn is None or conn.dead is not None:
            if conn is not None:
                await self._close(conn)
            self._shared = None
            conn = await self._open()
            other = self._shared
            if other is not None and other.dead is None:  # a concurrent episode restarted it first
                await self._close(conn)
                return other
            self._shared = conn
        return conn

    async def call(self, call: ToolCall, ctx: ToolContext) -> ToolResult:
        """Forward one call to the server; every failure is an error result."""
        name = self._server_name(call.name)
        specs = self._specs or []
        if not any(s.name == call.name for s in specs):
            names = ", ".join(s.name for s in specs) or "none"
            return _err(call, f"unknown tool '{call.name}'; available: {names}")
        if not isinstance(call.arguments, dict):
            return _err(call, f"arguments for tool '{call.name}' are not a JSON object: {str(call.arguments)[:200]!r}")
        conn = ctx.state.get(self) if self.scope == "episode" else None
        try:
            if conn is None:
                conn = await self._shared_conn() if self.scope == "env" else None
        except Exception as e:
            return _err(call, str(e) if isinstance(e, MCPServerError) else f"MCP server could not be started: {_why(e)}")
        if conn is None:
            return _err(call, f"MCP tool '{call.name}' called outside an episode (no setup ran)")
        if conn.dead is not None:
            return _err(call, f"MCP server for tool '{call.name}' is gone ({conn.dead}); it restarts next episode")
        portal = self._portal()
        try:
            res = await self._wait(portal.start_task_soon(self._call_in_portal, conn, name, call.arguments))
        except TimeoutError:
            secs = self._deadline(name)
            return _err(call, f"tool '{call.name}' timed out after {secs:g} s and was cancelled", timeout=True)
        except Exception as e:
            # the transport failed mid-call (server crashed or unreachable): this connection is unusable
            if conn.dead is None:
                conn.dead = _why(e)
            await self._close(conn)
            return _err(
                call,
                f"MCP server failed during tool '{call.name}' ({_why(e)}); "
                + ("it restarts next episode" if self.scope == "episode" else "it restarts on the next call"),
            )
        return _to_result(call, res)

    async def _call_in_portal(self, conn: _Connection, name: str, arguments: dict[str, Any]) -> Any:
        with anyio.fail_after(self._deadline(name)):
            return await conn.session.call_tool(name, arguments)

    def close(self) -> None:
        """Stop every server this toolset started and its event-loop thread (also done at exit)."""
        self._shared = None
        self._finalizer()

    def __enter__(self) -> MCPToolset:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _open_transport(
    command: list[str] | None,
    url: str | None,
    env: dict[str, str],
    cwd: str | None,
    headers: dict[str, str],
    errlog: Any,
) -> Any:
    if command is not None:
        from mcp.client.stdio import StdioServerParameters, stdio_client

        params = StdioServerParameters(command=command[0], args=command[1:], env=env or None, cwd=cwd)
        return stdio_client(params, errlog=errlog if errlog is not None else sys.stderr)
    try:  # mcp >= 1.25 / 2.x
        from mcp.client.streamable_http import streamable_http_client as http_client
    except ImportError:  # older 1.x
        from mcp.client.streamable_http import streamablehttp_client as http_client
    if headers:
        try:
            import httpx2 as httpx  # the HTTP client mcp 2.x uses
        except ImportError:
            import httpx
        return http_client(url, http_client=httpx.AsyncClient(headers=headers))
    return http_client(url)


def _start_portal() -> Any:
    """An event loop in a daemon thread (a pool thread, as ``start_blocking_portal`` uses, would be joined
    before atexit handlers run: a toolset never closed would hang interpreter exit)."""
    got: queue.Queue[Any] = queue.Queue()

    async def main() -> None:
        async with anyio.from_thread.BlockingPortal() as portal:
            got.put(portal)
            await portal.sleep_until_stopped()

    def run() -> None:
        try:
            anyio.run(main)
        except BaseException as e:  # noqa: BLE001 - reported to the starter
            got.put(e)

    thread = threading.Thread(target=run, daemon=True, name="swarmgym-mcp")
    thread.start()
    portal = got.get()
    if isinstance(portal, BaseException):
        raise portal
    return portal, thread


def _shutdown(res: dict[str, Any]) -> None:
    """Stop all connections (each stops its server), then the portal's loop."""
    portal = res["portal"]
    res["portal"] = None
    if portal is None:
        return
    for conn in list(res["conns"]):
        with contextlib.suppress(Exception):
            portal.call(conn.stop)
    res["conns"].clear()
    with contextlib.suppress(Exception):
        portal.call(portal.stop)
    # the loop ends once every connection task has left its client context (its server stopped)
    res["thread"].join(timeout=30)


def _field(obj: Any, *names: str) -> Any:
    """An attribute under its mcp 2.x (snake_case) or 1.x (camelCase) name."""
    for n in names:
        v = getattr(obj, n, None)
        if v is not None:
            return v
    return None


def _err(call: ToolCall, msg: str, **meta: Any) -> ToolResult:
    return ToolResult(call_id=call.id, content=msg, is_error=True, metadata=meta)


def _to_result(call: ToolCall, res: Any) -> ToolResult:
    """An MCP ``CallToolResult`` as a ToolResult (text joined; images as image parts; the rest as JSON)."""
    parts: list[ContentPart] = []
    for c in res.content or []:
        kind = getattr(c, "type", "")
        if kind == "text":
            parts.append(TextPart(text=c.text))
        elif kind == "image":
            parts.append(ImagePart(image_url={"url": f"data:{_field(c, 'mime_type', 'mimeType')};base64,{c.data}"}))
        else:
            parts.append(TextPart(text=c.model_dump_json(exclude_none=True)))
    if not parts and _field(res, "structured_content", "structuredContent") is not None:
        parts.append(TextPart(text=json.dumps(_field(res, "structured_content", "structuredContent"), ensure_ascii=False, default=str)))
    is_error = bool(_field(res, "is_error", "isError"))
    if all(isinstance(p, TextPart) for p in parts):
        content: str | list[ContentPart] = "\n".join(p.text for p in parts)  # type: ignore[union-attr]
        if is_error:
            content = f"tool '{call.name}' failed: {content}"
    else:
        content = parts
    return ToolResult(call_id=call.id, content=content, is_error=is_error)
