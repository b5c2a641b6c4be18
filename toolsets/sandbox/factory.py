"""``create_sandbox``: start one sandbox of a named backend (backends are imported on first use)."""

from __future__ import annotations

from typing import Any

from ...errors import ConfigError
from .base import SandboxConfig
from .client import AgentSandbox

__all__ = ["create_sandbox", "BACKENDS"]

BACKENDS = ("local", "docker", "unsafe")


def make_config(config: SandboxConfig | None = None, **overrides: Any) -> SandboxConfig:
    """``config`` with ``overrides`` applied (field names of :class:`SandboxConfig`)."""
    base = config or SandboxConfig()
    if not overrides:
        return base
    unknown = set(overrides) - set(SandboxConfig.model_fields)
    if unknown:
        raise ConfigError(
            f"unknown sandbox option(s) {sorted(unknown)}; valid: {sorted(SandboxConfig.model_fields)}"
        )
    return SandboxConfig.model_validate({**base.model_dump(), **overrides})


async def create_sandbox(
    backend: str = "local", config: SandboxConfig | None = None, *, _warn: bool = True, **overrides: Any
) -> AgentSandbox:
    """Start a sandbox and return it once its agent answers; close it with ``await sb.close()`` or use
    ``async with await create_sandbox() as sb``.

    Args:
        backend: ``"local"`` (bubblewrap, the default), ``"docker"``, or ``"unsafe"`` (no isolation: opt-in,
            warns).
        config: the sandbox configuration (default: :class:`SandboxConfig` defaults).
        **overrides: fields of :class:`SandboxConfig` to change, e.g. ``network=True``.

    Raises:
        ConfigError: unknown backend or option.
        SandboxError: the sandbox could not start (the message says why and what to do).
    """
    cfg = make_config(config, **overrides)
    if backend == "local":
        from .local import start_local

        return await start_local(cfg)
    if backend == "docker":
        from .docker import start_docker

        return await start_docker(cfg)
    if backend == "unsafe":
        from .unsafe import start_unsafe

        return await start_unsafe(cfg, warn=_warn)
    raise ConfigError(f"unknown sandbox backend {backend!r}; choose one of {', '.join(BACKENDS)}")
