"""Host side of the agent protocol, shared by every backend.

:class:`AgentSandbox` implements the :class:`~.base.Sandbox` protocol over two file descriptors (the agent's
stdin and stdout, or one docker attach socket). Backends start the agent and hand over the descriptors.

I/O is done on raw non-blocking descriptors with ``anyio.wait_readable``/``wait_writable`` rather than
through an ``anyio.abc.Process``: those are bound to the event loop that created them, and a sandbox in a
pool may be used from the loop of a Gym portal thread first and from the caller's loop later. No background
task is needed either: whichever caller is waiting reads responses for everyone (leader/follower) and wakes
the others.

The host never trusts what it reads: a line longer than :data:`MAX_LINE` or one that is not JSON marks
the sandbox broken (code running in the sandbox could write to the agent's stdout).
"""

from __future__ import annotations

import base64
import itertools
import json
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio

from ...errors import SandboxError
from .base import ExecResult, PythonResult, SandboxConfig, SandboxState

__all__ = ["AgentSandbox", "agent_source", "MAX_LINE"]

log = logging.getLogger(__name__)

MAX_LINE = 64 * 1024 * 1024
HOST_GRACE_S = 10.0
"""Extra time the host waits beyond a call's timeout before it declares the agent hung."""

_AGENT_SOURCE: bytes | None = None


def agent_source() -> bytes:
    """The agent's source (read once from agent.py, which is shipped as package data)."""
    global _AGENT_SOURCE
    if _AGENT_SOURCE is None:
        _AGENT_SOURCE = (Path(__file__).with_name("agent.py")).read_bytes()
    return _AGENT_SOURCE


def bootstrap_payload(cfg: dict[str, Any]) -> bytes:
    """``<length>\\n<source>`` for the agent's bootstrap one-liner (see ``agent.BOOTSTRAP``)."""
    src = agent_source() + b"\nimport json as _j\nmain(_j.loads(" + repr(json.dumps(cfg)).encode() + b"))\n"
    return str(len(src)).encode() + b"\n" + src


def bootstrap_code() -> str:
    from . import agent

    return agent.BOOTSTRAP


@dataclass(eq=False)
class _Slot:
    event: anyio.Event | None = None
    result: dict[str, Any] | None = None


class AgentSandbox:
    """A sandbox whose agent is already running; backends subclass it and implement ``_kill_sync``.

    Use :func:`swarmgym.toolsets.sandbox.create_sandbox` rather than constructing one.
    """

    backend = "abstract"

    def __init__(self, config: SandboxConfig, sandbox_id: str) -> None:
        self.config = config
        self.id = sandbox_id
        self.workspace = config.workspace
        self._rfd = -1
        self._wfd = -1
        self._rbuf = bytearray()
        self._wbuf = bytearray()
        self._writing = False
        self._reading = False
        self._slots: dict[int, _Slot] = {}
        self._ids = itertools.count(1)
        self._dead: str | None = None
        self._closed = False
        self.agent_pid: int | None = None
        self.pristine_hash: str | None = None
        self.uses = 0

    # ------------------------------------------------------------------ backend hooks

    def _kill_sync(self) -> None:
        """Kill the agent and remove host resources, synchronously (also used at exit)."""
        raise NotImplementedError

    async def _aclose_backend(self) -> None:
        await anyio.to_thread.run_sync(self._kill_sync)

    def _process_alive(self) -> bool:
        return True

    # ------------------------------------------------------------------ lifecycle

    def _rlimits(self) -> dict[str, int]:
        """Per-process limits the agent applies to everything it runs (the local backend adds RLIMIT_NPROC;
        docker bounds processes with its pids cgroup instead)."""
        lim = self.config.limits
        return {
            "RLIMIT_AS": lim.memory_mb * 1024 * 1024,
            "RLIMIT_CPU": lim.cpu_time_s,
            "RLIMIT_FSIZE": lim.file_size_mb * 1024 * 1024,
        }

    def _agent_config(self) -> dict[str, Any]:
        """The agent's handshake config for a backend with its own pid namespace and private /tmp."""
        return {
            "workspace": self.config.workspace,
            "output_limit": self.config.output_limit,
            "pidns": True,
            "env": dict(self.config.env),
            "scratch_dirs": ["/tmp"],
            "rlimits": self._rlimits(),
        }

    async def _handshake(self, rfd: int, wfd: int, cfg: dict[str, Any]) -> None:
        """Send the agent's source and wait for its ready line."""
        self._rfd, self._wfd = rfd, wfd
        os.set_blocking(rfd, False)
        os.set_blocking(wfd, False)
        self._wbuf += bootstrap_payload(cfg)
        with anyio.fail_after(self.config.start_timeout_s):
            await self._flush()
            line = await self._read_line()
        if not line.get("ready"):
            raise SandboxError(f"sandbox agent did not start: {line}")
        self.agent_pid = line.get("pid")
        if self.config.files:
            files = {
                k: base64.b64encode(v.encode() if isinstance(v, str) else v).decode() for k, v in self.config.files.items()
            }
            r = await self._request({"op": "template", "files": files}, self.config.start_timeout_s)
            self.pristine_hash = r["hash"]
        else:
            self.pristine_hash = (await self.state()).workspace_hash

    @property
    def alive(self) -> bool:
        return self._dead is None and not self._closed and self._process_alive()

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._mark_dead("sandbox closed")
        with anyio.CancelScope(shield=True):
            await self._aclose_backend()

    async def __aenter__(self) -> AgentSandbox:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def __repr__(self) -> str:
        state = "alive" if self.alive else f"dead ({self._dead})"
        return f"<{type(self).__name__} {self.id} {state}>"

    # ------------------------------------------------------------------ I/O

    def _mark_dead(self, reason: str) -> None:
        if self._dead is None:
            self._dead = reason
        for slot in self._slots.values():
            if slot.event is not None:
                slot.event.set()

    async def _flush(self) -> None:
        if self._writing:
            return
        self._writing = True
        try:
            while self._wbuf:
                try:
                    n = os.write(self._wfd, self._wbuf)
                except BlockingIOError:
                    await anyio.wait_writable(self._wfd)
                    continue
                except OSError as e:
                    self._mark_dead(f"agent's stdin closed ({e.strerror})")
                    raise SandboxError(f"sandbox {self.id}: agent is gone ({e.strerror})") from None
                del self._wbuf[:n]
        finally:
            self._writing = False

    async def _read_line(self) -> dict[str, Any]:
        while True:
            i = self._rbuf.find(b"\n")
            if i >= 0:
                line = bytes(self._rbuf[:i])
                del self._rbuf[: i + 1]
                try:
                    msg = json.loads(line)
                except ValueError:
                    self._mark_dead("agent wrote a line that is not JSON")
                    raise SandboxError(
                        f"sandbox {self.id}: the agent's output is corrupt (did code in the sandbox write to the "
                        f"agent's stdout?): {line[:200]!r}"
                    ) from None
                if not isinstance(msg, dict):
                    self._mark_dead("agent wrote a non-object")
                    raise SandboxError(f"sandbox {self.id}: unexpected agent output {line[:200]!r}")
                return msg
            if len(self._rbuf) > MAX_LINE:
                self._mark_dead("agent line too long")
                raise SandboxError(f"sandbox {self.id}: agent sent a line over {MAX_LINE} bytes")
            try:
                data = self._read_raw()
            except BlockingIOError:
                await anyio.wait_readable(self._rfd)
                continue
            except OSError as e:
                data = b""
                log.debug("read from agent failed: %s", e)
            if not data:
                self._mark_dead("agent exited")
                raise SandboxError(
                    f"sandbox {self.id}: the agent exited (killed, out of memory, or the sandbox was closed)"
                )
            self._rbuf += data

    def _read_raw(self) -> bytes:
        """Bytes of the agent's stdout (b"" at EOF; BlockingIOError when none are ready)."""
        return os.read(self._rfd, 1 << 20)

    def _dispatch(self, msg: dict[str, Any]) -> None:
        slot = self._slots.get(msg.get("id"))  # type: ignore[arg-type]
        if slot is None:
            log.debug("sandbox %s: response for unknown request %s", self.id, msg.get("id"))
            return
        slot.result = msg
        if slot.event is not None:
            slot.event.set()

    async def _request(self, msg: dict[str, Any], timeout: float | None) -> dict[str, Any]:
        """Send one request and wait for its response (``timeout`` is the host's hard deadline)."""
        if self._dead is not None:
            raise SandboxError(f"sandbox {self.id} is not usable: {self._dead}")
        rid = next(self._ids)
        msg["id"] = rid
        slot = _Slot()
        self._slots[rid] = slot
        self._wbuf += json.dumps(msg, separators=(",", ":")).encode() + b"\n"
        deadline = math.inf if timeout is None else timeout
        try:
            with anyio.fail_after(deadline):
                await self._flush()
                while slot.result is None:
                    if self._dead is not None:
                        raise SandboxError(f"sandbox {self.id} is not usable: {self._dead}")
                    if self._wbuf and not self._writing:
                        await self._flush()
                    if not self._reading:
                        self._reading = True
                        try:
                            while slot.result is None:
                                self._dispatch(await self._read_line())
                        finally:
                            self._reading = False
                            self._wake_next_reader(slot)
                    else:
                        slot.event = anyio.Event()
                        await slot.event.wait()
                        slot.event = None
        except TimeoutError:
            self._mark_dead("agent did not answer in time")
            raise SandboxError(
                f"sandbox {self.id}: the agent did not answer a {msg.get('op')!r} request within {deadline:g} s; "
                "the sandbox is broken and will be discarded"
            ) from None
        finally:
            self._slots.pop(rid, None)
        self.uses += 1
        res = slot.result
        if not res.get("ok", False):
            raise _AgentError(res.get("error", "unknown error"))
        return res

    def _wake_next_reader(self, me: _Slot) -> None:
        for s in self._slots.values():
            if s is not me and s.result is None and s.event is not None:
                s.event.set()
                return

    # ------------------------------------------------------------------ the Sandbox API

    def _timeout(self, timeout: float | None) -> float:
        t = self.config.default_timeout_s if timeout is None else float(timeout)
        if not t > 0:
            raise ValueError(f"timeout must be > 0 seconds, got {timeout!r}")
        return t

    async def exec(
        self, cmd: str, timeout: float | None = None, *, cwd: str | None = None, env: dict[str, str] | None = None
    ) -> ExecResult:
        t = self._timeout(timeout)
        req: dict[str, Any] = {"op": "exec", "cmd": cmd, "timeout": t}
        if cwd:
            req["cwd"] = cwd
        if env:
            req["env"] = env
        try:
            r = await self._request(req, t + HOST_GRACE_S)
        except _AgentError as e:
            return ExecResult(exit_code=None, stderr=str(e), note=str(e))
        return ExecResult(**{k: r[k] for k in _EXEC_KEYS if k in r})

    async def run_python(self, code: str, timeout: float | None = None) -> PythonResult:
        t = self._timeout(timeout)
        try:
            r = await self._request({"op": "python", "code": code, "timeout": t}, t + HOST_GRACE_S)
        except _AgentError as e:
            return PythonResult(error=str(e))
        return PythonResult(**{k: r[k] for k in _PY_KEYS if k in r})

    async def read_file(self, path: str, max_bytes: int | None = None) -> bytes:
        """Read a file.

        Raises:
            FileNotFoundError, IsADirectoryError, PermissionError: as the sandbox reported them.
        """
        req: dict[str, Any] = {"op": "read", "path": path}
        if max_bytes is not None:
            req["max_bytes"] = max_bytes
        try:
            r = await self._request(req, self.config.default_timeout_s + HOST_GRACE_S)
        except _AgentError as e:
            raise _os_error(str(e), path) from None
        return base64.b64decode(r["data"])

    async def write_file(self, path: str, data: str | bytes, *, mode: int | None = None) -> None:
        raw = data.encode() if isinstance(data, str) else bytes(data)
        req: dict[str, Any] = {"op": "write", "path": path, "data": base64.b64encode(raw).decode()}
        if mode is not None:
            req["mode"] = mode
        try:
            await self._request(req, self.config.default_timeout_s + HOST_GRACE_S)
        except _AgentError as e:
            raise _os_error(str(e), path) from None

    async def stat(self, path: str) -> dict[str, Any]:
        """``{"exists": bool, "is_dir": bool, "size": int, "realpath": str}`` of a path in the sandbox."""
        r = await self._request({"op": "stat", "path": path}, self.config.default_timeout_s + HOST_GRACE_S)
        r.pop("id", None)
        r.pop("ok", None)
        return r

    async def list_dir(self, path: str = "", depth: int = 2, limit: int = 1000) -> list[str]:
        """Entries under a directory, relative to it (directories end with ``/``; hidden ones skipped)."""
        try:
            r = await self._request(
                {"op": "ls", "path": path, "depth": depth, "limit": limit}, self.config.default_timeout_s + HOST_GRACE_S
            )
        except _AgentError as e:
            raise _os_error(str(e), path) from None
        return list(r["entries"])

    async def state(self) -> SandboxState:
        """The current fingerprint (workspace hash, stray processes)."""
        r = await self._request({"op": "state"}, self.config.default_timeout_s + HOST_GRACE_S)
        return SandboxState(workspace_hash=r["hash"], strays=r.get("strays", []))

    async def ping(self, timeout: float = 5.0) -> bool:
        """True when the agent answers within ``timeout``."""
        try:
            await self._request({"op": "ping"}, timeout)
            return True
        except SandboxError:
            return False

    async def kill_processes(self) -> int:
        """Kill every process in the sandbox but the agent, keeping files (e.g. before a judge runs hidden
        tests, so nothing the model started can interfere). Returns how many survived (0 normally)."""
        r = await self._request({"op": "kill"}, 60.0)
        return len(r.get("strays", []))

    async def reset(self) -> SandboxState:
        """Kill every process but the agent, restore the workspace template and clear /tmp.

        Returns the state after the reset; :meth:`verify_reset` checks it.
        """
        r = await self._request({"op": "reset"}, 60.0)
        return SandboxState(workspace_hash=r["hash"], strays=r.get("strays", []), errors=r.get("errors", []))

    def verify(self, state: SandboxState) -> str | None:
        """Why ``state`` is not pristine (None when it is)."""
        if state.errors:
            return "reset errors: " + "; ".join(state.errors)
        if state.strays:
            procs = ", ".join(f"{p.get('pid')}:{p.get('cmd', '')[:40]}" for p in state.strays[:5])
            return f"{len(state.strays)} stray process(es) survived the reset: {procs}"
        if self.pristine_hash is not None and state.workspace_hash != self.pristine_hash:
            return "workspace differs from its template after the reset"
        return None


class _AgentError(Exception):
    """The agent answered ``ok: false`` (a bad path, a command that could not start …)."""


_EXEC_KEYS = tuple(ExecResult.model_fields)
_PY_KEYS = tuple(PythonResult.model_fields)


def _os_error(msg: str, path: str) -> OSError:
    kind, _, text = msg.partition(": ")
    cls: type[OSError] = {
        "FileNotFoundError": FileNotFoundError,
        "IsADirectoryError": IsADirectoryError,
        "PermissionError": PermissionError,
        "NotADirectoryError": NotADirectoryError,
    }.get(kind, OSError)
    return cls(f"{path}: {text or msg}")
