"""Toolsets: the protocol and ``@tool`` (base), the calculator, sandboxed python/shell/file-edit/search
tools, MCP servers' tools and the swarm tools. Names load lazily on first access."""

from __future__ import annotations

from .._lazy import lazy_exports
from .base import FunctionTool, FunctionToolset, ToolContext, Toolset, ToolsetProtocol, tool

_LAZY: dict[str, str] = {
    "CalculatorToolset": ".calculator",
    "PythonToolset": ".python",
    "ShellToolset": ".shell",
    "FileEditToolset": ".files",
    "SearchToolset": ".search",
    "SearchIndex": ".search",
    "MCPToolset": ".mcp",
    "SwarmToolset": ".swarm",
    "StepLimits": ".swarm",
    "STEP_LIMIT_PRESETS": ".swarm",
    "step_limits": ".swarm",
    "StepCounts": ".swarm_metrics",
    "critical_steps": ".swarm_metrics",
    "tree_steps": ".swarm_metrics",
    "trajectory_steps": ".swarm_metrics",
}

_EAGER = ("FunctionTool", "FunctionToolset", "ToolContext", "Toolset", "ToolsetProtocol", "tool")
__all__ = sorted([*_EAGER, *_LAZY])
__getattr__, __dir__ = lazy_exports(__name__, _LAZY, eager=_EAGER)
