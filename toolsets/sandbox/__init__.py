"""Sandboxes for model-written code: a protocol, three backends, a warm pool, image build and gc.

Backends: ``local`` (bubblewrap, the default), ``docker`` (hardened containers; extra ``[docker]``) and
``unsafe`` (a plain subprocess; explicit opt-in, warns). Names are loaded on first use so importing this
package costs nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..._lazy import lazy_exports

__all__ = [
    "Sandbox",
    "ExecResult",
    "PythonResult",
    "SandboxState",
    "SandboxConfig",
    "SandboxLimits",
    "SandboxPool",
    "PoolStats",
    "create_sandbox",
    "AgentSandbox",
    "gc",
]
_LAZY = {
    "Sandbox": ".base",
    "ExecResult": ".base",
    "PythonResult": ".base",
    "SandboxState": ".base",
    "SandboxConfig": ".base",
    "SandboxLimits": ".base",
    "SandboxPool": ".pool",
    "PoolStats": ".pool",
    "create_sandbox": ".factory",
    "AgentSandbox": ".client",
    "gc": ".reaper",
}
__getattr__, __dir__ = lazy_exports(__name__, _LAZY)

if TYPE_CHECKING:
    from .base import ExecResult, PythonResult, Sandbox, SandboxConfig, SandboxLimits, SandboxState
    from .client import AgentSandbox
    from .factory import create_sandbox
    from .pool import PoolStats, SandboxPool
    from .reaper import gc
