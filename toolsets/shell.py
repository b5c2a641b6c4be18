"""``ShellToolset``: a ``bash`` tool running commands in the episode's sandbox."""

from __future__ import annotations

from typing import Any

from ..errors import SandboxError, ToolError
from ..wire import ToolResult
from .base import ToolContext, Toolset, tool
from .python import require_sandbox

__all__ = ["ShellToolset", "format_exec_result"]


def format_exec_result(r: Any, timeout: float | None = None) -> str:
    """Render an :class:`~swarmgym.toolsets.sandbox.ExecResult` as a terminal would show it, plus status."""
    parts = [r.output.rstrip("\n")] if r.output else []
    if r.timed_out:
        t = f" after {timeout:g} s" if timeout else ""
        parts.append(f"[timed out{t}; the command and its child processes were killed]")
    elif r.exit_code not in (0, None):
        extra = f": {r.note}" if r.note else ""
        parts.append(f"[exit code {r.exit_code}{extra}]")
    elif r.note:
        parts.append(f"[{r.note}]")
    return "\n".join(parts) if parts else "(no output)"


class ShellToolset(Toolset):
    """One tool, ``bash``: each call runs in a fresh bash in the workspace (files persist, shell state
    such as ``cd`` or variables does not).

    Args:
        timeout: seconds a command may run before its whole process group is killed.
    """

    def __init__(self, timeout: float = 30.0) -> None:
        super().__init__()
        self.timeout = timeout
        self._tools["bash"].timeout = timeout + 10.0

    @tool
    async def bash(self, command: str, ctx: ToolContext) -> ToolResult:
        """Run a bash command in the sandbox's workspace and return its output and exit code.

        Args:
            command: the command line (bash syntax; pipes and && work).
        """
        sb = require_sandbox(ctx)
        try:
            r = await sb.exec(command, timeout=self.timeout)
        except SandboxError as e:
            raise ToolError(f"the sandbox failed: {e}") from None
        return ToolResult(
            call_id="",
            content=format_exec_result(r, self.timeout),
            is_error=r.exit_code != 0,
            metadata={"exit_code": r.exit_code, "timed_out": r.timed_out, "duration_s": r.duration_s},
        )
