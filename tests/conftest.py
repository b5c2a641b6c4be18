"""Shared test fixtures (the conftest lives here, not at the repo root, which is the package itself)."""

from __future__ import annotations

import pytest


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
