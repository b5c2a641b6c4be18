"""Unsandboxed backend: the agent runs as a plain subprocess of the host. NOT A SANDBOX.

Model-written code run here can read, change and delete anything the host user can, and reach the
network. It exists for machines that can neither create namespaces nor run Docker, for trusted code, and
for debugging; it must be asked for by name (``backend="unsafe"``) and warns every time a pool or sandbox
is created. Limits are best-effort rlimits; a reset kills only the process groups the agent started.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import warnings
from typing import Any

import anyio

from ...errors import SandboxError
from ...wire import new_id
from . import reaper
from .base import SandboxConfig
from .client import AgentSandbox, bootstrap_code

__all__ = ["UnsandboxedSandbox", "UnsandboxedWarning", "start_unsafe", "warn_unsafe"]

log = logging.getLogger(__name__)


class UnsandboxedWarning(UserWarning):
    """Code is about to run without any isolation."""


WARNING_TEXT = (
    "swarmgym sandbox backend 'unsafe' runs model-written code WITHOUT ISOLATION as the host user "
    f"(uid {os.geteuid()}): it can read and delete your files and reach the network. Use the 'local' "
    "(bubblewrap) or 'docker' backend for untrusted code."
)


def warn_unsafe(stacklevel: int = 3) -> None:
    """Warn (warnings + log) that the unsafe backend is in use."""
    warnings.warn(WARNING_TEXT, UnsandboxedWarning, stacklevel=stacklevel)
    log.warning(WARNING_TEXT)


class UnsandboxedSandbox(AgentSandbox):
    """The agent as a plain subprocess with a private temporary workspace directory."""

    backend = "unsafe"

    def __init__(self, config: SandboxConfig, sandbox_id: str) -> None:
        super().__init__(config, sandbox_id)
        self.host_dir = ""
        self._proc: subprocess.Popen[bytes] | None = None

    def _process_alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def _kill_sync(self) -> None:
        reaper.untrack(self.id)
        p = self._proc
        if p is not None:
            if p.poll() is None:
                try:
                    p.kill()
                    p.wait(timeout=10)
                except (OSError, subprocess.TimeoutExpired):
                    pass
            for f in (p.stdin, p.stdout):
                if f is not None:
                    f.close()
        if self.host_dir:
            shutil.rmtree(self.host_dir, ignore_errors=True)
            try:
                os.rmdir(os.path.dirname(self.host_dir))
            except OSError:
                pass
            self.host_dir = ""

    async def _start(self) -> None:
        self.host_dir = os.path.join(reaper.sandbox_root(), reaper.owner_tag(), self.id)
        ws = os.path.join(self.host_dir, "workspace")
        os.makedirs(ws)
        self.workspace = ws
        cfg = self.config
        agent_cfg: dict[str, Any] = {
            "workspace": ws,
            "output_limit": cfg.output_limit,
            "pidns": False,  # never kill(-1) outside a pid namespace: it would hit every process of the user
            "env": {**cfg.env, "HOME": ws},
            "rlimits": self._rlimits(),
        }
        python = cfg.python if shutil.which(cfg.python) else sys.executable
        reaper.track(self.id, self._kill_sync)
        try:
            self._proc = subprocess.Popen(
                [python, "-S", "-u", "-c", bootstrap_code()],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                cwd=ws,
                env={**cfg.env, "HOME": ws},
                start_new_session=True,
            )
            assert self._proc.stdin and self._proc.stdout
            await self._handshake(self._proc.stdout.fileno(), self._proc.stdin.fileno(), agent_cfg)
        except BaseException as e:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(self._kill_sync)
            if isinstance(e, Exception) and not isinstance(e, SandboxError):
                raise SandboxError(f"unsafe sandbox failed to start: {type(e).__name__}: {e}") from e
            raise


async def start_unsafe(config: SandboxConfig, *, warn: bool = True) -> UnsandboxedSandbox:
    """Start one unsandboxed agent (warns unless the caller already did)."""
    if warn:
        warn_unsafe()
    sb = UnsandboxedSandbox(config, new_id("sb-"))
    await sb._start()
    return sb
