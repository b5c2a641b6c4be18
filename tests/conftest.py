"""Shared test fixtures (the conftest lives here, not at the repo root, which is the package itself), and the
rule that a skip in CI is a failure unless ``tests/allowed_skips.txt`` lists it with a reason."""

from __future__ import annotations

import fnmatch
import os
from pathlib import Path

import pytest

ALLOWED_SKIPS = Path(__file__).with_name("allowed_skips.txt")
_skips: list[tuple[str, str]] = []


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _allowed() -> list[tuple[str, str]]:
    """``(node-id glob, reason)`` per line of ``allowed_skips.txt`` (``GLOB  # reason``; a reason is required)."""
    out = []
    for n, line in enumerate(ALLOWED_SKIPS.read_text().splitlines(), 1) if ALLOWED_SKIPS.exists() else ():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        pattern, _, reason = line.partition("#")
        if not reason.strip():
            raise pytest.UsageError(f"{ALLOWED_SKIPS.name}:{n}: say why {pattern.strip()!r} may skip (GLOB  # reason)")
        out.append((pattern.strip(), reason.strip()))
    return out


def _reason(report: pytest.CollectReport | pytest.TestReport) -> str:
    r = report.longrepr
    return str(r[2] if isinstance(r, tuple) else r).removeprefix("Skipped: ")


def pytest_configure(config: pytest.Config) -> None:
    if os.environ.get("SWARMGYM_NO_UNLISTED_SKIPS") == "1":
        _allowed()  # a malformed list is a usage error before any test runs


def pytest_collectreport(report: pytest.CollectReport) -> None:
    if report.skipped:
        _skips.append((report.nodeid, _reason(report)))


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped and not hasattr(report, "wasxfail"):
        _skips.append((report.nodeid, _reason(report)))


def _unlisted() -> list[tuple[str, str]]:
    if os.environ.get("SWARMGYM_NO_UNLISTED_SKIPS") != "1":
        return []
    allowed = [p for p, _ in _allowed()]
    return [(node, why) for node, why in _skips if not any(fnmatch.fnmatchcase(node, p) for p in allowed)]


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _unlisted() and exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter) -> None:  # type: ignore[no-untyped-def]
    unlisted = _unlisted()
    if unlisted:
        terminalreporter.section("skips not in tests/allowed_skips.txt (SWARMGYM_NO_UNLISTED_SKIPS=1: a failure)")
        for node, why in unlisted:
            terminalreporter.line(f"UNLISTED SKIP {node}: {why}")
