"""Toolsets: the protocol and ``@tool`` (base), the calculator, sandboxed python/shell/file-edit/search
tools and the swarm tools. Names load lazily on first access."""

from __future__ import annotations

import importlib
from typing import Any

from .base import FunctionTool, FunctionToolset, ToolContext, Toolset, ToolsetProtocol, tool

_LAZY: dict[str, str] = {
    "CalculatorToolset": ".calculator",
    "PythonToolset": ".python",
    "ShellToolset": ".shell",
    "FileEditToolset": ".files",
    "SearchToolset": ".search",
    "SearchIndex": ".search",
    "SwarmToolset": ".swarm",
}

__all__ = sorted(["FunctionTool", "FunctionToolset", "ToolContext", "Toolset", "ToolsetProtocol", "tool", *_LAZY])


def __getattr__(name: str) -> Any:
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module 'swarmgym.toolsets' has no attribute {name!r}")
    value = getattr(importlib.import_module(mod, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
