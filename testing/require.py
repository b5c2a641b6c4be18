"""Skip a test whose real counterpart is absent here, or fail it where CI promises every counterpart.

CI sets ``SWARMGYM_REQUIRE_REAL=1`` (and ``SWARMGYM_REQUIRE_DOCKER=1``): a test that needs bubblewrap, a
model, a compiled server … must then fail instead of skipping, so a missing installer cannot turn a red
test into a quiet skip. Elsewhere the skip says what is missing.
"""

from __future__ import annotations

import os
from typing import NoReturn

__all__ = ["missing", "required"]


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
