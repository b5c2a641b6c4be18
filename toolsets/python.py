"""``PythonToolset``: a stateful ``python`` tool (variables persist between calls, like a notebook).

The code runs in the episode's sandbox (``ctx.sandbox``, see :mod:`swarmgym.toolsets.sandbox`), never in
the host process.
"""

from __future__ import annotations

from typing import Any

from ..errors import SandboxError, ToolError
from ..wire import ToolResult
from .base import ToolContext, Toolset, tool

__all__ = ["PythonToolset", "format_python_result", "require_sandbox"]

_NO_SANDBOX = (
    "this tool needs a sandbox, but the env has none: create it with "
    "AgentEnv(..., sandbox=SandboxPool('local')) (or 'docker')"
)


def require_sandbox(ctx: ToolContext) -> Any:
    """The episode's sandbox, or a ToolError that says how to give the env one."""
    if ctx.sandbox is None:
        raise ToolError(_NO_SANDBOX)
    return ctx.sandbox


def format_python_result(r: Any) -> str:
    """Render a :class:`~swarmgym.toolsets.sandbox.PythonResult` the way a notebook shows a cell."""
    parts: list[str] = []
    if r.stdout:
        parts.append(r.stdout.rstrip("\n"))
    if r.stderr:
        parts.append("[stderr]\n" + r.stderr.rstrip("\n"))
    if r.error:
        parts.append(r.error)
    if r.value is not None:
        parts.append(f"Out: {r.value}")
    if r.timed_out:
        parts.append(f"[timed out after {r.duration_s:.1f} s]")
    if r.note and r.note != r.error:
        parts.append(f"[{r.note}]")
    return "\n".join(parts) if parts else "(no output)"


class PythonToolset(Toolset):
    """One tool, ``python``, running code in the sandbox's persistent namespace.

    Args:
        timeout: seconds a call may run before its process is killed (its variables are then lost).
    """

    def __init__(self, timeout: float = 30.0) -> None:
        super().__init__()
        self.timeout = timeout
        # The env cancels a tool call at its own deadline; give the sandbox's timeout room to fire first so
        # the model sees "timed out" rather than a cancelled call.
        self._tools["python"].timeout = timeout + 10.0

    @tool
    async def python(self, code: str, ctx: ToolContext) -> ToolResult:
        """Run Python code in a persistent session; variables, imports and functions stay defined between
        calls. The value of the last expression is shown, like in a notebook. Use print() for other output.

        Args:
            code: Python source to run.
        """
        sb = require_sandbox(ctx)
        try:
            r = await sb.run_python(code, timeout=self.timeout)
        except SandboxError as e:
            raise ToolError(f"the sandbox failed: {e}") from None
        return ToolResult(
            call_id="",
            content=format_python_result(r),
            is_error=not r.ok,
            metadata={"timed_out": r.timed_out, "duration_s": r.duration_s, "truncated": r.stdout_truncated},
        )
