"""Fixtures for the viewer tests: a real `swarmgym view` process, and Chromium driven by Playwright."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

class ViewerProcess:
    def __init__(self, path: Path, *extra: str) -> None:
        self.err = path.parent / f"viewer-{id(self)}.stderr"
        with open(self.err, "w") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-P", "-m", "swarmgym.cli", "view", str(path), *extra],
                stdout=subprocess.PIPE, stderr=err, text=True, cwd=path.parent,
            )
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        if not line.startswith("swarmgym view: http://"):
            self.close()
            raise RuntimeError(f"viewer did not start: {line!r} {self.err.read_text()}")
        self.url = line.split()[2]

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if self.proc.stdout:
            self.proc.stdout.close()


@pytest.fixture
def viewer() -> Iterator[Any]:
    started: list[ViewerProcess] = []

    def start(path: Path, *extra: str) -> ViewerProcess:
        v = ViewerProcess(path, *extra)
        started.append(v)
        return v

    yield start
    for v in started:
        v.close()


def _need(what: str) -> None:
    if os.environ.get("SWARMGYM_REQUIRE_REAL") == "1":
        pytest.fail(f"{what} (SWARMGYM_REQUIRE_REAL=1; run .ci/install-browser.sh)")
    pytest.skip(f"{what}; run .ci/install-browser.sh")


@pytest.fixture
def require() -> Any:
    """``require(module, what)``: import an optional module, or skip (fail under SWARMGYM_REQUIRE_REAL=1)."""
    import importlib

    def need_module(name: str, what: str) -> Any:
        try:
            return importlib.import_module(name)
        except ImportError:
            _need(f"{what}: {name} is not installed")

    return need_module


def chromium_path() -> str | None:
    return os.environ.get("SWARMGYM_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's Chromium, headless, driven by Playwright (which cannot download its own browser here).

    Module scope: Playwright's sync API keeps an event loop running in this thread while it is open, and
    tests elsewhere start their own loops."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _need("playwright is not installed")
    exe = chromium_path()
    if exe is None:
        _need("no chromium binary (apt-get install chromium)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=exe, args=["--no-sandbox"])
        yield b
        b.close()


@pytest.fixture
def page(browser: Any, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """A fresh page; JS errors fail the test; a screenshot is saved as an artifact when the test ends."""
    pg = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    yield pg
    out = Path(os.environ.get("SWARMGYM_ARTIFACTS") or tmp_path) / "viewer-screenshots"
    out.mkdir(parents=True, exist_ok=True)
    try:
        pg.screenshot(path=str(out / f"{request.node.name}.png"), full_page=True)
    finally:
        pg.close()
    assert errors == [], f"JavaScript errors on the page: {errors}"
