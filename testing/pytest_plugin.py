"""pytest plugin for swarmgym's own test suite (``-p swarmgym.testing.pytest_plugin`` in pyproject's addopts).

The checkout's root is the package itself, so it holds an ``__init__.py``: pytest would collect the root as
a test *package* and import that ``__init__.py`` under the folder's name — an ImportError when the clone's
folder is not an identifier (``git clone … fresh-clone``), a second copy of swarmgym when it is. The root is
collected as a plain folder instead.
"""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.hookimpl(tryfirst=True)
def pytest_collect_directory(path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if path == parent.config.rootpath and (path / "__init__.py").is_file():
        return pytest.Dir.from_parent(parent, path=path)
    return None
