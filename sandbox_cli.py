"""Functions behind ``swarmgym sandbox {build,ls,gc}`` (``cli.py`` parses arguments and prints).

Kept out of ``cli.py`` so the command stays a thin shell and these stay callable from Python and CI.
"""

from __future__ import annotations

from typing import Any

__all__ = ["build", "ls", "gc"]


def build(name: str | None = None, force: bool = False, mirror: str | None = None) -> str:
    """Build the default docker sandbox image (skipped when it exists); returns its tag.

    Raises:
        swarmgym.errors.SandboxError: docker or debootstrap is missing, or the build failed.
    """
    from .toolsets.sandbox.image import build as _build

    return _build(name, force, mirror=mirror)


def ls() -> list[dict[str, Any]]:
    """Sandbox images and containers: dicts with ``kind`` ("image" | "container") and, for images,
    ``tag``, ``id``, ``size_mb``, ``created``; for containers ``id``, ``name``, ``owner``, ``alive``,
    ``status``, ``run``. Empty when Docker is unreachable (local sandboxes leave no images)."""
    from .errors import SandboxError

    rows: list[dict[str, Any]] = []
    try:
        from .toolsets.sandbox.docker import list_containers
        from .toolsets.sandbox.image import ls as _ls

        rows += [{"kind": "image", **r} for r in _ls()]
        rows += [{"kind": "container", **r} for r in list_containers()]
    except SandboxError:
        pass
    return rows


def gc() -> int:
    """Remove sandboxes (containers, local workspaces, cgroups) left by dead owners; returns how many."""
    from .toolsets.sandbox.reaper import gc as _gc

    return _gc()
