"""Skip a test whose real counterpart is absent here, or fail it where CI promises every counterpart.

CI sets ``SWARMGYM_REQUIRE_REAL=1`` (and ``SWARMGYM_REQUIRE_DOCKER=1``): a test that needs bubblewrap, a
model, a compiled server … must then fail instead of skipping, so a missing installer cannot turn a red
test into a quiet skip. Elsewhere the skip says what is missing.
"""

from __future__ import annotations

import os
from typing import NoReturn

__all__ = ["docker_problem", "missing", "require_sandbox", "required"]


def required(docker: bool = False) -> bool:
    """Whether this run promises every real counterpart (``docker=True``: the Docker engine too)."""
    if os.environ.get("SWARMGYM_REQUIRE_REAL") == "1":
        return True
    return docker and os.environ.get("SWARMGYM_REQUIRE_DOCKER") == "1"


def missing(what: str, *, docker: bool = False) -> NoReturn:
    """Skip the calling test because ``what`` is unavailable (fail it when :func:`required`)."""
    import pytest

    if required(docker):
        env = "SWARMGYM_REQUIRE_REAL=1" if os.environ.get("SWARMGYM_REQUIRE_REAL") == "1" else "SWARMGYM_REQUIRE_DOCKER=1"
        pytest.fail(f"{env} but {what}", pytrace=False)
    pytest.skip(what)


def docker_problem() -> str | None:
    """Why docker sandboxes cannot run here (None when they can)."""
    from ..errors import SandboxError

    try:
        from ..toolsets.sandbox.docker import docker_client
        from ..toolsets.sandbox.image import default_image

        docker_client().images.get(default_image())
    except SandboxError as e:
        return str(e)
    except Exception as e:  # ImageNotFound and friends
        return f"{type(e).__name__}: {e} (build it: python -m swarmgym.toolsets.sandbox.image build)"
    return None


def require_sandbox(backend: str) -> None:
    """Skip the calling test when sandboxes of ``backend`` (``"local"`` or ``"docker"``) cannot run here;
    fail it instead under ``SWARMGYM_REQUIRE_DOCKER=1`` (docker) or ``CI`` / ``SWARMGYM_REQUIRE_REAL=1``
    (bubblewrap)."""
    import pytest

    if backend == "docker":
        problem = docker_problem()
        if problem:
            if os.environ.get("SWARMGYM_REQUIRE_DOCKER") == "1":
                pytest.fail(f"SWARMGYM_REQUIRE_DOCKER=1 but docker sandboxes are unavailable: {problem}")
            pytest.skip(f"docker sandboxes unavailable: {problem}")
    elif backend == "local":
        from ..errors import SandboxError
        from ..toolsets.sandbox.local import check_bwrap

        try:
            check_bwrap()
        except SandboxError as e:
            if os.environ.get("CI") or os.environ.get("SWARMGYM_REQUIRE_REAL") == "1":
                pytest.fail(f"bubblewrap must work in CI: {e}")
            pytest.skip(str(e))

